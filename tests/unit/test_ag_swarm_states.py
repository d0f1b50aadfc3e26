"""The ag_swarm states against a fake swarm (no daemons): the state contract (test mode
reports, apply changes, re-apply changes nothing), errors before any change, and API calls
that grow with nodes, not nodes × labels."""

import copy

import pytest
from salt.exceptions import CommandExecutionError

from tests.extensions import load

ag_cluster = load("_utils/ag_cluster.py", "ag_cluster")

CLUSTER = {
    "manager": "nuc1",
    "allow_label_moves": [],
    "nodes": {
        "nuc1": {"address": "198.18.9.11", "role": "manager",
                 "labels": ["registry", "database", "cache", "rabbitmq_broker",
                            "custom_image_registry", "webserver", "django_app", "small_tasks"]},
        "nuc2": {"address": "198.18.9.12", "role": "worker",
                 "labels": ["grader", "fast_grader", "image_builder"]},
        "nuc3": {"address": "198.18.9.13", "role": "worker",
                 "labels": ["deferred_grader", "rerun_grader"]},
    },
}


class FakeSwarm:
    """What ag_docker would see: nodes with labels, this node's membership, the mine."""

    def __init__(self, minion="nuc1"):
        self.minion = minion
        self.cluster_id = "clusterA"
        self.nodes = {f"id-{n}": {"id": f"id-{n}", "hostname": n, "labels": {}, "version": 1,
                                  "spec": {"Role": "worker", "Availability": "active"}}
                      for n in ("nuc1", "nuc2", "nuc3")}
        self.info = {"state": "active", "role": "manager", "node_id": "id-nuc1",
                     "cluster_id": self.cluster_id, "node_addr": "198.18.9.11"}
        self.mine = {n: {"state": "active", "node_id": f"id-{n}", "cluster_id": self.cluster_id,
                         "role": "manager" if n == "nuc1" else "worker"}
                     for n in ("nuc1", "nuc2", "nuc3")}
        self.calls = []
        self.events = []

    def salt(self):
        def record(name, result):
            def fn(*args, **kwargs):
                self.calls.append(name)
                return result(*args, **kwargs)
            return fn

        return {
            "ag_docker.swarm_info": record("swarm_info", lambda: dict(self.info)),
            "ag_docker.nodes": record("nodes", lambda: copy.deepcopy(list(self.nodes.values()))),
            "ag_docker.node_set_labels": record("node_set_labels", self.set_labels),
            "ag_docker.published_swarm_nodes": record(
                "published", lambda minions: {m: self.mine[m] for m in minions if m in self.mine}),
            "ag_docker.publish_swarm_node": record("publish_node", lambda: True),
            "ag_docker.publish_join_tokens": record("publish_tokens", self.publish_tokens),
            "ag_docker.join_token_published": record("token?", lambda manager, role: True),
            "ag_docker.swarm_join": record("join", self.join),
            "ag_docker.swarm_cancel_pending_join": record("cancel", self.cancel_pending),
            "ag_docker.swarm_init": record("init", lambda *a, **k: dict(self.info)),
            "event.fire_master": lambda data, tag: self.events.append((tag, data)),
        }

    def publish_tokens(self, waiting):
        self.token_readers = dict(waiting)
        return True

    def set_labels(self, node_id, labels, version=None, spec=None):
        assert version is not None and spec is not None, "an extra inspect per node"
        self.nodes[node_id]["labels"] = dict(labels)

    def cancel_pending(self):
        assert self.info["state"] == "pending"
        self.info = {"state": "inactive", "role": None, "node_id": None, "cluster_id": None}
        return dict(self.info)

    def join(self, manager, manager_addr, advertise_addr, role="worker"):
        self.info = {"state": "active", "role": role, "node_id": "id-new",
                     "cluster_id": self.cluster_id}
        return dict(self.info)


@pytest.fixture
def fake():
    return FakeSwarm()


def states(fake, test=False, minion="nuc1"):
    module = load("_states/ag_swarm.py", "ag_swarm")
    module.__salt__ = fake.salt()
    module.__opts__ = {"test": test, "id": minion}
    module.__context__ = {}
    module.__utils__ = {f"ag_cluster.{f}": getattr(ag_cluster, f)
                        for f in ("validate", "label_holders", "label_changes",
                                  "apply_label_changes", "managed_labels")}
    return module


def labels_of(fake, minion):
    return sorted(k for k, v in fake.nodes[f"id-{minion}"]["labels"].items() if v == "true")


def test_labels_test_mode_reports_and_changes_nothing(fake):
    ret = states(fake, test=True).labels_reconciled("c", CLUSTER)
    assert ret["result"] is None
    assert ret["changes"]["nuc2"] == {"set": ["fast_grader", "grader", "image_builder"],
                                      "remove": []}
    assert "node_set_labels" not in fake.calls
    assert all(not n["labels"] for n in fake.nodes.values())


