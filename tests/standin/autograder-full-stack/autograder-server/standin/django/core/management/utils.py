"""django.core.management.utils: what generate_secrets.py uses of it."""

import secrets


def get_random_secret_key():
    return secrets.token_urlsafe(50)
