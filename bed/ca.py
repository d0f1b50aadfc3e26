"""The bed's certificate authority, made once per machine (config.CACHE_DIR/ca): the real base
images that fetch plain https URLs trust it (bed/real_bases.py), and the bed's web server
(bed/plain_urls.py) answers those URLs' names with a certificate it signed."""

import fcntl
import tempfile
from pathlib import Path

from . import config
from .util import run

CA_DIR = config.CACHE_DIR / "ca"
CA_CERT = CA_DIR / "ca.crt"
CA_KEY = CA_DIR / "ca.key"


def ca_cert() -> str:
    """The CA's certificate (PEM), made the first time it is asked for."""
    CA_DIR.mkdir(parents=True, exist_ok=True)
    with open(CA_DIR / "lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another bed may be making it
        if not CA_CERT.exists():
            run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "3650",
                 "-subj", "/CN=agbed test-bed CA", "-keyout", str(CA_KEY),
                 "-addext", "basicConstraints=critical,CA:TRUE",
                 "-addext", "keyUsage=critical,keyCertSign,cRLSign",
                 "-out", str(CA_CERT.with_suffix(".tmp"))])
            CA_KEY.chmod(0o600)
            CA_CERT.with_suffix(".tmp").rename(CA_CERT)
    return CA_CERT.read_text()


def server_certificate(names, into: Path):
    """(certificate, key) paths in `into` for a server answering as each of `names`."""
    ca_cert()
    into.mkdir(parents=True, exist_ok=True)
    cert, key = into / "server.crt", into / "server.key"
    with tempfile.TemporaryDirectory() as tmp:
        csr, ext = Path(tmp) / "server.csr", Path(tmp) / "ext"
        ext.write_text("subjectAltName=" + ",".join(f"DNS:{n}" for n in names)
                       + "\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n")
        run(["openssl", "req", "-new", "-newkey", "rsa:2048", "-nodes", "-subj",
             f"/CN={names[0]}", "-keyout", str(key), "-out", str(csr)])
        run(["openssl", "x509", "-req", "-in", str(csr), "-CA", str(CA_CERT), "-CAkey",
             str(CA_KEY), "-CAcreateserial", "-CAserial", str(Path(tmp) / "serial"),
             "-days", "30", "-extfile", str(ext), "-out", str(cert)])
    key.chmod(0o600)
    return cert, key
