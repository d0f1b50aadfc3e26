"""The deploy's compose override for this node's checkout (the work is in _utils/ag_compose)."""

import os

import yaml

__virtualname__ = "ag_compose"


def __virtual__():
    return __virtualname__


def override(checkout, workers, concurrency, compose_file="docker-compose.yml"):
    """The override for `checkout`'s compose file: worker counts, and the app secrets that
    exist there mounted read-only into the services built from autograder-server.

    CLI Example: salt nuc1 ag_compose.override /srv/autograder-full-stack 4 '{grader: 2}'
    """
    with open(os.path.join(checkout, compose_file)) as fh:
        compose = yaml.safe_load(fh)
    secrets = __utils__["ag_compose.existing_secrets"](checkout)
    return __utils__["ag_compose.override"](compose, int(workers), dict(concurrency), secrets)
