"""The project's Salt extensions loaded as plain modules, for unit tests that hand them fake
`__salt__`/`__utils__` dunders instead of Salt's loader."""

import importlib.util

from bed.config import REPO


def load(path, name):
    """The module at `path` (relative to the repository) under `name`."""
    spec = importlib.util.spec_from_file_location(name, REPO / path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
