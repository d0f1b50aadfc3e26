"""_utils/ag_diff.py: the one {key: {old, new}} diff the modules and states report."""

from tests.extensions import load

ag_diff = load("_utils/ag_diff.py", "ag_diff")


def test_only_the_wanted_keys_that_differ_are_listed():
    current = {"image": "registry:2", "mounts": [], "admin": "kept"}
    wanted = {"image": "registry:3", "mounts": [], "ports": ["5000:5000/ingress"]}
    assert ag_diff.changes(current, wanted) == {
        "image": {"old": "registry:2", "new": "registry:3"},
        "ports": {"old": None, "new": ["5000:5000/ingress"]},
    }


def test_nothing_differs_nothing_listed():
    assert ag_diff.changes({"driver": "overlay", "x": 1}, {"driver": "overlay"}) == {}
