"""The one way the execution modules reach the Docker Engine (docker SDK): the client, kept
once per minion process, SDK errors turned into sentences, and the retry of an update that
another writer outran. Plain Python without Salt's dunders, reached as
``__utils__["ag_engine.…"]``: the modules hand in their own ``__context__`` and
``config.get``.

A new Docker call goes in the execution module of its concern (``_modules/ag_swarm.py``: the
swarm, its nodes and networks; ``_modules/ag_app.py``: services, images, the stack, exec), on
the client of ``session``, which turns its errors into sentences.
"""

try:
    import docker
    import docker.errors
    import requests.exceptions

    HAS_DOCKER = True
    # what a call of the SDK raises: its own errors, and the transport's (an engine that does
    # not answer within the client's timeout raises requests' ReadTimeout unwrapped)
    ENGINE_ERRORS = (docker.errors.DockerException, requests.exceptions.RequestException)
except ImportError:
    HAS_DOCKER = False

import contextlib
import logging
import sys
import time

from salt.exceptions import CommandExecutionError

log = logging.getLogger(__name__)

CONTEXT_KEY = "ag_engine.client"  # in the loader's __context__, shared by its modules
DEFAULT_URL = "unix://var/run/docker.sock"
UPDATE_ATTEMPTS = 5  # reads and updates of a swarm object that others keep updating


def virtual(module: str, has_docker: bool):
    """What the `module`'s __virtual__ returns: its name, or why it cannot load and the fix."""
    if has_docker:
        return module
    return False, (f"{module} needs the docker Python SDK in the Python that runs Salt "
                   f"({sys.executable}): apply the docker.sdk state (salt-pip install docker "
                   "on a onedir Salt, pip install docker into Salt's environment otherwise)")


def _client(context: dict, config_get):
    """The Docker client of this minion process, made on first use and kept in `context`;
    the engine's address from the minion config (ag_engine:base_url) or the local socket."""
    if CONTEXT_KEY not in context:
        url = config_get("ag_engine:base_url", DEFAULT_URL)
        context[CONTEXT_KEY] = docker.DockerClient(base_url=url, timeout=60)
    return context[CONTEXT_KEY]


@contextlib.contextmanager
def session(context: dict, config_get, what: str, secret: str = None, patient: bool = False):
    """The client, for a block whose docker SDK errors (the client's own included) raise as
    _api_error(`what`): each Docker call of the modules is one such block. `patient`: no read
    timeout in the block (a command in a container may print nothing for minutes)."""
    client = _client(context, config_get)
    try:
        with _no_read_timeout(client.api) if patient else contextlib.nullcontext():
            yield client
    except ENGINE_ERRORS as exc:
        raise _api_error(what, exc, secret) from exc


@contextlib.contextmanager
def _no_read_timeout(api):
    kept, api.timeout = api.timeout, None
    try:
        yield
    finally:
        api.timeout = kept


def _api_error(what: str, exc: Exception, secret: str = None) -> CommandExecutionError:
    """The error a module raises for an SDK exception: "`what` failed: the engine's words",
    with `secret` (a join token) blotted out of them."""
    message = str(getattr(exc, "explanation", None) or exc)
    if secret:
        message = message.replace(secret, "<join token>")
    return CommandExecutionError(f"{what} failed: {message}")


def _out_of_sequence(exc: Exception) -> bool:
    """The engine refused an update made on an outdated version of the object: someone else
    (another reconcile, the swarm itself recording a node's status) updated it since it was
    read."""
    return "update out of sequence" in str(exc)


def versioned_update(what: str, update):
    """Run `update(fresh)`, which reads the object again when `fresh` and updates it on top
    of what it read; when the engine answers that the object changed in between (update out
    of sequence), read it again and retry, at most UPDATE_ATTEMPTS times."""
    for attempt in range(1, UPDATE_ATTEMPTS + 1):
        try:
            return update(attempt > 1)
        except docker.errors.APIError as exc:
            if not _out_of_sequence(exc) or attempt == UPDATE_ATTEMPTS:
                raise _api_error(what, exc) from exc
            log.warning("%s: changed by someone else since it was read (update out of "
                        "sequence); read again, attempt %d of %d", what, attempt + 1,
                        UPDATE_ATTEMPTS)
            time.sleep(0.1 * attempt)
        except ENGINE_ERRORS as exc:
            raise _api_error(what, exc) from exc
