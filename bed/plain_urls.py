"""The plain https URLs the real Dockerfiles fetch, answered by the bed on its bridge address
(port 443) with scripts that do the same job from Debian's packages; the bed's DNS resolves
their names to that address and the real base images trust the bed's CA (bed/ca.py). Run by
bed/upstream.py as `python -m bed.plain_urls ADDR CERT KEY ACCESS_LOG`."""

import ssl
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

HERE = Path(__file__).with_name("plain-urls")
# name → {path: the file of HERE that answers it}; any other path: 404
SITES = {
    "get.docker.com": {"/": "get-docker.sh"},
    "deb.nodesource.com": {"/setup_12.x": "setup_12.x.sh"},
    # node-sass 4 downloads its prebuilt binding from GitHub's releases: the bed answers 404,
    # and node-sass builds it (node-gyp) as it does when a download fails
    "github.com": {},
}


class PlainUrls(BaseHTTPRequestHandler):
    access_log = None

    def do_GET(self):
        name = (self.headers.get("Host") or "").split(":")[0]
        answer = SITES.get(name, {}).get(self.path.split("?")[0])
        if answer is None:
            return self.send_error(404, f"the bed does not answer https://{name}{self.path}")
        body = (HERE / answer).read_bytes()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, fmt, *args):
        self.access_log.write(f"{self.address_string()} {fmt % args}\n")
        self.access_log.flush()


def main(addr: str, cert: str, key: str, access_log: str) -> None:
    PlainUrls.access_log = open(access_log, "a")
    server = ThreadingHTTPServer((addr, 443), PlainUrls)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    server.serve_forever()


if __name__ == "__main__":
    main(*sys.argv[1:])
