#!/usr/bin/env python3
"""STAND-IN of autograder-server's generate_secrets.py. Run it on the host, from the
autograder-server directory: `python3 generate_secrets.py`.

Writes into autograder/settings/secrets/ the Django secret key and a GPG key's id and
passphrase, each only when missing: an existing key is never replaced (that would invalidate
old e-mail receipts). gpg_key_password is written last and marks the GPG key as generated.
Upstream makes a real GPG key with python-gnupg (gnupghome = the secrets dir); the stand-in
writes a random fingerprint. Nothing secret is printed.
"""

import os
import secrets
import sys

sys.path[:0] = [os.path.dirname(os.path.abspath(__file__)),
                os.path.join(os.path.dirname(os.path.abspath(__file__)), "standin")]
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "autograder.settings.development")

from django.conf import settings  # noqa: E402


def _write(path: str, value: str) -> None:
    with open(path, "w") as f:
        f.write(value)


def main() -> None:
    os.makedirs(settings.SECRETS_DIR, exist_ok=True)
    if not os.path.exists(settings.SECRET_KEY_FILENAME):
        print("Generating Django secret key")
        _write(settings.SECRET_KEY_FILENAME, secrets.token_urlsafe(50))
    else:
        print("Django secret key already exists, skipping")

    if not os.path.exists(settings.GPG_KEY_PASSWORD_FILENAME):
        print("Generating GPG key for", settings.EMAIL_FROM_ADDR)
        _write(settings.GPG_KEY_ID_FILENAME, secrets.token_hex(20).upper())
        _write(settings.GPG_KEY_PASSWORD_FILENAME, secrets.token_urlsafe(32))
    else:
        print("GPG key already exists, skipping")


if __name__ == "__main__":
    main()
