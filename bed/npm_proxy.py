"""The bed's npm registry: a caching proxy of the registry this machine's npm uses (`npm config
get registry`, read when it starts), for the real website image's `npm install` (the nginx
base image's npm config names it, https through the bed's CA). Run by bed/upstream.py as
`python -m bed.npm_proxy ADDR PORT PUBLIC_URL CACHE_DIR CERT KEY ACCESS_LOG`.

/<name> (or /@scope%2fname) is the registry's packument with each version's dist.tarball
rewritten to /-/files/<name>/-/<file>; a tarball is fetched once, from the address the
package's packument gave for that file (kept in one map per package), and kept under
CACHE_DIR, so a second build downloads nothing. Only addresses that a packument named are
ever fetched. Packuments are kept for a day (the website's lock
pins its versions; `npm@6` is not pinned), and a kept one is served when the registry does
not answer.

One addition (bed/npm_rebuilt.py): a version the registry no longer has, rebuilt by the bed
from its source (ag-client-typescript 2.4.4), joins that package's packument with its
tarball under /-/rebuilt/; a version the registry has is never replaced.
"""

import gzip
import json
import re
import ssl
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from .util import reply

PAGE_TTL = 24 * 3600
TIMEOUT = 120
RETRIES = 3
CORGI = "application/vnd.npm.install-v1+json"  # the abbreviated packument npm install asks for
# npm's names: lower case, url-safe, an optional @scope/ (its / sent as %2f or /)
NAME = re.compile(r"(?:@[a-z0-9][a-z0-9._~-]*/)?[a-z0-9._~-][a-z0-9._~-]*")
FILE = re.compile(r"[A-Za-z0-9._~+-]+\.tgz")
# what a version's manifest keeps of a rebuilt package's package.json (npm's install fields)
MANIFEST_FIELDS = ("name", "version", "dependencies", "optionalDependencies",
                   "peerDependencies", "bundleDependencies", "bin", "directories", "engines",
                   "os", "cpu", "deprecated")


def machine_registry() -> str:
    """The registry this machine's npm uses."""
    import subprocess

    out = subprocess.run(["npm", "config", "get", "registry"], capture_output=True, text=True,
                         check=True).stdout.strip()
    if not out.startswith(("http://", "https://")):
        raise RuntimeError(f"`npm config get registry` gave no registry address: {out!r}")
    return out.rstrip("/") + "/"


def package_name(path: str):
    """The package a request path asks the packument of, or None."""
    name = urllib.parse.unquote(path.lstrip("/")).lower()
    return name if NAME.fullmatch(name) and ".." not in name else None


def stem(name: str) -> str:
    """A package's name as one path segment (its cache files', its tarballs' paths)."""
    return name.replace("/", "%2f")


def rewrite(packument: dict, name: str, public: str) -> dict:
    """Each version's tarball at the proxy (`public` + -/files/<name>/-/<file>), in place;
    returns {file: the registry's address of it}. A file name the proxy would not take, or
    two addresses under one name, is left as the registry gave it (npm would then fail to
    reach it: the bed's DNS answers no registry name)."""
    addresses, files = {}, {}
    for manifest in packument.get("versions", {}).values():
        if address := (manifest.get("dist") or {}).get("tarball"):
            file = urllib.parse.unquote(urllib.parse.urlsplit(address).path.rsplit("/", 1)[-1])
            files.setdefault(file, set()).add(address)
    for manifest in packument.get("versions", {}).values():
        dist = manifest.get("dist") or {}
        file = urllib.parse.unquote(urllib.parse.urlsplit(dist.get("tarball", "")).path
                                    .rsplit("/", 1)[-1])
        if FILE.fullmatch(file) and len(files[file]) == 1:
            addresses[file] = dist["tarball"]
            dist["tarball"] = f"{public}-/files/{stem(name)}/-/{file}"
    return addresses


def add_rebuilt(packument: dict, rebuilt: dict, public: str) -> list:
    """Add the rebuilt versions (`rebuilt`: version → {"package": package.json, "integrity",
    "shasum"}) the packument lacks; returns the versions added. dist-tags stay the registry's."""
    added = []
    versions = packument.setdefault("versions", {})
    for version, made in sorted(rebuilt.items()):
        if version in versions:
            continue
        manifest = {k: made["package"][k] for k in MANIFEST_FIELDS if k in made["package"]}
        name = manifest["name"]
        manifest["dist"] = {
            "tarball": f"{public}-/rebuilt/{name}/-/{name.rsplit('/', 1)[-1]}-{version}.tgz",
            "integrity": made["integrity"], "shasum": made["shasum"]}
        manifest["_agbed"] = "rebuilt by the test bed from its source: not the registry's"
        versions[version] = manifest
        added.append(version)
    return added


