"""STAND-IN of autograder-server's generate_secrets.py. Run it on the host, from the
autograder-server directory: `python3 generate_secrets.py`.

Creates autograder/settings/secrets/ and writes the Django secret key, a GPG key's
fingerprint and its passphrase, each only when missing: an existing secret is KEPT (changing
the GPG key would invalidate every e-mail receipt sent). gpg_key_password is written last, so
its absence means the GPG secrets still have to be made. Upstream makes a real GPG key with
python-gnupg (gnupghome = the secrets dir); the stand-in writes a random fingerprint.
Like upstream it prints nothing.
"""

import os
import secrets

import autograder.settings.base as settings


def _write(path, value):
    with open(path, "w") as f:
        f.write(value)


def main():
    os.makedirs(settings.SECRETS_DIR, exist_ok=True)

    if not os.path.exists(settings.SECRET_KEY_FILENAME):
        _write(settings.SECRET_KEY_FILENAME, secrets.token_urlsafe(50))

    if not os.path.exists(settings.GPG_KEY_PASSWORD_FILENAME):
        _write(settings.GPG_KEY_ID_FILENAME, secrets.token_hex(20).upper())
        _write(settings.GPG_KEY_PASSWORD_FILENAME, secrets.token_urlsafe(50))


if __name__ == "__main__":
    main()
