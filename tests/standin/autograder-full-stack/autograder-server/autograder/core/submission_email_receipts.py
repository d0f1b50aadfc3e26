"""STAND-IN (abridged) of autograder/core/submission_email_receipts.py: a receipt's text
signed with the site's GPG key (the secrets dir is the GPG home), and its check."""

import base64

import gnupg
from django.conf import settings


def sign_email(content: str) -> str:
    gpg = gnupg.GPG(gnupghome=settings.SECRETS_DIR)
    return str(gpg.sign(content, keyid=settings.GPG_KEY_ID, passphrase=settings.GPG_KEY_PASSWORD))


def check_signature(encoded_signed_msg: bytes):
    gpg = gnupg.GPG(gnupghome=settings.SECRETS_DIR)
    signed = base64.urlsafe_b64decode(encoded_signed_msg)
    return bool(gpg.verify(signed)), signed.decode()
