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
# context and gives each file to the services as a swarm secret instead, at its own path: the
# secrets dir itself stays a writable directory of the container, which gpg needs (it is the
# app's GPG home: locks, its agent's socket, a trust database), and no secret is read from
# NFS or lies in a node's filesystem outside the swarm's encrypted store.
SECRET_PATHS = ("autograder/settings/secrets", "autograder/settings/oauth2_secrets.json")
# what gpg writes into its home as it runs: made anew in each container, never given
GPG_RUNTIME = re.compile(r"(random_seed|trustdb\.gpg|S\..*|\.#lk.*|.*\.lock|.*~)")
# generated once by the deploy (salt/ag/secrets.sls), beside upstream's generated secrets
DB_PASSWORD = "autograder/settings/secrets/db_password"
# the official postgres image reads POSTGRES_PASSWORD_FILE (as root, before dropping to the
# postgres user) when POSTGRES_PASSWORD is empty, so the password is in no service spec and
# no `docker inspect`; a swarm secret's plain target is under /run/secrets
POSTGRES_PASSWORD_TARGET = "db_password"
COMPOSE_FILE = "docker-compose.yml"
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


def _secret_key(path: str, digest: str) -> str:
    """The swarm secret of one file's content, named by its path and content: swarm secrets
    never change, so a changed file is a new secret (which rolls exactly the services given
    it) and the same content is the same secret (a redeploy changes nothing)."""
    return "ag_" + hashlib.sha256(f"{path}\0{digest}".encode()).hexdigest()[:24]


def override(compose: dict, workers: int, concurrency: dict, secret_files=None,
             postgres_version=None, web_on_webserver_only=True,
             worker_stop_grace_period=None) -> dict:
    """The override for upstream's `compose` dict: rewritten worker counts where they differ
    from upstream, `secret_files` ({path under autograder-server: sha256 of its content}, see
    checkout_secret_files) given as swarm secrets at their own paths to every service built
    from autograder-server, the postgres service's password read from the generated
    db_password secret (when it is among them) and its image version when given (upstream
    ships 'postgres' in the compose file and 9.5), every celery worker given
    `worker_stop_grace_period` seconds to finish its task when stopped, and with
    `web_on_webserver_only` ports 80/443 opened only on the node running their service
    (nginx, labelled webserver). It names files and digests, never a secret's value."""
    secret_files = secret_files or {}
    services, declared = {}, {}

    def given(path, target):
        """Secret file `path` given at `target`, and declared for the stack."""
        key = _secret_key(path, secret_files[path])
        declared[key] = {"file": f"./autograder-server/{path}"}
        return {"source": key, "target": target}

    for name, service in (compose.get("services") or {}).items():
        entry = {}
        if name == "postgres":
            if DB_PASSWORD in secret_files:
                entry["environment"] = {
                    "POSTGRES_PASSWORD_FILE": f"/run/secrets/{POSTGRES_PASSWORD_TARGET}"}
                entry["secrets"] = [given(DB_PASSWORD, POSTGRES_PASSWORD_TARGET)]
            if postgres_version and not service.get("build"):  # else a build arg: builds()
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
        if _builds_from_server(service) and secret_files:
            entry["secrets"] = [given(path, f"{APP_DIR}/{path}") for path in sorted(secret_files)]
        if entry:
            services[name] = entry
    return _override_of(compose, services, dict(sorted(declared.items())))


def _override_of(compose: dict, services: dict, secrets=None) -> dict:
    """A compose file of `services` (and the `secrets` they are given) that docker stack
    deploy merges with `compose`: of its version, or like it without one (the Compose spec's
    form; another version is refused as "version mismatched")."""
    return {**({"version": compose["version"]} if "version" in compose else {}),
            "services": services, **({"secrets": secrets} if secrets else {})}


def shadowed_lines(text: str):
    """The lines of a compose file's `text` (0-based) that set a key its mapping sets again
    later, each a one-line scalar: upstream's compose file names `image:` twice in postgres
    and redis, which older docker and PyYAML read as the later value and today's docker
    refuses ("mapping key already defined"). Raises ValueError naming a repeated key whose
    value is more than one line (no line alone can be taken out)."""
    found = []

    def walk(node):
        if isinstance(node, yaml.MappingNode):
            last = {}
            for key, value in node.value:
                if isinstance(key, yaml.ScalarNode) and key.value != "<<":
                    if key.value in last:
                        earlier_key, earlier_value = last[key.value]
                        if not (isinstance(earlier_value, yaml.ScalarNode)
                                and earlier_value.end_mark.line == earlier_key.start_mark.line):
                            raise ValueError(f"line {earlier_key.start_mark.line + 1}: "
                                             f"{key.value!r} is set again at line "
                                             f"{key.start_mark.line + 1}, over more than one line")
                        found.append(earlier_key.start_mark.line)
                    last[key.value] = (key, value)
                walk(value)
        elif isinstance(node, yaml.SequenceNode):
            for item in node.value:
                walk(item)

    walk(yaml.compose(text))
    return sorted(found)


