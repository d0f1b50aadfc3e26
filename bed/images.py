"""Local base images for the bed's nodes: nothing can be pulled here, so the bed makes its own.

Every image is written straight in `docker save` format (layer tars, an image config,
manifest.json), so building needs no dockerd and no network but Debian's mirror for the
debootstrap. The tarballs are cached under config.CACHE_DIR/images, shared by every bed
(a lock file serialises builders, each file appears by atomic rename), and rebuilt only when
an image's inputs change. An image built on a base (registry on busybox, the stand-ins on
debian) is saved thin: its manifest lists every layer but the tarball carries only its own,
since `docker load` never opens a layer the daemon already has; `load_into`, which loads into
one node the images it lacks, loads bases first. Both tiers call it with their own `node_exec`.

Images come in groups, each with its own cache directory and lock: "bed", the images above,
built by `up`; "real", the look-alikes of the official images the real upstream stack
pulls (bed/real_bases.py), built only when asked for (`./testbed images --real`).

  agbed/debian:bookworm    debootstrap --variant=minbase bookworm + python3
  agbed/busybox:latest     Debian's busybox-static, its applets as symlinks
  agbed/registry:2         busybox + Debian's docker-registry binary; also tagged registry:2,
                           the name the guide's registry service and the stack's
                           sandboximageregistry use
  postgres:<v>             debian + bed/standin_server.py postgres, for each of
                           POSTGRES_VERSIONS (PG_MAJOR=<v>): the names a compose file pulls
  agbed/redis:standin      debian + bed/standin_server.py redis; also redis:latest
"""

import fcntl
import hashlib
import io
import json
import os
import shutil
import subprocess
import tarfile
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from . import config, real_bases
from .util import debian_mirror, log, run

IMAGES_DIR = config.CACHE_DIR / "images"
LOCK_FILE = IMAGES_DIR / ".lock"
DEBIAN_INCLUDE = ("python3",)
# the postgres versions a compose file may name: upstream's default, and what 2025.08 requires
POSTGRES_VERSIONS = ("9.5", "13", "14")
STANDIN_SERVER = Path(__file__).with_name("standin_server.py")
REGISTRY_CONFIG = """\
version: 0.1
log:
  fields:
    service: registry
storage:
  cache:
    blobdescriptor: inmemory
  filesystem:
    rootdirectory: /var/lib/registry
  delete:
    enabled: true
http:
  addr: :5000
"""


@dataclass(frozen=True)
class Image:
    name: str  # file stem in the cache
    tags: tuple
    base: str | None  # name of the image whose layers come first
    layer: str  # builder of this image's own layer (LAYERS)
    config: dict = field(default_factory=dict)  # the image config's "config" (Cmd, Env, ...)
    group: str = "bed"


IMAGES = (
    Image("debian", ("agbed/debian:bookworm",), None, "debian",
          {"Env": [config.PATH_ENV, "LANG=C.UTF-8"], "Cmd": ["bash"]}),
    Image("busybox", ("agbed/busybox:latest",), None, "busybox",
          {"Env": [config.PATH_ENV], "Cmd": ["sh"]}),
    Image("registry", ("agbed/registry:2", "registry:2"), "busybox", "registry",
          {"Env": [config.PATH_ENV], "Entrypoint": ["/bin/registry"],
           "Cmd": ["serve", "/etc/docker/registry/config.yml"],
           "Volumes": {"/var/lib/registry": {}}, "ExposedPorts": {"5000/tcp": {}}}),
    *(Image(f"postgres{v}", (f"postgres:{v}",), "debian", "standin",
            {"Env": [config.PATH_ENV, f"PG_MAJOR={v}", "PGDATA=/var/lib/postgresql/data"],
             "Cmd": ["python3", "/usr/local/bin/ag-standin", "postgres"],
             "Volumes": {"/var/lib/postgresql/data": {}}, "ExposedPorts": {"5432/tcp": {}}})
      for v in POSTGRES_VERSIONS),
    Image("redis", ("agbed/redis:standin", "redis:latest"), "debian", "standin",
          {"Env": [config.PATH_ENV], "Cmd": ["python3", "/usr/local/bin/ag-standin", "redis"],
           "WorkingDir": "/data", "Volumes": {"/data": {}}, "ExposedPorts": {"6379/tcp": {}}}),
    Image("bullseye", (real_bases.BASE_TAG,), None, "bullseye",
          {"Env": [config.PATH_ENV], "Cmd": ["bash"]}, group="real"),
    *(Image(b.image_name, b.tags, "bullseye", b.image_name, b.config, group="real")
      for b in real_bases.BASES),
)
BY_NAME = {img.name: img for img in IMAGES}
GROUPS = ("bed", "real")


