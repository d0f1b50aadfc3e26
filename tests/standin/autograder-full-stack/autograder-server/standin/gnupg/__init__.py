"""STAND-IN of python-gnupg, what generate_secrets.py uses of it: like the real one it needs
a writable GPG home (gnupghome, the secrets dir) and leaves its keyring there; the key is a
random fingerprint, not a real key. Installed in the django and grader images only, as
python-gnupg is, so generate_secrets.py runs there and not on a bare host."""

import os
import secrets


class GPG:
    def __init__(self, gnupghome):
        self.gnupghome = gnupghome
        os.makedirs(gnupghome, exist_ok=True)

    def gen_key_input(self, name_email, passphrase):
        return f"Name-Email: {name_email}\nPassphrase: {passphrase}\n"

    def gen_key(self, input_data):
        fingerprint = secrets.token_hex(20).upper()
        with open(os.path.join(self.gnupghome, "pubring.kbx"), "a") as ring:
            ring.write(f"{fingerprint} {input_data.splitlines()[0]}\n")
        return _Key(fingerprint)


class _Key:
    def __init__(self, fingerprint):
        self.fingerprint = fingerprint
