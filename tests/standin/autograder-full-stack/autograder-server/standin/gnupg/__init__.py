"""STAND-IN of python-gnupg, what the server uses of it: generate_secrets.py makes a key, the
app signs e-mail receipts and verifies them (autograder/core/submission_email_receipts.py).
Like real gpg it needs a writable GPG home (gnupghome, the secrets dir): signing takes a
lock file there (gpg's dotlock; its agent's socket too), so a read-only home makes the
signature empty, which the real app then sends silently. The key's private part lies in
private-keys-v1.d/ as gpg-agent keeps it. Not cryptography: a digest stands in for the
signature. Installed in the django and grader images only, as python-gnupg is, so
generate_secrets.py runs there and not on a bare host."""

import hashlib
import os
import secrets

BEGIN, SIGNATURE, END = ("-----BEGIN PGP SIGNED MESSAGE-----", "-----BEGIN PGP SIGNATURE-----",
                         "-----END PGP SIGNATURE-----")


class GPG:
    def __init__(self, gnupghome):
        self.gnupghome = gnupghome
        os.makedirs(gnupghome, exist_ok=True)

    def _path(self, *parts):
        return os.path.join(self.gnupghome, *parts)

    def gen_key_input(self, name_email, passphrase):
        return f"Name-Email: {name_email}\nPassphrase: {passphrase}\n"

    def gen_key(self, input_data):
        fingerprint = secrets.token_hex(20).upper()
        passphrase = input_data.splitlines()[1].split(": ", 1)[1]
        os.makedirs(self._path("private-keys-v1.d"), mode=0o700, exist_ok=True)
        with open(self._path("private-keys-v1.d", f"{fingerprint}.key"), "w") as key:
            key.write(_digest(passphrase, fingerprint) + "\n")
        with open(self._path("pubring.kbx"), "a") as ring:
            ring.write(f"{fingerprint} {input_data.splitlines()[0]}\n")
        return _Key(fingerprint)

    def sign(self, message, keyid, passphrase):
        """The signed message, or an empty result (str() == '') as python-gnupg returns."""
        lock = self._path("pubring.kbx.lock")
        try:
            with open(lock, "w"):
                pass
            os.unlink(lock)
            with open(self._path("private-keys-v1.d", f"{keyid}.key")) as key:
                unlocked = key.read().strip() == _digest(passphrase, keyid)
        except OSError:
            return _Signed("")
        if not unlocked:
            return _Signed("")
        return _Signed(f"{BEGIN}\n\n{message}\n{SIGNATURE}\n{keyid} "
                       f"{_digest(message, keyid)}\n{END}\n")

    def verify(self, data):
        text = data.decode() if isinstance(data, bytes) else data
        try:
            message = text.split(f"{BEGIN}\n\n", 1)[1].split(f"\n{SIGNATURE}\n", 1)[0]
            keyid, digest = text.split(f"{SIGNATURE}\n", 1)[1].split("\n", 1)[0].split()
            with open(self._path("pubring.kbx")) as ring:
                known = {line.split()[0] for line in ring if line.strip()}
        except (IndexError, ValueError, OSError):
            return _Verified(False)
        return _Verified(keyid in known and digest == _digest(message, keyid))


def _digest(text, keyid):
    return hashlib.sha256(f"{keyid}\0{text}".encode()).hexdigest()


class _Key:
    def __init__(self, fingerprint):
        self.fingerprint = fingerprint


class _Signed:
    def __init__(self, data):
        self.data = data

    def __str__(self):
        return self.data

    def __bool__(self):
        return bool(self.data)


class _Verified:
    def __init__(self, valid):
        self.valid = valid

    def __bool__(self):
        return self.valid