def in_group(group: str) -> list:
    return [img for img in IMAGES if img.group == group]


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# --- layers: each builder writes one layer tar and says what its content depends on ---------

class _TarWriter:
    """A deterministic layer tar (root-owned, mtime 0) built from files and literal text."""

    def __init__(self, path: Path):
        self.tar = tarfile.open(path, "w", format=tarfile.GNU_FORMAT)
        self.dirs = set()

    def _info(self, name: str, kind, mode: int) -> tarfile.TarInfo:
        info = tarfile.TarInfo(name.lstrip("/"))
        info.type, info.mode, info.mtime, info.uid, info.gid = kind, mode, 0, 0, 0
        return info

    def dir(self, name: str, mode: int = 0o755) -> None:
        parts = name.strip("/").split("/")
        for i in range(1, len(parts) + 1):
            sub = "/".join(parts[:i])
            if sub not in self.dirs:
                self.dirs.add(sub)
                self.tar.addfile(self._info(sub, tarfile.DIRTYPE, mode if i == len(parts) else 0o755))

    def file(self, name: str, data: bytes, mode: int = 0o644) -> None:
        self.dir(os.path.dirname(name))
        info = self._info(name, tarfile.REGTYPE, mode)
        info.size = len(data)
        self.tar.addfile(info, io.BytesIO(data))

    def copy(self, name: str, src: str, mode: int = 0o755) -> None:
        self.file(name, Path(src).read_bytes(), mode)

    def symlink(self, name: str, target: str) -> None:
        self.dir(os.path.dirname(name))
        info = self._info(name, tarfile.SYMTYPE, 0o777)
        info.linkname = target
        self.tar.addfile(info)

    def close(self) -> None:
        self.tar.close()


def _busybox_layer(out: Path, _base_layers) -> None:
    t = _TarWriter(out)
    t.copy("/bin/busybox", "/bin/busybox")
    applets = run(["/bin/busybox", "--list-full"]).stdout.split()
    for applet in sorted(set(applets) - {"bin/busybox"}):
        t.symlink(applet, "/bin/busybox")
    t.dir("/tmp", 0o1777)
    t.dir("/root", 0o700)
    t.file("/etc/passwd", b"root:x:0:0:root:/root:/bin/sh\n")
    t.file("/etc/group", b"root:x:0:\n")
    t.close()


def _registry_layer(out: Path, _base_layers) -> None:
    t = _TarWriter(out)
    t.copy("/bin/registry", "/usr/bin/docker-registry")
    t.copy("/lib/x86_64-linux-gnu/libc.so.6", "/lib/x86_64-linux-gnu/libc.so.6")
    t.copy("/lib64/ld-linux-x86-64.so.2", "/lib64/ld-linux-x86-64.so.2")
    t.file("/etc/docker/registry/config.yml", REGISTRY_CONFIG.encode())
    t.dir("/var/lib/registry")
    t.close()


def _standin_layer(out: Path, _base_layers) -> None:
    t = _TarWriter(out)
    t.copy("/usr/local/bin/ag-standin", str(STANDIN_SERVER))
    for command in ("pg_dump", "psql"):  # the stand-in, called by the name it answers to
        t.symlink(f"/usr/local/bin/{command}", "ag-standin")
    t.dir("/var/lib/postgresql/data", 0o700)
    t.dir("/data")
    t.close()


@contextmanager
def _scratch_dir(parent: Path):
    """A build directory that is removed afterwards, after undoing any mount a build
    (debootstrap, a package install) left inside it (never delete through a mounted /proc)."""
    path = Path(tempfile.mkdtemp(prefix="build-", dir=parent))
    try:
        yield path
    finally:
        mounts = [line.split()[1] for line in Path("/proc/self/mounts").read_text().splitlines()]
        for mnt in sorted((m for m in mounts if m.startswith(str(path) + "/")), reverse=True):
            subprocess.run(["umount", "-l", mnt], capture_output=True)
        shutil.rmtree(path, ignore_errors=True)


