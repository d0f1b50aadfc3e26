"""The deploy's compose override: upstream's docker-compose.yml stays untouched and is deployed
together with an override that this module computes from it and from the pillar's tweaks.
Plain Python without Salt (unit-tested on its own; states reach it through `__utils__`).

Commands are taken from upstream's file and only their worker counts are rewritten, so an
upstream change to any other flag reaches the deploy unchanged.
"""

import re

WORKERS_FLAG = re.compile(r"--workers=\d+")
CONCURRENCY_FLAG = re.compile(r"(?<=\s)-c\s+\d+")

# Upstream bakes autograder/settings/secrets (and the OAuth secrets file) into the django and
# grader images and pushes them to an open registry. The deploy keeps them out of the build
# context and mounts them at run time from the shared checkout instead.
SECRET_PATHS = ("autograder/settings/secrets", "autograder/settings/oauth2_secrets.json")
APP_DIR = "/usr/src/app"


def _tweaked_command(service: str, command: str, workers: int, concurrency: dict):
    if service == "django" and WORKERS_FLAG.search(command):
        return WORKERS_FLAG.sub(f"--workers={workers}", command)
    if service in concurrency and CONCURRENCY_FLAG.search(command):
        return CONCURRENCY_FLAG.sub(f"-c {concurrency[service]}", command)
    return None


def _builds_from_server(service: dict) -> bool:
    build = service.get("build") or {}
    context = build if isinstance(build, str) else build.get("context", "")
    return context.rstrip("/") in ("./autograder-server", "autograder-server")


def override(compose: dict, workers: int, concurrency: dict, secret_paths=SECRET_PATHS) -> dict:
    """The override for upstream's `compose` dict: rewritten worker counts where they differ
    from upstream, and `secret_paths` (those that exist in the checkout) mounted read-only into
    every service built from autograder-server."""
    services = {}
    for name, service in (compose.get("services") or {}).items():
        entry = {}
        command = service.get("command")
        if isinstance(command, str):
            tweaked = _tweaked_command(name, command, workers, concurrency)
            if tweaked and tweaked != command:
                entry["command"] = tweaked
        if _builds_from_server(service) and secret_paths:
            entry["volumes"] = [f"./autograder-server/{p}:{APP_DIR}/{p}:ro" for p in secret_paths]
        if entry:
            services[name] = entry
    return {"version": compose.get("version", "3.7"), "services": services}
