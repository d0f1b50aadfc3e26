"""The deploy's compose override: upstream's docker-compose.yml stays untouched and is deployed
together with an override that this module computes from it and from the pillar's tweaks.
Plain Python without Salt (unit-tested on its own; states reach it through `__utils__`).

Commands are taken from upstream's file and only their worker counts are rewritten, so an
upstream change to any other flag reaches the deploy unchanged.
"""

import hashlib
import os
import re
import sys

import yaml

try:
    import docker.utils.build

    HAS_DOCKER = True
except ImportError:
    HAS_DOCKER = False

WORKERS_FLAG = re.compile(r"--workers=\d+")
CONCURRENCY_FLAG = re.compile(r"(?<=\s)-c\s+\d+")

# Upstream bakes autograder/settings/secrets (and the OAuth secrets file) into the django and
# grader images and pushes them to an open registry. The deploy keeps them out of the build
# context and mounts them at run time from the shared checkout instead.
SECRET_PATHS = ("autograder/settings/secrets", "autograder/settings/oauth2_secrets.json")
# generated once by the deploy (salt/ag/secrets.sls), beside upstream's generated secrets
DB_PASSWORD_FILE = "autograder-server/autograder/settings/secrets/db_password"
# where the postgres service finds it: the official image reads POSTGRES_PASSWORD_FILE (as
# root, before dropping to the postgres user) when POSTGRES_PASSWORD is empty, so the
# password is in no service spec and no `docker inspect`
POSTGRES_PASSWORD_TARGET = "/run/secrets/db_password"
COMPOSE_FILE = "docker-compose.yml"
SECRETS_LABEL = "ag.secrets.sha256"  # on the services that mount the secrets
CELERY_WORKER = re.compile(r"\bcelery\b.*\bworker\b")
# the guide: only the web server needs inbound traffic
WEB_PORTS = (80, 443)
APP_DIR = "/usr/src/app"


def __virtual__():
    if not HAS_DOCKER:
        return False, f"ag_compose needs the docker Python SDK ({sys.executable}): apply docker.sdk"
    return True


def _tweaked_command(service: str, command: str, workers: int, concurrency: dict):
    if service == "django" and WORKERS_FLAG.search(command):
        return WORKERS_FLAG.sub(f"--workers={workers}", command)
    if service in concurrency and CONCURRENCY_FLAG.search(command):
        return CONCURRENCY_FLAG.sub(f"-c {concurrency[service]}", command)
    return None


def _published_ports(service: dict) -> list:
    """(published, target) of a service's TCP ports, short ("80:80") or long syntax."""
    found = []
    for port in service.get("ports") or []:
        if isinstance(port, dict):
            if port.get("protocol", "tcp") == "tcp" and port.get("published"):
                found.append((int(port["published"]), int(port["target"])))
        elif ":" in str(port) and not str(port).endswith("/udp"):
            published, target = str(port).removesuffix("/tcp").split(":")[-2:]
            found.append((int(published), int(target)))
    return found


def _web_ports_on_its_node(service: dict) -> list:
    """The service's web ports re-published in host mode: the node running its task opens
    them, not every node of the ingress mesh (ports merge by published port)."""
    return [{"target": target, "published": published, "protocol": "tcp", "mode": "host"}
            for published, target in _published_ports(service) if published in WEB_PORTS]


def _builds_from_server(service: dict) -> bool:
    build = service.get("build") or {}
    context = build if isinstance(build, str) else build.get("context", "")
    return context.rstrip("/") in ("./autograder-server", "autograder-server")


def _postgres_password_from(db_password_file: str) -> dict:
    """The postgres service reading its password from `db_password_file` (relative to the
    checkout), mounted read-only. Upstream's POSTGRES_PASSWORD ('postgres') must be empty
    for that (the image refuses both at once), which ag.tweaks does in the compose file: an
    override cannot, docker's merge skips empty values."""
    return {"environment": {"POSTGRES_PASSWORD_FILE": POSTGRES_PASSWORD_TARGET},
            "volumes": [f"./{db_password_file}:{POSTGRES_PASSWORD_TARGET}:ro"]}


def override(compose: dict, workers: int, concurrency: dict, secret_paths=SECRET_PATHS,
             db_password_file=None, postgres_version=None, web_on_webserver_only=True,
             secrets_digest=None, worker_stop_grace_period=None) -> dict:
    """The override for upstream's `compose` dict: rewritten worker counts where they differ
    from upstream, `secret_paths` (those that exist in the checkout) mounted read-only into
    every service built from autograder-server, labelled with `secrets_digest` (of the
    secrets' content: a rotated secret rolls exactly the services that read it at start),
    the postgres service's password read from
    `db_password_file` and its image version when given (upstream ships 'postgres' in the
    compose file and 9.5), every celery worker given `worker_stop_grace_period` seconds to
    finish its task when stopped, and with `web_on_webserver_only` ports 80/443 opened only on the
    node running their service (nginx, labelled webserver). It holds no secret."""
    services = {}
    for name, service in (compose.get("services") or {}).items():
        entry = {}
        if name == "postgres":
            if db_password_file:
                entry.update(_postgres_password_from(db_password_file))
            if postgres_version:
                entry["image"] = f"postgres:{postgres_version}"
        command = service.get("command")
        if isinstance(command, str):
            tweaked = _tweaked_command(name, command, workers, concurrency)
            if tweaked and tweaked != command:
                entry["command"] = tweaked
        if worker_stop_grace_period and CELERY_WORKER.search(str(command)):
            entry["stop_grace_period"] = f"{int(worker_stop_grace_period)}s"
        if web_on_webserver_only and (web_ports := _web_ports_on_its_node(service)):
            entry["ports"] = web_ports
        if _builds_from_server(service) and secret_paths:
            entry["volumes"] = [f"./autograder-server/{p}:{APP_DIR}/{p}:ro" for p in secret_paths]
            if secrets_digest:
                entry["labels"] = {SECRETS_LABEL: secrets_digest}
        if entry:
            services[name] = entry
    return _override_of(compose, services)