def _debootstrap_layer(suite: str, include=()):
    """Builder of a layer that is Debian `suite` (minbase variant, plus `include`)."""
    def build(out: Path, _base_layers) -> None:
        with _scratch_dir(out.parent) as build_dir:
            rootfs = build_dir / "rootfs"
            mirror = debian_mirror()
            log(f"images: debootstrap {suite} (minbase{''.join(f', {p}' for p in include)}), "
                "about two minutes, once")
            options = ["--variant=minbase"] + ([f"--include={','.join(include)}"] if include else [])
            res = subprocess.run(["debootstrap", *options, suite, str(rootfs), mirror],
                                 capture_output=True, text=True)
            if res.returncode != 0:
                raise RuntimeError(
                    f"debootstrap of Debian {suite} from {mirror} failed; see "
                    f"{rootfs}/debootstrap/debootstrap.log or run it by hand:\n{res.stdout[-2000:]}"
                )
            for junk in ("var/cache/apt/archives", "var/lib/apt/lists", "var/log"):
                for p in (rootfs / junk).glob("*"):
                    if p.is_file():
                        p.unlink()
            # docker gives every container its own /dev, /proc and /sys
            run(["tar", "--numeric-owner", "--xattrs", "--sort=name", "-C", str(rootfs),
                 "--exclude=./dev/*", "--exclude=./proc/*", "--exclude=./sys/*",
                 "-cf", str(out), "."])
    return build


def _debootstrap_inputs(suite: str, include=()):
    return lambda: {"suite": suite, "variant": "minbase", "include": include,
                    "mirror": debian_mirror()}


LAYERS = {
    # name: (builder, what the content depends on)
    "debian": (_debootstrap_layer("bookworm", DEBIAN_INCLUDE),
               _debootstrap_inputs("bookworm", DEBIAN_INCLUDE)),
    "bullseye": (_debootstrap_layer(real_bases.SUITE), _debootstrap_inputs(real_bases.SUITE)),
    "busybox": (_busybox_layer, lambda: {"busybox": _sha256_file(Path("/bin/busybox"))}),
    "registry": (_registry_layer, lambda: {
        "registry": _sha256_file(Path("/usr/bin/docker-registry")),
        "libc": _sha256_file(Path("/lib/x86_64-linux-gnu/libc.so.6")),
        "config": REGISTRY_CONFIG}),
    "standin": (_standin_layer, lambda: {"server": _sha256_file(STANDIN_SERVER)}),
    **{b.image_name: (real_bases.layer_builder(b), real_bases.layer_inputs(b))
       for b in real_bases.BASES},
}


# --- images: the cache, keyed by a digest of everything an image is made of ----------------

def group_dir(group: str) -> Path:
    return IMAGES_DIR if group == "bed" else IMAGES_DIR / group


def tarball(name: str) -> Path:
    return group_dir(BY_NAME[name].group) / f"{name}.tar"


def _meta_path(name: str) -> Path:
    return group_dir(BY_NAME[name].group) / f"{name}.json"


def meta(name: str) -> dict:
    """What the cache holds for an image: id, tags, key, size, build seconds ({} if none)."""
    try:
        return json.loads(_meta_path(name).read_text())
    except (FileNotFoundError, ValueError):
        return {}


def _key(img: Image) -> str:
    inputs = {"tags": img.tags, "config": img.config, "layer": LAYERS[img.layer][1](),
              "base": _key(BY_NAME[img.base]) if img.base else None, "format": 2}
    return hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()


