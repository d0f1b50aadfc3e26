"""STAND-IN of autograder-server's generate_secrets.py, with upstream's imports: Django and
python-gnupg, which are in the django image and not on a bare host (upstream's docs make a
venv with them; ag.secrets runs it in the django image).

Creates autograder/settings/secrets/ and writes the Django secret key, a GPG key (the secrets
dir is its GPG home) with its fingerprint and passphrase, each only when missing: an existing
secret is KEPT (changing the GPG key would invalidate every e-mail receipt sent).
gpg_key_password is written last, so its absence means the GPG secrets still have to be made.
Like upstream it prints nothing.
"""

import os

import autograder.settings.base as settings
import gnupg
from django.core.management.utils import get_random_secret_key


def main():
    os.makedirs(settings.SECRETS_DIR, exist_ok=True)

    if not os.path.exists(settings.SECRET_KEY_FILENAME):
        with open(settings.SECRET_KEY_FILENAME, "w") as f:
            f.write(get_random_secret_key())

    if not os.path.exists(settings.GPG_KEY_PASSWORD_FILENAME):
        gpg_key_password = get_random_secret_key()
        gpg = gnupg.GPG(gnupghome=settings.SECRETS_DIR)
        key = gpg.gen_key(gpg.gen_key_input(name_email=settings.EMAIL_FROM_ADDR,
                                            passphrase=gpg_key_password))
        with open(settings.GPG_KEY_ID_FILENAME, "w") as f:
            f.write(str(key.fingerprint))
        with open(settings.GPG_KEY_PASSWORD_FILENAME, "w") as f:
            f.write(gpg_key_password)


if __name__ == "__main__":
    main()
