"""Look-alikes of the official images the real autograder-full-stack pulls or builds FROM
(the "real" group of bed/images.py), made from Debian bullseye's packages: nothing can be
pulled from Docker Hub here. What each does differently from the official image is listed
in bed/README.md ("The real stack's base images"); tests/integration/test_real_bases.py
checks the behaviours the stack relies on.

Each is agbed/debian:bullseye (debootstrap minbase) plus one layer: the base's root under an
overlayfs, the packages installed into it with apt-get in a chroot (daemons kept from
starting by a policy-rc.d), then the files and a script; the layer is what the overlay's
upper directory holds, its deletions turned into Docker's whiteout files.
"""

import hashlib
import os
import stat
import subprocess
from dataclasses import dataclass
from pathlib import Path

from . import ca, config, releases
from .util import debian_mirror, run

SUITE = "bullseye"  # Python 3.9: the nearest to the official images' 3.8 that Debian has
BASE_TAG = f"agbed/debian:{SUITE}"
HERE = Path(__file__).with_name("real-bases")
PG_MAJOR = "13"  # bullseye's PostgreSQL, behind every postgres tag
PG_BIN = f"/usr/lib/postgresql/{PG_MAJOR}/bin"
SANDBOX_RELEASE = ("autograder-sandbox", "3.1.2", "autograder_sandbox/docker-image-setup")
ENTRYPOINT = "/usr/local/bin/docker-entrypoint.sh"
APT_ENV = {"DEBIAN_FRONTEND": "noninteractive", "PATH": config.PATH_ENV.split("=", 1)[1],
           "LANG": "C.UTF-8"}


# what lets a real Dockerfile's own fetches reach the bed (bed/upstream.py): apt through the
# bed's apt proxy, https to the names the bed answers trusted through its CA (added to the
# system store by update-ca-certificates, the base's or the one a Dockerfile's apt-get runs)
BED_FETCHES = (
    ("/etc/apt/apt.conf.d/01agbed-proxy",
     f'Acquire::http::Proxy "http://apt.{config.BED_DOMAIN}:{config.APT_PORT}";\n', 0o644),
    ("/usr/local/share/ca-certificates/agbed-ca.crt", ca.ca_cert, 0o644),
)


def _here(name: str):
    return lambda: (HERE / name).read_text()


def _release(repo: str, rev: str, path: str):
    return lambda: releases.show(repo, rev, path)


@dataclass(frozen=True)
class Base:
    name: str
    tags: tuple
    packages: tuple
    config: dict  # the image config's "config" (Entrypoint, Cmd, Env, ...)
    # (path, text or a function returning it, mode), written after the packages are in
    files: tuple = ()
    prepare: str = ""  # shell run in the root before the install
    script: str = ""  # shell run in the root after the files are written

    @property
    def image_name(self) -> str:
        """Its name in bed/images.py (cache file stem), apart from the bed's own images'."""
        return f"real-{self.name}"


# the official nginx images' user, conf layout and logs, on Debian's nginx
NGINX_AS_OFFICIAL = ("useradd --system --user-group --no-create-home --home-dir /nonexistent"
                     " --shell /bin/false nginx\n"
                     "rm -rf /etc/nginx/sites-available /etc/nginx/sites-enabled\n"
                     "ln -sf /dev/stdout /var/log/nginx/access.log\n"
                     "ln -sf /dev/stderr /var/log/nginx/error.log\n")

