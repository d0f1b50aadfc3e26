"""What the internet gives a site, served to the tier 2 guests on the bed's bridge address (the
guests have no other route), each by a daemon on this machine:

  apt      apt-cacher-ng, its backend this machine's own Debian mirror (Debian packages)
  hub      a registry holding the bed's images (bed/images.py) under their Docker Hub names;
           the guests' dockerd uses it as its registry mirror, so `postgres:13` or
           `agbed/debian:bookworm` is pulled as a site pulls it from Docker Hub
  dns      dnsmasq answering every name under config.BED_DOMAIN with the bridge address, and
           no other name (tier 1's containers ask the bridge address: netns.py's daemon.json)
  web      bed/plain_urls.py: https://get.docker.com and the like, answered from Debian's
           packages, with a certificate of the bed's CA (bed/ca.py)
  pypi     bed/pypi_proxy.py, a caching proxy of this machine's PyPI index, as
           pypi.<BED_DOMAIN> (the real python base image's pip.conf)
  npm      bed/npm_proxy.py, a caching proxy of this machine's npm registry, as
           https://npm.<BED_DOMAIN>:<NPM_PORT>/ (the real nginx base image's npm config), with
           the packages the registry lost rebuilt from their source (bed/npm_rebuilt.py)
  smtp     bed/smtp_sink.py, the site's mail server as smtp.<BED_DOMAIN>:587 (STARTTLS, one
           user and password, SMTP_USER and SMTP_PASSWORD_FILE), keeping each message in
           SMTP_MAIL_DIR
  git      a git daemon serving the stand-in autograder-full-stack (tests/standin), committed,
           as a site clones upstream's repository; and under upstream/ the real releases
           (config.UPSTREAM_BUNDLES), each repository beside the others as on GitHub, so
           autograder-full-stack's relative submodule URLs (../autograder-server.git)
           resolve: UPSTREAM_GIT_URL at a release tag checks out with its submodules;
           beside each release tag T whose website pins a rebuilt npm package, the bed's
           T-agbed (bed/npm_rebuilt.py, bed/README.md)
"""

import functools
import gzip
import hashlib
import json
import secrets
import shutil
import socket
import subprocess
import tarfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from tests import standin

from . import ca, config, images, npm_rebuilt, plain_urls, releases
from .util import debian_mirror, log, pid_alive, stop_pid, wait_for

DIR = config.BED_DIR / "vm"
# the proxy's cache outlives `down --wipe`; one per bed, two daemons never share a cache
ACNG_CACHE = config.CACHE_DIR / f"apt-cacher-ng-bed{config.BED_ID}"
HUB_PORT = 5002
GIT_URL = f"git://{config.BRIDGE_ADDR}/autograder-full-stack"
UPSTREAM_GIT_URL = f"git://{config.BRIDGE_ADDR}/upstream/autograder-full-stack.git"
MANIFEST_TYPE = "application/vnd.docker.distribution.manifest.v2+json"


@dataclass(frozen=True)
class HostDaemon:
    """A daemon on the bridge address, run in the foreground of its own session; its
    directory (in its command line, so a reused pid is never taken for it) holds pid and log."""
    name: str
    port: int

    @property
    def dir(self) -> Path:
        return DIR / self.name

    def pid(self):
        try:
            pid = int((self.dir / "pid").read_text().strip())
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except (FileNotFoundError, ValueError, ProcessLookupError):
            return None
        return pid if str(self.dir).encode() in cmdline and pid_alive(pid) else None

    def answers(self) -> bool:
        try:
            socket.create_connection((config.BRIDGE_ADDR, self.port), timeout=1).close()
        except OSError:
            return False
        return True

    def start(self, argv) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        out_file = self.dir / "out"
        with open(out_file, "w") as out:
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out,
                                    stderr=subprocess.STDOUT, start_new_session=True)
        (self.dir / "pid").write_text(f"{proc.pid}\n")

        def up() -> bool:
            if proc.poll() is not None:
                raise RuntimeError(
                    f"{self.name} ({argv[0]}) exited at start: {out_file.read_text()}\n"
                    f"Is another daemon holding port {self.port} on every address? (ss -ltnp)")
            return self.answers()

        wait_for(up, 30, f"{self.name} on {config.BRIDGE_ADDR}:{self.port}")

    def stop(self) -> None:
        if pid := self.pid():
            stop_pid(pid)
        (self.dir / "pid").unlink(missing_ok=True)


APT = HostDaemon("apt-cacher-ng", config.APT_PORT)
HUB = HostDaemon("hub", HUB_PORT)
GIT = HostDaemon("git", 9418)
DNS = HostDaemon("dns", 53)
PYPI = HostDaemon("pypi", config.PYPI_PORT)
WEB = HostDaemon("web", 443)
NPM = HostDaemon("npm", config.NPM_PORT)
SMTP = HostDaemon("smtp", 587)
SMTP_HOST = f"smtp.{config.BED_DOMAIN}"
SMTP_USER = "autograder"
SMTP_PASSWORD_FILE = SMTP.dir / "password"
SMTP_MAIL_DIR = SMTP.dir / "mail"
PYPI_CACHE = config.CACHE_DIR / "pypi"


