"""ag_swarm.node_update (through _utils/ag_engine.py's retry) on swarm objects that others
update too (another reconcile, the swarm recording a node's status): an update refused as out
of sequence is made again on the object as it is now, with a bound; the changes are deltas, so
what the other writer set survives."""

import copy
from unittest import mock

import docker
import pytest
from salt.exceptions import CommandExecutionError

from tests.extensions import load, on_engine

ag_swarm = load("_modules/ag_swarm.py", "ag_swarm")
ag_engine = load("_utils/ag_engine.py", "ag_engine")
ag_cluster = load("_utils/ag_cluster.py", "ag_cluster")
OUT_OF_SEQUENCE = docker.errors.APIError(
    "500 Server Error", explanation="rpc error: code = Unknown desc = update out of sequence")


class Engine:
    """A node as the engine keeps it: every update needs its current version."""

    def __init__(self, labels, other_writes=0):
        self.node = {"ID": "n2", "Version": {"Index": 10}, "Description": {"Hostname": "nuc2"},
                     "Spec": {"Role": "worker", "Availability": "active", "Labels": labels},
                     "Status": {"State": "ready"}}
        self.other_writes = other_writes  # updates another writer slips in before ours
        self.api = mock.create_autospec(docker.APIClient, instance=True)
        self.api.inspect_node.side_effect = lambda node_id: copy.deepcopy(self.node)
        self.api.update_node.side_effect = self.update

    def update(self, node_id, version, node_spec=None):
        if self.other_writes:
            self.other_writes -= 1
            self.node["Spec"]["Labels"]["rack"] = f"b{self.other_writes}"
            self.node["Version"]["Index"] += 1
        if version != self.node["Version"]["Index"]:
            raise OUT_OF_SEQUENCE
        self.node["Spec"] = copy.deepcopy(node_spec)
        self.node["Version"]["Index"] += 1


@pytest.fixture
def engine(monkeypatch):
    def make(labels, other_writes=0):
        found = Engine(labels, other_writes)
        client = mock.create_autospec(docker.DockerClient, instance=True)
        client.api = found.api
        on_engine(ag_swarm, client, **{"ag_cluster.apply_label_changes": ag_cluster.apply_label_changes})
        monkeypatch.setattr(ag_engine.time, "sleep", lambda s: None)
        return found
    return make


def listed(engine):
    return ag_swarm._node(copy.deepcopy(engine.node))


def test_an_update_out_of_sequence_is_made_again_on_the_node_as_it_is_now(engine):
    found = engine({"grader": "true"}, other_writes=2)
    seen = listed(found)
    after = ag_swarm.node_update("n2", availability="drain", set_labels=["fast_grader"],
                                  remove_labels=["grader"], version=seen["version"],
                                  spec=seen["spec"])
    assert after["labels"] == {"fast_grader": "true", "rack": "b0"}
    assert after["availability"] == "drain"
    assert found.api.update_node.call_count == 3


def test_the_given_version_saves_the_first_inspect(engine):
    found = engine({})
    seen = listed(found)
    ag_swarm.node_update("n2", set_labels=["grader"], version=seen["version"], spec=seen["spec"])
    assert found.api.inspect_node.call_count == 1  # the node after, for the return


def test_an_object_that_keeps_changing_fails_after_the_bound_naming_it(engine):
    found = engine({}, other_writes=10 ** 6)
    with pytest.raises(CommandExecutionError,
                       match="updating the labels of swarm node n2 failed: .*out of sequence"):
        ag_swarm.node_update("n2", set_labels=["grader"])
    assert found.api.update_node.call_count == ag_engine.UPDATE_ATTEMPTS


def test_other_errors_fail_at_once(engine):
    found = engine({})
    found.api.update_node.side_effect = docker.errors.APIError(
        "400", explanation="invalid label")
    with pytest.raises(CommandExecutionError, match="invalid label"):
        ag_swarm.node_update("n2", availability="pause")
    assert found.api.update_node.call_count == 1


def test_an_unknown_availability_is_refused_before_any_call(engine):
    found = engine({})
    with pytest.raises(CommandExecutionError, match="must be active, pause or drain"):
        ag_swarm.node_update("n2", availability="off")
    assert not found.api.update_node.called