def test_labels_apply_then_nothing_to_do(fake):
    ret = states(fake).labels_reconciled("c", CLUSTER)
    assert ret["result"] is True and set(ret["changes"]) == {"nuc1", "nuc2", "nuc3"}
    for minion, node in CLUSTER["nodes"].items():
        assert labels_of(fake, minion) == sorted(node["labels"])
    again = states(fake).labels_reconciled("c", CLUSTER)
    assert again["result"] is True and again["changes"] == {}
    assert again["comment"].startswith("every joined node carries its pillar labels")


def test_labels_api_calls_grow_with_nodes_not_labels(fake):
    states(fake).labels_reconciled("c", CLUSTER)
    assert fake.calls.count("nodes") == 1
    assert fake.calls.count("node_set_labels") == 3  # one per node, 13 labels in all


def test_labels_keep_admin_labels_and_remove_stray_managed_ones(fake):
    fake.nodes["id-nuc2"]["labels"] = {"rack": "b2", "database": "true", "grader": "true"}
    fake.nodes["id-nuc1"]["labels"] = {"database": "true"}
    ret = states(fake).labels_reconciled("c", CLUSTER)
    assert ret["changes"]["nuc2"] == {"set": ["fast_grader", "image_builder"],
                                      "remove": ["database"]}
    assert fake.nodes["id-nuc2"]["labels"]["rack"] == "b2"


def test_labels_refuse_a_database_move_before_any_change(fake):
    fake.nodes["id-nuc3"]["labels"] = {"database": "true"}
    ret = states(fake).labels_reconciled("c", CLUSTER)
    assert ret["result"] is False and ret["changes"] == {}
    assert "database would move from nuc3 to nuc1" in ret["comment"]
    assert "node_set_labels" not in fake.calls


def test_labels_invalid_cluster_fails_before_any_call(fake):
    bad = copy.deepcopy(CLUSTER)
    bad["nodes"]["nuc2"]["labels"].append("tiny_grader")
    ret = states(fake).labels_reconciled("c", bad)
    assert ret["result"] is False and "node nuc2" in ret["comment"]
    assert fake.calls == []


def test_labels_pending_node_is_named_not_failed(fake):
    del fake.mine["nuc3"]
    ret = states(fake).labels_reconciled("c", CLUSTER)
    assert ret["result"] is True and "nuc3" not in ret["changes"]
    assert "not in the swarm yet (labelled when they join): nuc3" in ret["comment"]


def test_labels_node_of_another_swarm_is_not_touched(fake):
    fake.mine["nuc3"]["cluster_id"] = "clusterB"
    ret = states(fake).labels_reconciled("c", CLUSTER)
    assert "nuc3" not in ret["changes"]


def test_labels_of_a_swarm_node_outside_the_pillar_are_left_alone(fake):
    fake.nodes["id-old"] = {"id": "id-old", "hostname": "oldnuc", "version": 1, "spec": {},
                            "labels": {"small_tasks": "true"}}
    ret = states(fake).labels_reconciled("c", CLUSTER)
    assert "not in pillar, left alone: swarm node id-old (oldnuc)" in ret["comment"]
    assert fake.nodes["id-old"]["labels"] == {"small_tasks": "true"}


def test_labels_need_a_manager(fake):
    fake.info["role"] = "worker"
    ret = states(fake).labels_reconciled("c", CLUSTER)
    assert ret["result"] is False and "manager" in ret["comment"]


def test_initialized_is_a_no_op_on_a_manager_and_withdraws_tokens(fake):
    ret = states(fake).initialized("nuc1", "198.18.9.11", members={"nuc2": "worker"})
    assert ret["result"] is True and ret["changes"] == {}
    assert "init" not in fake.calls
    assert fake.token_readers == {}  # nuc2 is in the swarm: nobody may read a token


def test_initialized_names_an_advertise_address_it_cannot_change(fake):
    ret = states(fake).initialized("nuc1", "198.18.9.99")
    assert ret["result"] is True and ret["changes"] == {}
    assert "advertises 198.18.9.11, pillar says 198.18.9.99" in ret["comment"]


def test_initialized_publishes_tokens_only_for_waiting_members(fake):
    fake.mine["nuc3"]["state"] = "inactive"  # nuc3 left the swarm
    members = {"nuc2": "worker", "nuc3": "worker", "nuc4": "manager"}  # nuc4: new in pillar
    ret = states(fake).initialized("nuc1", "198.18.9.11", members=members)
    assert fake.token_readers == {"nuc3": "worker", "nuc4": "manager"}
    assert "join tokens published for nuc3, nuc4" in ret["comment"]


