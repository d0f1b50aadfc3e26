"""A stand-in autograder-full-stack checkout, written by the project for its tests.

The test bed cannot build the real autograder images (no Docker Hub, no package index), so
tests deploy this model of eecs-autograder/autograder-full-stack at master (2024.08): the same
layout, docker-compose.yml (service names, images 127.0.0.1:5000/<name>, build contexts and
Dockerfile paths, commands, placement labels, replicated/global modes, volumes, the external
network ag-swarm-network), the same files a deployer tweaks at the same paths with upstream's
defaults, generate_secrets.py and its secrets dir, and upstream's .dockerignore. The images
are small stand-ins built FROM the bed's local base images (bed/images.py): python ones from
agbed/debian:bookworm, nginx/website/rabbitmq from agbed/busybox; postgres:9.5, redis:latest
and registry:2 are "pulled", i.e. preloaded by the bed under those names. The django stand-in
has a real `manage.py migrate` (applied migrations recorded in the postgres stand-in's
volume), `manage.py shell` with User/Course models for the bootstrap, and gunicorn/celery
stand-ins that honour --workers and -c (autograder-server/standin/README.md).

BED_OVERRIDE is what the bed (no IPVS) needs on top, as a second compose file for
`docker stack deploy -c docker-compose.yml -c <override>`; see its header.
"""

import shutil
import subprocess
from pathlib import Path

TEMPLATE = Path(__file__).with_name("autograder-full-stack")
BED_OVERRIDE = Path(__file__).with_name("docker-compose.bed.yml")


def write(dest, git: bool = False) -> Path:
    """Write the stand-in checkout into `dest` (files of the template overwrite, other files
    such as generated secrets or media_root are left alone; the stand-in's own code,
    autograder-server/standin, is replaced whole, so no file an older template had stays in
    a build context). With git=True, `dest` becomes a git repository with the checkout
    committed on branch master (a revision to deploy from)."""
    dest = Path(dest)
    shutil.rmtree(dest / "autograder-server/standin", ignore_errors=True)
    shutil.copytree(TEMPLATE, dest, dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns("__pycache__"))
    if git:
        def g(*args):
            return subprocess.run(["git", "-C", str(dest), *args], check=True,
                                  capture_output=True, text=True).stdout

        g("init", "-q", "-b", "master")
        g("add", "-A")
        if g("status", "--porcelain"):  # a new revision only when a file changed
            g("-c", "user.name=standin", "-c", "user.email=standin@localhost",
              "commit", "-q", "-m", "stand-in autograder-full-stack")
    return dest