BASES = (
    # the server's Dockerfiles: `pip install pip-tools`, `pip-sync requirements.txt` (psycopg2
    # from source: gcc, libpq-dev, Python's headers), python-gnupg (gpg), /usr/local/bin/celery
    Base("python", ("python:3.8",),
         ("python3", "python3-venv", "python3-dev", "gcc", "libc6-dev", "make", "libpq-dev",
          "gnupg", "wget", "curl", "ca-certificates", "git", "procps"),
         {"Env": [config.PATH_ENV, "LANG=C.UTF-8", "PIP_CONSTRAINT=/etc/pip-constraints.txt"],
          "Cmd": ["python3"]},
         # pip 24.1 and later reject celery 4.4.7's metadata; pip-tools would upgrade pip.
         # pip's index is the bed's proxy of this machine's (bed/pypi_proxy.py)
         files=(("/etc/pip-constraints.txt", "pip<24.1\n", 0o644),
                ("/etc/pip.conf", f"[global]\nindex-url = {config.PYPI_INDEX}\n"
                 f"trusted-host = pypi.{config.BED_DOMAIN}\n", 0o644), *BED_FETCHES),
         # a venv over /usr/local: python3, pip and what they install in /usr/local, as in the
         # official image, apart from Debian's own Python packages (which pip-sync must not see)
         script="python3 -m venv /usr/local\nupdate-ca-certificates"),
    # the website's Dockerfile installs Node 12 and npm in it (bed/plain-urls/setup_12.x.sh):
    # npm's global config names the bed's npm proxy, and the CA store that trusts the bed's
    # CA (Node's own list of CAs does not have it)
    Base("nginx", ("nginx:1.13",), ("nginx-core",),
         {"Env": [config.PATH_ENV], "Cmd": ["nginx", "-g", "daemon off;"],
          "ExposedPorts": {"80/tcp": {}}, "StopSignal": "SIGTERM"},
         files=(("/etc/nginx/nginx.conf", _here("nginx.conf"), 0o644),
                ("/etc/nginx/conf.d/default.conf", _here("nginx-default.conf"), 0o644),
                ("/usr/etc/npmrc", f"registry={config.NPM_REGISTRY}\n"
                 "cafile=/etc/ssl/certs/ca-certificates.crt\n", 0o644),
                *BED_FETCHES),
         script=NGINX_AS_OFFICIAL),
    Base("rabbitmq", ("rabbitmq:3.8",), ("rabbitmq-server", "gosu"),
         {"Env": [f"PATH=/usr/lib/rabbitmq/bin:{APT_ENV['PATH']}", "LANG=C.UTF-8",
                  "RABBITMQ_DATA_DIR=/var/lib/rabbitmq", "HOME=/var/lib/rabbitmq",
                  "RABBITMQ_LOGS=-"],
          "Entrypoint": ["docker-entrypoint.sh"], "Cmd": ["rabbitmq-server"],
          "Volumes": {"/var/lib/rabbitmq": {}},
          "ExposedPorts": {f"{p}/tcp": {} for p in (4369, 5671, 5672, 25672)}},
         files=((ENTRYPOINT, _here("rabbitmq-entrypoint.sh"), 0o755),
                ("/etc/rabbitmq/rabbitmq.conf", "loopback_users.guest = false\n", 0o644))),
    # one PostgreSQL under every tag a compose file or the pillar names (9.5, 13, 14)
    Base("postgres", ("postgres:9.5", "postgres:13", "postgres:14"),
         (f"postgresql-{PG_MAJOR}", "gosu", "locales"),
         {"Env": [f"{config.PATH_ENV}:{PG_BIN}", f"PG_MAJOR={PG_MAJOR}", "LANG=en_US.utf8",
                  "PGDATA=/var/lib/postgresql/data"],
          "Entrypoint": ["docker-entrypoint.sh"], "Cmd": ["postgres"], "StopSignal": "SIGINT",
          "Volumes": {"/var/lib/postgresql/data": {}}, "ExposedPorts": {"5432/tcp": {}}},
         files=((ENTRYPOINT, _here("postgres-entrypoint.sh"), 0o755),),
         # as the official image: no "main" cluster; the entrypoint makes one in $PGDATA
         prepare="apt-get install -y --no-install-recommends postgresql-common\n"
                 "sed -ri 's/#(create_main_cluster) .*$/\\1 = false/' "
                 "/etc/postgresql-common/createcluster.conf\n",
         script="sed -ri \"s!^#?(listen_addresses)\\s*=\\s*\\S+.*!\\1 = '*'!\" "
                f"/usr/share/postgresql/{PG_MAJOR}/postgresql.conf.sample\n"
                "localedef -i en_US -c -f UTF-8 -A /usr/share/locale/locale.alias en_US.UTF-8\n"
                "mkdir -p /var/lib/postgresql/data /docker-entrypoint-initdb.d\n"
                "chown postgres:postgres /var/lib/postgresql/data\n"
                "chmod 777 /var/lib/postgresql/data\n"
                "ln -s usr/local/bin/docker-entrypoint.sh /docker-entrypoint.sh\n"),
    Base("redis", ("redis:latest",), ("redis-server", "gosu"),
         {"Env": [config.PATH_ENV], "Entrypoint": ["docker-entrypoint.sh"],
          "Cmd": ["redis-server"], "WorkingDir": "/data", "Volumes": {"/data": {}},
          "ExposedPorts": {"6379/tcp": {}}},
         files=((ENTRYPOINT, _here("redis-entrypoint.sh"), 0o755),),
         script="mkdir -p /data\nchown redis:redis /data\n"),
    # the release's docker-image-setup/Dockerfile, FROM ubuntu:xenial, on bullseye
    Base("sandbox", (f"jameslp/autograder-sandbox:{SANDBOX_RELEASE[1]}",),
         ("g++", "valgrind", "clang", "build-essential", "python3", "iputils-ping"),
         {"Env": [config.PATH_ENV], "Cmd": ["/bin/bash"],
          "WorkingDir": "/home/autograder/working_dir"},
         files=(("/usr/local/bin/cmd_runner.py",
                 _release(SANDBOX_RELEASE[0], SANDBOX_RELEASE[1],
                          f"{SANDBOX_RELEASE[2]}/cmd_runner.py"), 0o555),),
         script="useradd autograder\n"
                "mkdir -p /home/autograder/working_dir\n"
                "chown -R autograder:autograder /home/autograder\n"),
    # 2021.05.v4's apidocs service (2022.01.v1 has none): the API's OpenAPI document on 8080
    Base("swagger-ui", ("swaggerapi/swagger-ui:latest",), ("nginx-core",),
         {"Env": [config.PATH_ENV], "Entrypoint": ["docker-entrypoint.sh"],
          "Cmd": ["nginx", "-g", "daemon off;"], "ExposedPorts": {"8080/tcp": {}}},
         files=((ENTRYPOINT, _here("swagger-ui-entrypoint.sh"), 0o755),
                ("/etc/nginx/nginx.conf", _here("nginx.conf"), 0o644),
                ("/etc/nginx/conf.d/default.conf", "server {\n    listen 8080;\n"
                 "    root /usr/share/nginx/html;\n    index index.html;\n}\n", 0o644)),
         script=NGINX_AS_OFFICIAL + "mkdir -p /usr/share/nginx/html\n"),
)