def test_initialized_test_mode_on_a_fresh_node(fake):
    fake.info = {"state": "inactive", "role": None, "node_id": None, "cluster_id": None}
    ret = states(fake, test=True).initialized("nuc1", "198.18.9.11")
    assert ret["result"] is None and ret["changes"]
    assert "init" not in fake.calls and "publish_tokens" not in fake.calls


def test_initialized_refuses_a_worker(fake):
    fake.info["role"] = "worker"
    ret = states(fake).initialized("nuc1", "198.18.9.11")
    assert ret["result"] is False and "worker of swarm clusterA" in ret["comment"]


def worker(fake, state="inactive", cluster_id=None):
    fake.info = {"state": state, "role": "worker" if state == "active" else None,
                 "node_id": "id-x" if state == "active" else None, "cluster_id": cluster_id}


def test_joined_joins_and_asks_for_labels(fake):
    worker(fake)
    ret = states(fake, minion="nuc4").joined("nuc4", "nuc1", "198.18.9.11", "198.18.9.14")
    assert ret["result"] is True and ret["changes"]["swarm"]["new"]["cluster_id"] == "clusterA"
    assert fake.events == [("ag/swarm/node/joined", {"manager": "nuc1", "node_id": "id-new"})]
    assert "publish_node" in fake.calls


def test_joined_in_another_swarm_names_both_ids(fake):
    worker(fake, "active", "clusterB")
    ret = states(fake, minion="nuc2").joined("nuc2", "nuc1", "198.18.9.11", "198.18.9.12")
    assert ret["result"] is False
    assert "clusterB" in ret["comment"] and "clusterA" in ret["comment"]
    assert "join" not in fake.calls


def test_joined_member_is_a_no_op(fake):
    worker(fake, "active", "clusterA")
    ret = states(fake, minion="nuc2").joined("nuc2", "nuc1", "198.18.9.11", "198.18.9.12")
    assert ret["result"] is True and ret["changes"] == {}


def test_joined_test_mode_reports(fake):
    worker(fake)
    ret = states(fake, test=True, minion="nuc2").joined("nuc2", "nuc1", "198.18.9.11",
                                                        "198.18.9.12")
    assert ret["result"] is None and ret["changes"]
    assert "join" not in fake.calls and fake.events == []


def test_joined_waits_for_the_manager(fake):
    worker(fake)
    del fake.mine["nuc1"]
    ret = states(fake, minion="nuc2").joined("nuc2", "nuc1", "198.18.9.11", "198.18.9.12")
    assert ret["result"] is False and "published no swarm yet" in ret["comment"]


def test_joined_new_node_asks_the_manager_for_its_token_once(fake):
    worker(fake)
    module = states(fake, minion="nuc4")
    module.__salt__["ag_docker.join_token_published"] = lambda manager, role: False
    for _ in range(3):  # the SLS retries
        ret = module.joined("nuc4", "nuc1", "198.18.9.11", "198.18.9.14")
        assert ret["result"] is False
    assert fake.events == [("ag/swarm/token/wanted", {"manager": "nuc1"})]


def test_join_error_is_a_failed_state(fake):
    worker(fake)
    module = states(fake, minion="nuc2")

    def refuse(*args, **kwargs):
        raise CommandExecutionError("joining the swarm of nuc1 at 198.18.9.11 failed: timeout")

    module.__salt__["ag_docker.swarm_join"] = refuse
    ret = module.joined("nuc2", "nuc1", "198.18.9.11", "198.18.9.12")
    assert ret["result"] is False and ret["changes"] == {} and "timeout" in ret["comment"]


def test_a_pending_join_is_cancelled_then_joined(fake):
    worker(fake, "pending")
    ret = states(fake, minion="nuc2").joined("nuc2", "nuc1", "198.18.9.11", "198.18.9.12")
    assert ret["result"] is True and fake.calls.index("cancel") < fake.calls.index("join")
    assert ret["changes"]["swarm"]["old"] == "a pending join, cancelled"


def test_a_pending_join_in_test_mode_is_reported_not_cancelled(fake):
    worker(fake, "pending")
    ret = states(fake, test=True, minion="nuc2").joined("nuc2", "nuc1", "198.18.9.11",
                                                        "198.18.9.12")
    assert ret["result"] is None and ret["changes"]["swarm"]["old"] == "a pending join, cancelled"
    assert "cancel" not in fake.calls and "join" not in fake.calls


def test_an_error_state_is_left_to_the_admin(fake):
    worker(fake, "error")
    ret = states(fake, minion="nuc2").joined("nuc2", "nuc1", "198.18.9.11", "198.18.9.12")
    assert ret["result"] is False and "error" in ret["comment"]
    assert "cancel" not in fake.calls and "join" not in fake.calls
