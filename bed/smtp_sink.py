"""The mail server a site gives autograder.io's e-mail settings, as the bed's SMTP sink on its
bridge address: STARTTLS (the production settings' EMAIL_USE_TLS) with a certificate of the
bed's CA, then AUTH as one user whose password is in a file, and every message accepted is
kept as a file in a directory, never relayed. Run by bed/upstream.py as
`python -m bed.smtp_sink ADDR PORT CERT KEY USER PASSWORD_FILE MAIL_DIR`."""

import signal
import ssl
import sys
import time
from pathlib import Path

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


class KeepInDir:
    """Each message as one file of `into`, written whole before it gets its name."""

    def __init__(self, into: Path):
        self.into = into

    async def handle_DATA(self, server, session, envelope):
        name = f"{time.time_ns()}.eml"
        part = self.into / f".{name}"
        part.write_bytes(envelope.original_content or envelope.content)
        part.rename(self.into / name)
        return "250 kept"


def one_login(user: str, password: str):
    def check(server, session, envelope, mechanism, auth_data):
        return AuthResult(success=isinstance(auth_data, LoginPassword)
                          and (auth_data.login, auth_data.password)
                          == (user.encode(), password.encode()))
    return check


def main(addr, port, cert, key, user, password_file, mail_dir) -> None:
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(cert, key)
    Path(mail_dir).mkdir(parents=True, exist_ok=True)
    password = Path(password_file).read_text().strip()
    controller = Controller(KeepInDir(Path(mail_dir)), hostname=addr, port=int(port),
                            tls_context=tls, require_starttls=True,
                            authenticator=one_login(user, password), auth_required=True)
    controller.start()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        signal.pause()
    finally:
        controller.stop()


if __name__ == "__main__":
    main(*sys.argv[1:])