def _apt_up() -> None:
    conf = APT.dir / "conf"
    shutil.rmtree(conf, ignore_errors=True)
    shutil.copytree("/etc/apt-cacher-ng", conf)  # its built-in mirror lists do not resolve here
    (conf / "backends_debian").write_text(debian_mirror().rstrip("/") + "/\n")
    (APT.dir / "log").mkdir(exist_ok=True)
    ACNG_CACHE.mkdir(parents=True, exist_ok=True)
    APT.start(["/usr/sbin/apt-cacher-ng", "-c", str(conf), "ForeGround=1",
               f"BindAddress={config.BRIDGE_ADDR}", f"Port={APT.port}",
               f"CacheDir={ACNG_CACHE}", f"LogDir={APT.dir / 'log'}",
               f"SocketPath={APT.dir / 'socket'}"])


# ---------------------------------------------------------------- the Docker Hub stand-in

def docker_daemon_keys() -> dict:
    """daemon.json keys of a site whose dockerd pulls Docker Hub's images from a mirror."""
    return {"registry-mirrors": [f"http://{config.BRIDGE_ADDR}:{HUB_PORT}"],
            "insecure-registries": [f"{config.BRIDGE_ADDR}:{HUB_PORT}"]}


def _hub_up() -> None:
    HUB.dir.mkdir(parents=True, exist_ok=True)
    conf = HUB.dir / "config.yml"
    conf.write_text(images.REGISTRY_CONFIG.replace("/var/lib/registry", str(HUB.dir / "data"))
                    .replace("addr: :5000", f"addr: {config.BRIDGE_ADDR}:{HUB_PORT}"))
    HUB.start(["/usr/bin/docker-registry", "serve", str(conf)])


def _hub_request(method: str, path: str, data=None, headers=None):
    url = path if path.startswith("http") else f"http://{config.BRIDGE_ADDR}:{HUB_PORT}{path}"
    req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=120) as res:
            return res.status, res.headers
    except urllib.error.HTTPError as err:
        if method == "HEAD":
            return err.code, err.headers
        raise RuntimeError(f"hub: {method} {path}: {err.code} {err.read()[:300]!r}") from err


def _repo_and_tag(tag: str):
    repo, _, version = tag.rpartition(":")
    return (repo if "/" in repo else f"library/{repo}"), version


@functools.cache
def _gzip_layer(tarball: Path, member: str):
    """(digest, bytes) of one layer as a gzip blob (deterministic: mtime 0)."""
    with tarfile.open(tarball) as saved:
        data = gzip.compress(saved.extractfile(member).read(), compresslevel=1, mtime=0)
    return f"sha256:{hashlib.sha256(data).hexdigest()}", data


def _layer_blobs(img) -> list:
    """The image's layers, each from its own (thin) tarball or its base's: [(digest, bytes)]."""
    own = images.tarball(img.name)
    with tarfile.open(own) as saved:
        layers = json.load(saved.extractfile("manifest.json"))[0]["Layers"]
        inside = set(saved.getnames())
    return [_gzip_layer(own if member in inside else images.tarball(img.base), member)
            for member in layers]


def _config_blob(img) -> bytes:
    with tarfile.open(images.tarball(img.name)) as saved:
        manifest = json.load(saved.extractfile("manifest.json"))[0]
        return saved.extractfile(manifest["Config"]).read()


def _put_blob(repo: str, digest: str, data: bytes) -> None:
    if _hub_request("HEAD", f"/v2/{repo}/blobs/{digest}")[0] == 200:
        return
    _, headers = _hub_request("POST", f"/v2/{repo}/blobs/uploads/", data=b"")
    location = headers["Location"]
    sep = "&" if "?" in location else "?"
    _hub_request("PUT", f"{location}{sep}digest={digest}", data=data,
                 headers={"Content-Type": "application/octet-stream"})


def _push(img, tags) -> None:
    layers = _layer_blobs(img)
    config_bytes = _config_blob(img)
    config_digest = f"sha256:{hashlib.sha256(config_bytes).hexdigest()}"
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": MANIFEST_TYPE,
        "config": {"mediaType": "application/vnd.docker.container.image.v1+json",
                   "size": len(config_bytes), "digest": config_digest},
        "layers": [{"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
                    "size": len(data), "digest": digest} for digest, data in layers],
    }, sort_keys=True).encode()
    for tag in tags:
        repo, version = _repo_and_tag(tag)
        for digest, data in layers + [(config_digest, config_bytes)]:
            _put_blob(repo, digest, data)
        _hub_request("PUT", f"/v2/{repo}/manifests/{version}", data=manifest,
                     headers={"Content-Type": MANIFEST_TYPE})