def _override_of(compose: dict, services: dict) -> dict:
    """A compose file of `services` that docker stack deploy merges with `compose`: of its
    version, or like it without one (the Compose spec's form; another version is refused as
    "version mismatched")."""
    return {**({"version": compose["version"]} if "version" in compose else {}),
            "services": services}


def builds(compose: dict) -> dict:
    """What the compose file builds: {(context, dockerfile): sorted image names} (one build per
    context and Dockerfile; upstream builds several images from one)."""
    found = {}
    for service in (compose.get("services") or {}).values():
        build = service.get("build")
        if not build or not service.get("image"):
            continue
        if isinstance(build, str):
            build = {"context": build}
        key = (os.path.normpath(build["context"]), build.get("dockerfile", "Dockerfile"))
        found.setdefault(key, set()).add(service["image"])
    return {key: sorted(images) for key, images in found.items()}


def context_hash(context: str, dockerfile: str) -> str:
    """sha256 of a build's inputs as the daemon gets them: every file of `context` that its
    .dockerignore lets through (path, mode bit x, content) and the Dockerfile's name."""
    ignore = os.path.join(context, ".dockerignore")
    patterns = []
    if os.path.exists(ignore):
        with open(ignore) as fh:
            patterns = [line.strip() for line in fh.read().splitlines()
                        if line.strip() and not line.strip().startswith("#")]
    digest = hashlib.sha256(f"dockerfile {dockerfile}\n".encode())
    for rel in sorted(docker.utils.build.exclude_paths(context, patterns, dockerfile=dockerfile)):
        path = os.path.join(context, rel)
        if os.path.isdir(path) and not os.path.islink(path):
            continue
        digest.update(f"{rel}\0{os.access(path, os.X_OK)}\0".encode())
        if os.path.islink(path):
            digest.update(os.readlink(path).encode())
        else:
            with open(path, "rb") as fh:
                digest.update(hashlib.sha256(fh.read()).digest())
    return digest.hexdigest()


def pinned(compose: dict, digests: dict) -> dict:
    """An override naming each built service's image by digest (`digests`: image name →
    sha256:...), so a redeploy of unchanged images restarts no task and a changed image rolls
    exactly the services that use it."""
    services = {}
    for name, service in (compose.get("services") or {}).items():
        image = service.get("image")
        if image in digests:
            services[name] = {"image": f"{image}@{digests[image]}"}
    return _override_of(compose, services)


def existing_secrets(checkout: str) -> list:
    """The SECRET_PATHS present in `checkout`'s autograder-server (only those can be mounted)."""
    return [p for p in SECRET_PATHS
            if os.path.exists(os.path.join(checkout, "autograder-server", p))]


def secrets_digest(checkout: str, secret_paths) -> str:
    """sha256 of every file under `secret_paths` (of the checkout's autograder-server): their
    names and content, never a value itself."""
    digest = hashlib.sha256()
    server = os.path.join(checkout, "autograder-server")
    for path in secret_paths:
        top = os.path.join(server, path)
        files = [top] if os.path.isfile(top) else sorted(
            os.path.join(folder, name) for folder, _, names in os.walk(top) for name in names)
        for file in files:
            digest.update(os.path.relpath(file, server).encode() + b"\0")
            with open(file, "rb") as fh:
                digest.update(hashlib.sha256(fh.read()).digest())
    return digest.hexdigest()


def checkout_override(checkout: str, workers: int, concurrency: dict, postgres_version=None,
                      web_on_webserver_only=True, worker_stop_grace_period=None) -> dict:
    """The override for the checkout at `checkout` as it is now: its compose file, the secrets
    present (and their digest), the generated database password file if it is there (its
    path, not its value)."""
    with open(os.path.join(checkout, COMPOSE_FILE)) as fh:
        compose = yaml.safe_load(fh)
    has_password = os.path.exists(os.path.join(checkout, DB_PASSWORD_FILE))
    present = existing_secrets(checkout)
    return override(compose, int(workers), dict(concurrency), present,
                    db_password_file=DB_PASSWORD_FILE if has_password else None,
                    postgres_version=postgres_version,
                    web_on_webserver_only=web_on_webserver_only,
                    worker_stop_grace_period=worker_stop_grace_period,
                    secrets_digest=secrets_digest(checkout, present) if present else None)
