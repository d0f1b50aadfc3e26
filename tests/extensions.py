"""The project's Salt extensions loaded as plain modules, for unit tests that hand them fake
`__salt__`/`__utils__` dunders instead of Salt's loader."""

import functools
import importlib.util
from unittest import mock

from bed.config import REPO


def load(path, name):
    """The module at `path` (relative to the repository) under `name`."""
    spec = importlib.util.spec_from_file_location(name, REPO / path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@functools.cache
def _ag_docker():
    return load("_modules/ag_docker.py", "ag_docker_signatures")


def ag_docker_fakes(fakes: dict) -> dict:
    """`__salt__` entries for fakes of ag_docker functions ({"nodes": fake, ...}): each one
    behind create_autospec of the real function, so a call the real signature refuses (an
    argument it does not take, one it needs missing) fails the test, as it would fail in Salt,
    and a fake of a function ag_docker lacks fails at once."""
    real = _ag_docker()
    return {f"ag_docker.{name}": mock.create_autospec(getattr(real, name), side_effect=fake)
            for name, fake in fakes.items()}


class FakeClock:
    """`time` for a module under test: sleep advances monotonic, so waits take no time."""

    def __init__(self):
        self.now = 0.0

    def monotonic(self):
        return self.now

    def sleep(self, seconds):
        self.now += seconds
