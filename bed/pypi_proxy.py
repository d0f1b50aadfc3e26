"""The bed's PyPI: a caching proxy of the package index this machine's pip uses, for the real
images' `pip install` and `pip-sync` (the python base image's pip.conf names it). Run by
bed/upstream.py as `python -m bed.pypi_proxy ADDR PORT CACHE_DIR ACCESS_LOG`.

/simple/<project>/ is the index's page with each file's link rewritten to /files/<key>/<name>;
a file is fetched once, from the address the index gave for it, and kept under CACHE_DIR, so
a second build downloads nothing. Only addresses that an index page named are ever fetched.
Pages are kept for a day (the real images pin their versions; pip-tools is not pinned).
"""

import hashlib
import re
import sys
import time
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from .util import reply

PAGE_TTL = 24 * 3600
TIMEOUT = 60
HREF = re.compile(r'href="([^"]+)"')
# PEP 658 metadata links: without them pip downloads each file whole, which is what we cache
METADATA_ATTR = re.compile(r'\sdata-(?:dist-info|core)-metadata="[^"]*"')
PROJECT = re.compile(r"[A-Za-z0-9._-]+")


def machine_index() -> str:
    """The index this machine's pip uses: its configured index-url, or pip's own default."""
    from pip._internal.configuration import Configuration
    from pip._internal.models.index import PyPI

    conf = Configuration(isolated=False)
    conf.load()
    for key in ("global.index-url", ":env:.index-url", "install.index-url"):
        try:
            return conf.get_value(key).rstrip("/") + "/"
        except Exception:  # pip's ConfigurationError: not set
            continue
    return PyPI.simple_url.rstrip("/") + "/"


class Proxy(BaseHTTPRequestHandler):
    index = ""
    cache = Path()
    access_log = None

    def do_GET(self):
        path = urllib.parse.urlsplit(self.path).path
        try:
            if path.startswith("/simple/"):
                body, ctype = self._page(path.removeprefix("/simple/").strip("/")), "text/html"
            elif path.startswith("/files/"):
                key = path.removeprefix("/files/").split("/", 1)[0]
                body, ctype = self._file(key), "application/octet-stream"
            else:
                return self.send_error(404)
        except LookupError as exc:
            return self.send_error(404, str(exc))
        except OSError as exc:  # the index did not answer
            return self.send_error(502, str(exc))
        reply(self, body, ctype)

    def _page(self, project: str) -> bytes:
        if not PROJECT.fullmatch(project):
            raise LookupError(f"no project {project!r}")
        kept = self.cache / "pages" / project
        if not kept.exists() or time.time() - kept.stat().st_mtime > PAGE_TTL:
            url = urllib.parse.urljoin(self.index, f"{project}/")
            page = _fetch(url, accept="text/html").decode()
            page = METADATA_ATTR.sub("", page)
            page = HREF.sub(lambda m: f'href="{self._link(urllib.parse.urljoin(url, m[1]))}"', page)
            _keep(kept, page.encode())
        return kept.read_bytes()

    def _link(self, url: str) -> str:
        """/files/<key>/<name>#<hash> for a file address of the index, remembered by key."""
        address, _, fragment = url.partition("#")
        key = hashlib.sha256(address.encode()).hexdigest()[:32]
        known = self.cache / "urls" / key
        if not known.exists():
            _keep(known, address.encode())
        name = urllib.parse.urlsplit(address).path.rsplit("/", 1)[-1]
        return f"/files/{key}/{name}" + (f"#{fragment}" if fragment else "")

    def _file(self, key: str) -> bytes:
        known = self.cache / "urls" / key
        if not re.fullmatch(r"[0-9a-f]{32}", key) or not known.exists():
            raise LookupError("no file of an index page under that key")
        kept = self.cache / "files" / key
        if not kept.exists():
            _keep(kept, _fetch(known.read_text()))
        return kept.read_bytes()

    def log_message(self, fmt, *args):
        self.access_log.write(f"{self.address_string()} {fmt % args}\n")
        self.access_log.flush()


def _fetch(url: str, accept: str = "*/*") -> bytes:
    request = urllib.request.Request(url, headers={"Accept": accept})
    with urllib.request.urlopen(request, timeout=TIMEOUT) as res:
        return res.read()


def _keep(path: Path, data: bytes) -> None:
    """Write `path` whole or not at all (concurrent requests, a proxy killed mid-write)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{time.monotonic_ns()}")
    tmp.write_bytes(data)
    tmp.replace(path)


def main(addr: str, port: str, cache: str, access_log: str) -> None:
    Proxy.index = machine_index()
    Proxy.cache = Path(cache)
    Proxy.access_log = open(access_log, "a")
    print(f"PyPI proxy of {Proxy.index} on {addr}:{port}, cache {cache}", flush=True)
    ThreadingHTTPServer((addr, int(port)), Proxy).serve_forever()


if __name__ == "__main__":
    main(*sys.argv[1:])