def _base_layers(img: Image, into: Path) -> list:
    """Extract the layer tars of the image's base from the base's cached (full) tarball."""
    if not img.base:
        return []
    if BY_NAME[img.base].base:
        raise ValueError(f"image {img.name}: its base {img.base} must not have a base itself")
    with tarfile.open(tarball(img.base)) as saved:
        manifest = json.load(saved.extractfile("manifest.json"))[0]
        paths = []
        for i, member in enumerate(manifest["Layers"]):
            path = into / f"base{i}.tar"
            with saved.extractfile(member) as src, open(path, "wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
            paths.append(path)
    return paths


def _build(img: Image, key: str) -> None:
    started = time.monotonic()
    log(f"images: building {img.tags[0]}")
    with _scratch_dir(group_dir(img.group)) as build:
        layers = _base_layers(img, build)  # hashed for the config's diff_ids, not saved
        own = build / "own.tar"
        LAYERS[img.layer][0](own, layers)
        layers.append(own)
        diff_ids = [_sha256_file(p) for p in layers]
        image_config = {
            "architecture": "amd64", "os": "linux", "created": "1970-01-01T00:00:00Z",
            "config": img.config,
            "rootfs": {"type": "layers", "diff_ids": [f"sha256:{d}" for d in diff_ids]},
        }
        config_bytes = json.dumps(image_config, sort_keys=True).encode()
        image_id = hashlib.sha256(config_bytes).hexdigest()
        manifest = [{"Config": f"{image_id}.json", "RepoTags": list(img.tags),
                     "Layers": [f"{d}/layer.tar" for d in diff_ids]}]
        tmp = build / "image.tar"
        with tarfile.open(tmp, "w") as out:
            # thin: the base's layers are on the node before this image is loaded
            out.add(own, f"{diff_ids[-1]}/layer.tar")
            for name, data in ((f"{image_id}.json", config_bytes),
                               ("manifest.json", json.dumps(manifest).encode())):
                info = tarfile.TarInfo(name)
                info.size = len(data)
                out.addfile(info, io.BytesIO(data))
        os.replace(tmp, tarball(img.name))
    info = {"id": f"sha256:{image_id}", "tags": list(img.tags), "key": key,
            "size": tarball(img.name).stat().st_size,
            "build_seconds": round(time.monotonic() - started, 1)}
    tmp_meta = _meta_path(img.name).with_suffix(".json.tmp")
    tmp_meta.write_text(json.dumps(info, indent=2) + "\n")
    os.replace(tmp_meta, _meta_path(img.name))
    log(f"images: {img.tags[0]} built in {info['build_seconds']}s, "
        f"{info['size'] / 1e6:.1f} MB")


@contextmanager
def _locked(group: str):
    """The group's builders one at a time (a slow "real" build never holds up `up`)."""
    directory = group_dir(group)
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / LOCK_FILE.name, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def build_all(group: str = "bed") -> dict:
    """Build every image of `group` whose cached tarball is missing or stale; return their
    metadata."""
    wanted = in_group(group)
    with _locked(group):
        for img in wanted:  # bases come before the images that use them
            key = _key(img)
            if meta(img.name).get("key") != key or not tarball(img.name).exists():
                _build(img, key)
        directory = group_dir(group)
        for stale in [*directory.glob("*.tar"), *directory.glob("*.json")]:
            if stale.stem not in {img.name for img in wanted}:  # one this code no longer makes
                stale.unlink()
    return {img.name: meta(img.name) for img in wanted}


# --- nodes -------------------------------------------------------------------------------

def node_images(node_exec, node: str) -> dict:
    """tag → image id of what the node's dockerd holds."""
    res = node_exec(node, ["docker", "image", "ls", "--no-trunc",
                           "--format", "{{.Repository}}:{{.Tag}} {{.ID}}"])
    if res.returncode != 0:
        raise RuntimeError(f"{node}: cannot list docker images: {res.stderr.strip()}")
    return dict(line.split() for line in res.stdout.splitlines() if line.strip())


def missing(node_exec, node: str, group: str = "bed") -> list:
    """Names of the group's images whose tags do not all point at the cached build on the
    node (the groups share some tags: loading one group's postgres:13 unloads the other's)."""
    have = node_images(node_exec, node)
    return [img.name for img in in_group(group)
            if any(have.get(tag) != meta(img.name).get("id") for tag in img.tags)]


def load_into(node_exec, node: str, names=None, group: str = "bed") -> list:
    """Load into `node` the images of `group` (all by default, else those named, with their
    bases) it lacks, bases first; return the names loaded. `node_exec(node, argv,
    **subprocess_kw)` runs argv on the node (tier 1: bed.netns.node_exec; tier 2: the same
    over ssh) and must pass `stdin` through, since the tarball is streamed to `docker load`
    on the node's stdin."""
    if names is not None:
        names = set(names) | {BY_NAME[n].base for n in names if BY_NAME[n].base}
    wanted = [n for n in missing(node_exec, node, group) if names is None or n in names]
    for name in wanted:
        with open(tarball(name), "rb") as f:
            res = node_exec(node, ["docker", "load", "-q"], stdin=f)
        if res.returncode != 0:
            raise RuntimeError(f"{node}: docker load of {tarball(name)} failed: {res.stderr.strip()}")
    if wanted:
        log(f"images: {node}: loaded {', '.join(wanted)}")
    return wanted


def ensure(node_exec, nodes) -> None:
    """Build what is stale, then load into every node what it lacks (`./testbed images`)."""
    build_all()
    for node in nodes:
        load_into(node_exec, node)