def celery_workers(compose: dict) -> list:
    """The compose file's services that run a celery worker (the graders among them)."""
    return sorted(name for name, service in (compose.get("services") or {}).items()
                  if CELERY_WORKER.search(str(service.get("command"))))


# a compose file's ${NAME}, ${NAME:-default} and ${NAME-default}
VARIABLE = re.compile(r"\$\{(\w+)(?:(:?-)([^}]*))?\}")


def interpolated(value: str, variables: dict) -> str:
    """`value` with each ${NAME} of it replaced as docker compose does: from `variables`, else
    its default (':-' also when the variable is empty), else empty."""
    def one(found):
        name, how, default = found.groups()
        value = variables.get(name)
        if value is None or (how == ":-" and value == ""):
            return default or ""
        return str(value)
    return VARIABLE.sub(one, str(value))


def build_args(build: dict, variables: dict) -> tuple:
    """A compose build's `args` (a mapping, or a list of NAME=VALUE) as sorted (name, value)
    pairs, their values interpolated from `variables`; a name without a value takes the
    variable of its name, as compose passes it from the environment."""
    args = build.get("args") or {}
    if isinstance(args, list):
        args = dict(arg.partition("=")[::2] if "=" in arg else (arg, None) for arg in args)
    return tuple(sorted((name, interpolated(value, variables) if value is not None
                         else str(variables.get(name, ""))) for name, value in args.items()))


# the build arg upstream's postgres Dockerfile takes its version from (2025.08 on)
POSTGRES_VERSION_ARG = "AG_POSTGRES_VERSION"


def build_variables(postgres_version=None) -> dict:
    """The variables a compose file's build args are interpolated from: app:postgres_version
    as AG_POSTGRES_VERSION, for a release that builds postgres (the override names the
    image of one that pulls it)."""
    return {POSTGRES_VERSION_ARG: str(postgres_version)} if postgres_version else {}


def builds(compose: dict, variables=None) -> dict:
    """What the compose file builds: {(context, dockerfile, build args): sorted image names}
    (one build per context, Dockerfile and args; upstream builds several images from one),
    the args as build_args gives them from `variables`."""
    found = {}
    for service in (compose.get("services") or {}).values():
        build = service.get("build")
        if not build or not service.get("image"):
            continue
        if isinstance(build, str):
            build = {"context": build}
        key = (os.path.normpath(build["context"]), build.get("dockerfile", "Dockerfile"),
               build_args(build, variables or {}))
        found.setdefault(key, set()).add(service["image"])
    return {key: sorted(images) for key, images in found.items()}


def context_hash(context: str, dockerfile: str, args=()) -> str:
    """sha256 of a build's inputs as the daemon gets them: every file of `context` that its
    .dockerignore lets through (path, mode bit x, content), the Dockerfile's name and the
    build `args` ((name, value) pairs; none: the hash a build without args always had)."""
    ignore = os.path.join(context, ".dockerignore")
    patterns = []
    if os.path.exists(ignore):
        with open(ignore) as fh:
            patterns = [line.strip() for line in fh.read().splitlines()
                        if line.strip() and not line.strip().startswith("#")]
    digest = hashlib.sha256(f"dockerfile {dockerfile}\n".encode())
    for name, value in args:
        digest.update(f"arg {name}={value}\n".encode())
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


def checkout_secret_files(checkout: str) -> dict:
    """{path under autograder-server: sha256 of its content} of every secret file in
    `checkout`: the regular files of SECRET_PATHS, gpg's runtime files left out."""
    server = os.path.join(checkout, "autograder-server")
    found = {}
    for top in (os.path.join(server, p) for p in SECRET_PATHS):
        files = [top] if os.path.isfile(top) else sorted(
            os.path.join(folder, name) for folder, _, names in os.walk(top) for name in names
            if not GPG_RUNTIME.fullmatch(name))
        for file in files:
            if os.path.isfile(file) and not os.path.islink(file):
                with open(file, "rb") as fh:
                    found[os.path.relpath(file, server)] = hashlib.sha256(fh.read()).hexdigest()
    return found


def checkout_override(checkout: str, workers: int, concurrency: dict, postgres_version=None,
                      web_on_webserver_only=True, worker_stop_grace_period=None) -> dict:
    """The override for the checkout at `checkout` as it is now: its compose file and the
    secret files present (the generated database password's among them)."""
    with open(os.path.join(checkout, COMPOSE_FILE)) as fh:
        compose = yaml.safe_load(fh)
    return override(compose, int(workers), dict(concurrency), checkout_secret_files(checkout),
                    postgres_version=postgres_version,
                    web_on_webserver_only=web_on_webserver_only,
                    worker_stop_grace_period=worker_stop_grace_period)