def fill_hub(group: str = "bed") -> None:
    """Push each tag of the group's images that the hub does not hold as built (it keeps them
    across up/down). Tag by tag, since groups share tags: the real stack's postgres:13
    (group "real") takes the stand-in's place, and the other way round."""
    built = images.build_all(group)
    stamp = HUB.dir / "pushed.json"
    pushed = json.loads(stamp.read_text()) if stamp.exists() else {}
    for img in images.in_group(group):
        image_id = built[img.name]["id"]
        if tags := [tag for tag in img.tags if pushed.get(tag) != image_id]:
            _push(img, tags)
            pushed.update(dict.fromkeys(tags, image_id))
            stamp.write_text(json.dumps(pushed, indent=2) + "\n")
            log(f"hub: {', '.join(tags)} pushed")


def _dns_up() -> None:
    DNS.start(["dnsmasq", "--keep-in-foreground", "--conf-file=/dev/null", "--no-resolv",
               "--no-hosts", "--bind-interfaces", f"--listen-address={config.BRIDGE_ADDR}",
               *(f"--address=/{name}/{config.BRIDGE_ADDR}"
                 for name in (config.BED_DOMAIN, *plain_urls.SITES)),
               "--log-facility=-",
               f"--pid-file={DNS.dir / 'dnsmasq.pid'}"])


def _pypi_up() -> None:
    PYPI.start([str(config.SALT_BIN / "python"), "-m", "bed.pypi_proxy", config.BRIDGE_ADDR,
                str(PYPI.port), str(PYPI_CACHE), str(PYPI.dir / "access.log")])


def _npm_up() -> None:
    for name, version in npm_rebuilt.REBUILT:
        npm_rebuilt.record(name, version)
    cert, key = ca.server_certificate([f"npm.{config.BED_DOMAIN}"], NPM.dir)
    NPM.start([str(config.SALT_BIN / "python"), "-m", "bed.npm_proxy", config.BRIDGE_ADDR,
               str(NPM.port), config.NPM_REGISTRY, str(npm_rebuilt.CACHE), str(cert), str(key),
               str(NPM.dir / "access.log")])


def _web_up() -> None:
    cert, key = ca.server_certificate(list(plain_urls.SITES), WEB.dir)
    WEB.start([str(config.SALT_BIN / "python"), "-m", "bed.plain_urls", config.BRIDGE_ADDR,
               str(cert), str(key), str(WEB.dir / "access.log")])


def _smtp_up() -> None:
    if not SMTP_PASSWORD_FILE.exists():
        SMTP.dir.mkdir(parents=True, exist_ok=True)
        SMTP_PASSWORD_FILE.write_text(secrets.token_urlsafe(16) + "\n")
        SMTP_PASSWORD_FILE.chmod(0o600)
    cert, key = ca.server_certificate([SMTP_HOST], SMTP.dir)
    SMTP.start([str(config.SALT_BIN / "python"), "-m", "bed.smtp_sink", config.BRIDGE_ADDR,
                str(SMTP.port), str(cert), str(key), SMTP_USER, str(SMTP_PASSWORD_FILE),
                str(SMTP_MAIL_DIR)])


# ---------------------------------------------------------------- the repository

def _git_up() -> None:
    """The stand-in committed on branch master (a new commit only when its files changed),
    and the real releases under upstream/ when their bundles are on this machine."""
    standin.write(GIT.dir / "repos/autograder-full-stack", git=True)
    if not releases.bare_repos(GIT.dir / "repos/upstream"):
        log(f"git: no bundles in {config.UPSTREAM_BUNDLES}; serving the stand-in only")
    else:
        try:
            for tag, commit in npm_rebuilt.bed_tags(GIT.dir / "repos/upstream").items():
                log(f"git: the bed's {tag} is {commit[:8]}")
        except (RuntimeError, OSError) as exc:  # no npm here, the registry unreachable
            log(f"git: the bed's -agbed release tags not made ({exc}); the website's "
                f"npm install will not find ag-client-typescript 2.4.4")
    GIT.start(["git", "daemon", "--reuseaddr", "--export-all", f"--listen={config.BRIDGE_ADDR}",
               f"--port={GIT.port}", f"--base-path={GIT.dir / 'repos'}", str(GIT.dir / "repos")])


# what the tier 2 guests fetch (the stand-in stack's images come from the hub, built from the
# bed's bases; the other daemons serve the real Dockerfiles' builds)
FOR_GUESTS = (APT, HUB, GIT)


STARTERS = {APT: _apt_up, HUB: _hub_up, GIT: _git_up, DNS: _dns_up, PYPI: _pypi_up, WEB: _web_up,
            NPM: _npm_up, SMTP: _smtp_up}


def up(daemons=None) -> list:
    """Start the daemons (all by default) that do not run; return those it started."""
    started = [d for d in (daemons or STARTERS) if not d.pid()]
    for daemon in started:
        STARTERS[daemon]()
    return started


def down() -> None:
    for daemon in STARTERS:
        daemon.stop()