def _text(source) -> str:
    return source() if callable(source) else source


def layer_inputs(base: Base):
    """What the base's layer depends on (for the image cache's key)."""
    return lambda: {
        "suite": SUITE, "mirror": debian_mirror(), "packages": base.packages,
        "files": [(path, hashlib.sha256(_text(src).encode()).hexdigest(), mode)
                  for path, src, mode in base.files],
        "prepare": base.prepare, "script": base.script}


def layer_builder(base: Base):
    """Builder of the base's own layer (bed/images.py's builder interface)."""
    def build(out: Path, base_layers) -> None:
        work = out.parent
        lower, upper, overlay_work, root = (work / d for d in ("lower", "upper", "ovl", "root"))
        for directory in (lower, upper, overlay_work, root):
            directory.mkdir()
        for layer in base_layers:
            run(["tar", "--numeric-owner", "--xattrs", "--xattrs-include=*", "-C", str(lower),
                 "-xf", str(layer)])
        run(["mount", "-t", "overlay", "overlay", "-o",
             f"lowerdir={lower},upperdir={upper},workdir={overlay_work}", str(root)])
        try:
            _install(base, root)
        finally:
            run(["umount", str(root)])
        _docker_whiteouts(upper, lower)
        run(["tar", "--numeric-owner", "--xattrs", "--xattrs-include=*",
             "--xattrs-exclude=trusted.*", "--sort=name", "-C", str(upper), "-cf", str(out), "."])
    return build


def install_script(base: Base) -> str:
    return "\n".join(["apt-get update -q", base.prepare,
                      "apt-get install -y -q --no-install-recommends " + " ".join(base.packages)])


def finish_script(base: Base) -> str:
    """The base's script, then no apt cache or package lists left in the layer."""
    return "\n".join([base.script, "apt-get clean", "rm -rf /var/lib/apt/lists/*"])


def _chroot(root: Path, script: str) -> None:
    res = subprocess.run(["chroot", str(root), "/bin/sh", "-ec", script], env=APT_ENV,
                         capture_output=True, text=True)
    if res.returncode != 0:
        raise RuntimeError(f"in the image root {root}: {script.strip()}\nfailed "
                           f"({res.returncode}):\n{(res.stdout + res.stderr)[-3000:]}")


def _install(base: Base, root: Path) -> None:
    policy = root / "usr/sbin/policy-rc.d"
    policy.write_text("#!/bin/sh\n# no daemon starts while the image is made\nexit 101\n")
    policy.chmod(0o755)
    resolv = root / "etc/resolv.conf"
    made_resolv = not resolv.exists()
    resolv.touch()
    mounts = [(["--bind", "/dev"], root / "dev"), (["-t", "proc", "proc"], root / "proc"),
              (["--bind", "/etc/resolv.conf"], resolv)]  # apt reaches the mirror as this host
    try:
        for how, where in mounts:
            run(["mount", *how, str(where)])
        _chroot(root, install_script(base))
        for path, source, mode in base.files:
            dest = root / path.lstrip("/")
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_text(_text(source))
            dest.chmod(mode)
        _chroot(root, finish_script(base))
    finally:
        for _, where in reversed(mounts):
            subprocess.run(["umount", "-l", str(where)], capture_output=True)
        policy.unlink()
        if made_resolv:  # docker gives each container its own
            resolv.unlink()


def _docker_whiteouts(upper: Path, lower: Path) -> None:
    """overlayfs marks a deleted file with a 0/0 character device and a directory whose old
    content is gone with an xattr; a Docker layer marks them with .wh. files. (overlayfs also
    marks directories new to the upper layer opaque: nothing below to hide, so no marker.)"""
    for dirpath, dirnames, filenames in os.walk(upper):
        here = Path(dirpath)
        for name in dirnames + filenames:
            st = os.lstat(here / name)
            if stat.S_ISCHR(st.st_mode) and st.st_rdev == 0:
                (here / name).unlink()
                (here / f".wh.{name}").touch()
        try:
            opaque = os.getxattr(here, "trusted.overlay.opaque") == b"y"
        except OSError:
            opaque = False
        if opaque and (lower / here.relative_to(upper)).is_dir():
            (here / ".wh..wh..opq").touch()
