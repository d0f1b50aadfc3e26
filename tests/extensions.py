"""The project's Salt extensions loaded as plain modules, for unit tests that hand them fake
`__salt__`/`__utils__` dunders instead of Salt's loader."""

import functools
import http.server
import importlib.util
import threading
from unittest import mock

from bed.config import REPO


def load(path, name):
    """The module at `path` (relative to the repository) under `name`."""
    spec = importlib.util.spec_from_file_location(name, REPO / path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@functools.cache
def _module(name):
    return load(f"_modules/{name}.py", f"{name}_signatures")


def module_fakes(fakes: dict) -> dict:
    """`__salt__` entries for fakes of the project's execution functions ({"ag_swarm.nodes":
    fake, ...}): each one behind create_autospec of the real function, so a call the real
    signature refuses (an argument it does not take, one it needs missing) fails the test, as
    it would fail in Salt, and a fake of a function the module lacks fails at once."""
    found = {}
    for fun, fake in fakes.items():
        module, _, name = fun.partition(".")
        found[fun] = mock.create_autospec(getattr(_module(module), name), side_effect=fake)
    return found


def on_engine(module, client, **utils):
    """`module`, an execution module, talking to `client` as its Docker client: the client
    where _utils/ag_engine.py keeps the one it makes (`__context__`), the util's functions and
    `utils` in `__utils__`."""
    engine = load("_utils/ag_engine.py", "ag_engine")
    module.__context__ = {engine.CONTEXT_KEY: client}
    module.__salt__ = {"config.get": lambda key, default=None: default}
    module.__utils__ = {"ag_engine.session": engine.session,
                        "ag_engine.versioned_update": engine.versioned_update, **utils}
    return module


class FakeClock:
    """`time` for a module under test: sleep advances monotonic, so waits take no time."""

    def __init__(self):
        self.now = 0.0

    def monotonic(self):
        return self.now

    def sleep(self, seconds):
        self.now += seconds


def serve(handler):
    """An HTTP server of `handler` on a free loopback port, in a thread → (server, its URL)."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"
