"""Every extension with a dependency refuses to load without it and says what to install or
run, instead of a KeyError or an ImportError in the middle of a state run."""

import pytest

from tests.extensions import load

ag_engine = load("_utils/ag_engine.py", "ag_engine")


class Loader(dict):
    """A loader dunder that has only the given functions (as Salt's LazyLoader answers)."""

    def missing_fun_string(self, fun):
        return f"'{fun}' is not available."


def with_dunders(path, name, salt=(), utils=()):
    module = load(path, name)
    module.__salt__ = Loader(dict.fromkeys(salt))
    module.__utils__ = Loader(dict.fromkeys(utils))
    return module


@pytest.mark.parametrize(("path", "salt", "words"), [
    ("_runners/ag.py", (), "salt-run saltutil.sync_all"),
    ("_modules/ag_pillar.py", (), "saltutil.sync_all"),
    ("_modules/ag_swarm.py", (), "saltutil.sync_all"),
    ("_modules/ag_app.py", (), "saltutil.sync_all"),
    ("_states/ag_swarm.py", (), "ag_swarm execution module"),
    ("_states/ag_swarm.py", ("ag_swarm.nodes",), "ag_app execution module"),
    ("_states/ag_app.py", (), "ag_app execution module"),
    ("_states/ag_app.py", ("ag_app.stack_status",), "saltutil.sync_all"),
])
def test_a_missing_extension_is_named_with_the_fix(path, salt, words):
    loaded, reason = with_dunders(path, "under_test", salt=salt).__virtual__()
    assert loaded is False and words in reason


def with_the_sdk(path, has_docker):
    """The __virtual__ answer of `path` with the utils it needs, the docker SDK there or not."""
    module = load(path, "under_test")
    module.__utils__ = {"ag_engine.session": None, "ag_engine.virtual": ag_engine.virtual,
                        "ag_mine.store": None, "ag_cluster.apply_label_changes": None}
    module.HAS_DOCKER = has_docker
    return module.__virtual__()


@pytest.mark.parametrize("path", ["_modules/ag_swarm.py", "_modules/ag_app.py", "_utils/ag_compose.py"])
def test_without_the_docker_sdk_the_fix_is_the_docker_sdk_state(path):
    loaded, reason = with_the_sdk(path, has_docker=False)
    assert loaded is False and "docker.sdk" in reason


@pytest.mark.parametrize(("path", "name"), [("_modules/ag_swarm.py", "ag_swarm"),
                                            ("_modules/ag_app.py", "ag_app")])
def test_with_the_docker_sdk_an_execution_module_loads(path, name):
    assert with_the_sdk(path, has_docker=True) == name


@pytest.mark.parametrize(("path", "salt", "utils"), [
    ("_runners/ag.py", (), ("ag_cluster.validate",)),
    ("_modules/ag_pillar.py", (), ("ag_cluster.validate",)),
    ("_states/ag_swarm.py", ("ag_swarm.nodes", "ag_app.tasks"), ("ag_cluster.validate",)),
    ("_states/ag_app.py", ("ag_app.stack_status",), ("ag_compose.builds",)),
])
def test_with_its_dependencies_it_loads(path, salt, utils):
    loaded = with_dunders(path, "under_test", salt=salt, utils=utils).__virtual__()
    assert loaded and not isinstance(loaded, tuple)