class Proxy(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # npm keeps its connections (every answer has a length)
    registry = ""
    public = ""  # the proxy's own address as the images name it, ending in /
    cache = Path()
    access_log = None

    def do_GET(self):
        path = urllib.parse.urlsplit(self.path).path
        try:
            if path.startswith("/-/files/"):
                body, ctype = self._file(path.removeprefix("/-/files/")), \
                    "application/octet-stream"
            elif path.startswith("/-/rebuilt/"):
                body, ctype = self._rebuilt(path.removeprefix("/-/rebuilt/")), \
                    "application/octet-stream"
            elif (name := package_name(path)) is not None:
                corgi = CORGI in (self.headers.get("Accept") or "")
                body, ctype = self._served(name, corgi), CORGI if corgi else "application/json"
            else:
                return self.send_error(404, f"the bed's npm proxy has no {path}")
        except LookupError as exc:
            return self.send_error(404, str(exc))
        except OSError as exc:  # the registry did not answer
            return self.send_error(502, str(exc))
        reply(self, body, ctype)

    def do_POST(self):
        """npm audit's report: the bed has no audit service."""
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_error(404, "the bed's npm proxy has no audit service")

    def _served(self, name: str, corgi: bool) -> bytes:
        """The registry's packument as kept, with the bed's rebuilt versions it lacks."""
        rebuilt = self._rebuilt_versions(name)
        try:
            body = self._packument(name, corgi)
        except LookupError:
            if not rebuilt:
                raise
            body = json.dumps({"name": name, "dist-tags": {}, "versions": {}}).encode()
        if not rebuilt:
            return body
        packument = json.loads(body)
        if added := add_rebuilt(packument, rebuilt, self.public):
            self.log_message("%s: versions %s rebuilt by the bed", name, ", ".join(added))
        return json.dumps(packument).encode()

    def _packument(self, name: str, corgi: bool) -> bytes:
        kept = self.cache / "packuments" / ("corgi" if corgi else "full") / stem(name)
        if kept.exists() and time.time() - kept.stat().st_mtime < PAGE_TTL:
            return kept.read_bytes()
        url = self.registry + urllib.parse.quote(name, safe="@")
        try:
            raw = self._fetch(url, accept=CORGI if corgi else "application/json")
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                raise LookupError(f"the registry has no {name}") from exc
            if kept.exists():
                return kept.read_bytes()
            raise
        except OSError:
            if kept.exists():  # stale beats nothing
                return kept.read_bytes()
            raise
        packument = json.loads(raw)
        addresses = rewrite(packument, name, self.public)
        known = self.cache / "urls" / f"{stem(name)}.json"
        if known.exists():  # the other form's, or an older packument's
            addresses = {**json.loads(known.read_text()), **addresses}
        _keep(known, json.dumps(addresses, sort_keys=True).encode())
        _keep(kept, json.dumps(packument).encode())
        return kept.read_bytes()

    def _file(self, rest: str) -> bytes:
        """<name>/-/<file>: fetched from the address the package's packument gave."""
        name, _, file = urllib.parse.unquote(rest).rpartition("/-/")
        known = self.cache / "urls" / f"{stem(name)}.json"
        if package_name(name) != name or not FILE.fullmatch(file) or not known.exists():
            raise LookupError(f"no tarball {file!r} of a packument of {name!r}")
        address = json.loads(known.read_text()).get(file)
        if address is None:
            raise LookupError(f"the packument of {name} names no {file}")
        kept = self.cache / "files" / stem(name) / file
        if not kept.exists():
            _keep(kept, self._fetch(address))
        return kept.read_bytes()

    def _rebuilt_dir(self) -> Path:
        return self.cache / "rebuilt"

    def _rebuilt_versions(self, name: str) -> dict:
        """version → its record (bed/npm_rebuilt.py writes <name>/<version>.json beside the
        .tgz)."""
        here = self._rebuilt_dir() / stem(name)
        return {p.stem: json.loads(p.read_text()) for p in sorted(here.glob("*.json"))}

    def _rebuilt(self, rest: str) -> bytes:
        """<name>/-/<file>-<version>.tgz"""
        name, _, file = urllib.parse.unquote(rest).rpartition("/-/")
        if package_name(name) != name:
            raise LookupError(f"no rebuilt package {name!r}")
        for version in self._rebuilt_versions(name):
            if file == f"{name.rsplit('/', 1)[-1]}-{version}.tgz":
                return (self._rebuilt_dir() / stem(name) / f"{version}.tgz").read_bytes()
        raise LookupError(f"no rebuilt {file} of {name}")

    def _fetch(self, url: str, accept: str = "*/*") -> bytes:
        """`url` from the registry (logged: a warm build's log has no "fetched" line), tried
        again after a failure that is not the registry's answer (a name lookup of this
        machine's resolver failed under load)."""
        for attempt in range(RETRIES):
            try:
                data = _fetch(url, accept)
            except urllib.error.HTTPError:
                raise
            except OSError as exc:
                self.log_message("fetching %s failed (%s)", url, exc)
                if attempt == RETRIES - 1:
                    raise
                time.sleep(1 + attempt)
                continue
            self.log_message("fetched %s (%d bytes)", url, len(data))
            return data

    def log_message(self, fmt, *args):
        self.access_log.write(f"{self.address_string()} {fmt % args}\n")
        self.access_log.flush()


def _fetch(url: str, accept: str = "*/*") -> bytes:
    request = urllib.request.Request(url, headers={"Accept": accept, "Accept-Encoding": "gzip"})
    with urllib.request.urlopen(request, timeout=TIMEOUT) as res:
        data = res.read()
        return gzip.decompress(data) if res.headers.get("Content-Encoding") == "gzip" else data


def _keep(path: Path, data: bytes) -> None:
    """Write `path` whole or not at all (concurrent requests, a proxy killed mid-write)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{time.monotonic_ns()}")
    tmp.write_bytes(data)
    tmp.replace(path)


def main(addr: str, port: str, public: str, cache: str, cert: str, key: str,
         access_log: str) -> None:
    Proxy.registry = machine_registry()
    Proxy.public = public.rstrip("/") + "/"
    Proxy.cache = Path(cache)
    Proxy.access_log = open(access_log, "a")
    server = ThreadingHTTPServer((addr, int(port)), Proxy)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    # each connection's handshake in its own thread, not in the accepting one
    server.socket = context.wrap_socket(server.socket, server_side=True,
                                        do_handshake_on_connect=False)
    print(f"npm proxy of {Proxy.registry} on {addr}:{port} as {Proxy.public}, cache {cache}",
          flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main(*sys.argv[1:])
