"""The ag_swarm states against a fake swarm (no daemons): the state contract (test mode
reports, apply changes, re-apply changes nothing), errors before any change, API calls that
grow with nodes, not nodes × labels, and nodes taken out in order (drain, tasks gone, labels,
removal)."""

import copy

import pytest
from salt.exceptions import CommandExecutionError

from tests.extensions import FakeClock, load, module_fakes

ag_cluster = load("_utils/ag_cluster.py", "ag_cluster")
ag_diff = load("_utils/ag_diff.py", "ag_diff")
ag_mine = load("_utils/ag_mine.py", "ag_mine")

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
    """What the ag_swarm and ag_app execution modules would see: nodes with labels, this
    node's membership, the mine, tasks. Node updates need the node's current version (as the
    engine's do) and replace the spec."""

    def __init__(self, minion="nuc1"):
        self.minion = minion
        self.cluster_id = "clusterA"
        self.nodes = {}
        for n in ("nuc1", "nuc2", "nuc3"):
            self.add_node(n)
        self.tasks = []
        self.stop_after = 2  # task polls before a drained node's tasks have stopped
        self.actions = []  # (call, node id) of node updates, removals and task polls
        self.live_at_labels = {}  # node id → its tasks still running when its labels changed
        self.info = {"state": "active", "role": "manager", "node_id": "id-nuc1",
                     "cluster_id": self.cluster_id, "node_addr": "198.18.9.11"}
        self.mine = {n: {"state": "active", "node_id": f"id-{n}", "cluster_id": self.cluster_id,
                         "role": "manager" if n == "nuc1" else "worker"}
                     for n in ("nuc1", "nuc2", "nuc3")}
        self.settings = {"dispatcher_heartbeat": 5}
        self.settings_stick = True  # False: an update the engine ignores (the read-back fails)
        self.calls = []
        self.events = []
        self.networks = []

    def add_node(self, name, labels=None, state="ready", role="worker"):
        node_id = f"id-{name}"
        self.nodes[node_id] = {"id": node_id, "hostname": name, "labels": dict(labels or {}),
                               "version": 1, "role": role, "availability": "active",
                               "state": state, "addr": f"198.18.9.{10 + int(name[3:])}",
                               "spec": {"Role": role, "Availability": "active"}}
        return node_id

    def run_task(self, service, name, slot=None):
        self.tasks.append({"id": f"t{len(self.tasks)}", "service_id": f"svc-{service}",
                           "node_id": f"id-{name}", "slot": slot, "state": "running",
                           "desired_state": "running", "polls": None})

    def salt(self):
        def record(name, result):
            def fn(*args, **kwargs):
                self.calls.append(name)
                return result(*args, **kwargs)
            return fn

        fakes = module_fakes({
            "ag_swarm.swarm_info": record("swarm_info", lambda: dict(self.info)),
            "ag_swarm.nodes": record("nodes", self.list_nodes),
            "ag_swarm.node_update": record("node_update", self.update),
            "ag_swarm.node_remove": record("node_remove", self.remove),
            "ag_app.tasks": record("tasks", self.list_tasks),
            "ag_app.services": record("services", lambda: [
                {"id": f"svc-{s}", "name": s} for s in ("ag_grader", "ag_cache")]),
            "ag_swarm.published_swarm_nodes": record(
                "published", lambda minions=None: {m: v for m, v in self.mine.items()
                                                   if minions is None or m in minions}),
            "ag_swarm.publish_swarm_node": record("publish_node", lambda info=None: True),
            "ag_swarm.publish_join_tokens": record("publish_tokens", self.publish_tokens),
            "ag_swarm.join_token_published": record("token?", lambda manager, role: True),
            "ag_swarm.swarm_join": record("join", self.join),
            "ag_swarm.swarm_cancel_pending_join": record("cancel", self.cancel_pending),
            "ag_swarm.swarm_init": record("init", self.init),
            "ag_swarm.swarm_settings": record("settings", lambda: dict(self.settings)),
            "ag_swarm.swarm_settings_update": record("settings_update", self.update_settings),
            "ag_swarm.networks": record("networks", lambda name=None: [
                n for n in self.networks if name is None or n["name"] == name]),
            "ag_swarm.network_create": record("network_create", self.network_create),
        })
        return {**fakes, "event.fire_master": lambda data, tag: self.events.append((tag, data))}

    def init(self, advertise_addr, default_addr_pool=None, subnet_size=None,
             listen_addr=None, dispatcher_heartbeat=None):
        self.settings = {"dispatcher_heartbeat": dispatcher_heartbeat or 5}
        return dict(self.info)

    def update_settings(self, dispatcher_heartbeat):
        if not self.settings_stick:
            return dict(self.settings)
        self.settings = {"dispatcher_heartbeat": dispatcher_heartbeat}
        return dict(self.settings)

    def network_create(self, name, driver="overlay", attachable=False, subnet=None, labels=None,
                       encrypted=False):
        self.networks.append({"id": f"net-{name}", "name": name, "driver": driver, "scope": "swarm",
                              "attachable": attachable, "encrypted": encrypted,
                              "subnets": [subnet] if subnet else [],
                              "labels": labels or {}})
        return dict(self.networks[-1])

    def publish_tokens(self, waiting):
        self.token_readers = dict(waiting)
        return True

    def list_nodes(self):
        # as ag_swarm.nodes: labels and availability are the spec's
        found = copy.deepcopy(list(self.nodes.values()))
        for node in found:
            node["spec"].update(Labels=node["labels"], Availability=node["availability"])
        return found

    def update(self, node_id, availability=None, set_labels=(), remove_labels=(),
               version=None, spec=None):
        """As ag_swarm.node_update: the changes made on the node as it is now (the real one
        reads it again when the version it was given is outdated)."""
        node = self.nodes[node_id]
        assert version is not None and spec is not None, "an extra inspect per node"
        if availability:
            self.actions.append((availability, node_id))
            for task in self.tasks:
                if task["node_id"] == node_id and availability == "drain":
                    task["desired_state"], task["polls"] = "shutdown", self.stop_after
            node["availability"] = availability
        if set_labels or remove_labels:
            self.actions.append(("labels", node_id))
            self.live_at_labels[node_id] = sum(t["node_id"] == node_id and t["state"] == "running"
                                               for t in self.tasks)
            node["labels"] = ag_cluster.apply_label_changes(
                node["labels"], {"set": list(set_labels), "remove": list(remove_labels)})
        node["version"] += 1
        node["spec"].update(Availability=node["availability"], Labels=dict(node["labels"]))
        return copy.deepcopy(node)

    def remove(self, node_id):
        self.actions.append(("rm", node_id))
        assert self.nodes[node_id]["state"] == "down", "docker refuses to remove a live node"
        del self.nodes[node_id]
        return True

    def list_tasks(self, service=None, node=None):
        found = [t for t in self.tasks if node is None or t["node_id"] in node]
        for task in found:
            self.actions.append(("tasks", task["node_id"]))
            if task["polls"] is not None:
                task["polls"] -= 1
                if task["polls"] < 0:
                    task["state"] = "shutdown"
        return [{k: v for k, v in t.items() if k != "polls"} for t in found]

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
    swarm = FakeSwarm()
    swarm.clock = FakeClock()
    return swarm


def states(fake, test=False, minion="nuc1"):
    module = load("_states/ag_swarm.py", "ag_swarm")
    module.__salt__ = fake.salt()
    module.__opts__ = {"test": test, "id": minion}
    module.__context__ = {}
    module.__utils__ = {f"ag_cluster.{f}": getattr(ag_cluster, f)
                        for f in ("validate", "label_holders", "swarm_holders", "label_changes",
                                  "apply_label_changes", "managed_labels", "node_availability",
                                  "live_tasks", "same_host")}
    module.__utils__.update({f"ag_diff.{f}": getattr(ag_diff, f) for f in ("changes", "described")})
    module.__utils__["ag_mine.minions_by_node_id"] = ag_mine.minions_by_node_id
    module.time = fake.clock
    return module


def labels_of(fake, minion):
    return sorted(k for k, v in fake.nodes[f"id-{minion}"]["labels"].items() if v == "true")


def test_labels_test_mode_reports_and_changes_nothing(fake):
    ret = states(fake, test=True).labels_reconciled("c", CLUSTER)
    assert ret["result"] is None
    assert ret["changes"]["nuc2"] == {"set": ["fast_grader", "grader", "image_builder"],
                                      "remove": []}
    assert "node_update" not in fake.calls
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
    assert fake.calls.count("node_update") == 3  # one per node, 13 labels in all


def test_labels_a_read_back_that_differs_fails_naming_node_and_label(fake):
    update = fake.update

    def another_writer(node_id, **changes):
        node = update(node_id, **changes)
        if node_id == "id-nuc2":  # drops a label the same moment ours is set
            node["labels"].pop("grader")
        return node

    fake.update = another_writer
    ret = states(fake).labels_reconciled("c", CLUSTER)
    assert ret["result"] is False and set(ret["changes"]) == {"nuc1", "nuc2", "nuc3"}
    assert "but the swarm reads back otherwise: nuc2 (label grader missing)" in ret["comment"]


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
    assert "node_update" not in fake.calls


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


def test_initialized_sets_the_heartbeat_of_a_new_swarm_at_its_init(fake):
    fake.info = {"state": "inactive", "role": None, "node_id": None, "cluster_id": None}
    ret = states(fake).initialized("nuc1", "198.18.9.11", dispatcher_heartbeat=30)
    assert ret["result"] is True and fake.settings == {"dispatcher_heartbeat": 30}
    assert "settings_update" not in fake.calls


def test_initialized_reconciles_the_heartbeat_of_a_swarm_test_mode_first(fake):
    ret = states(fake, test=True).initialized("nuc1", "198.18.9.11", dispatcher_heartbeat=30)
    assert ret["result"] is None and "settings_update" not in fake.calls
    assert ret["changes"] == {"dispatcher_heartbeat": {"old": 5, "new": 30}}
    assert ret["comment"].endswith("settings would be set: dispatcher_heartbeat 30")
    ret = states(fake).initialized("nuc1", "198.18.9.11", dispatcher_heartbeat=30)
    assert ret["result"] is True and fake.settings == {"dispatcher_heartbeat": 30}
    assert ret["changes"] == {"dispatcher_heartbeat": {"old": 5, "new": 30}}
    fake.calls.clear()
    again = states(fake).initialized("nuc1", "198.18.9.11", dispatcher_heartbeat=30)
    assert again["result"] is True and again["changes"] == {}
    assert "settings_update" not in fake.calls


def test_a_heartbeat_that_reads_back_otherwise_fails_naming_it(fake):
    fake.settings_stick = False
    ret = states(fake).initialized("nuc1", "198.18.9.11", dispatcher_heartbeat=30)
    assert ret["result"] is False
    assert "read back otherwise (dispatcher_heartbeat is 5, pillar wants 30)" in ret["comment"]


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


def test_joined_new_node_asks_the_manager_for_its_token_once_after_one_retry(fake):
    """A manager initializing in the same deploy step publishes the token by the next retry
    without the reactor's help; a node new to the pillar of a running cluster asks once."""
    worker(fake)
    module = states(fake, minion="nuc4")
    module.__salt__.update(module_fakes({"ag_swarm.join_token_published": lambda manager, role: False}))
    comments = []
    for _ in range(3):  # the SLS retries
        ret = module.joined("nuc4", "nuc1", "198.18.9.11", "198.18.9.14")
        assert ret["result"] is False
        comments.append(ret["comment"])
        if len(comments) == 1:
            assert fake.events == []
    assert fake.events == [("ag/swarm/token/wanted", {"manager": "nuc1"})]
    assert "(asked for it)" not in comments[0] and "(asked for it)" in comments[1]


def test_join_error_is_a_failed_state(fake):
    worker(fake)
    module = states(fake, minion="nuc2")

    def refuse(*args, **kwargs):
        raise CommandExecutionError("joining the swarm of nuc1 at 198.18.9.11 failed: timeout")

    module.__salt__.update(module_fakes({"ag_swarm.swarm_join": refuse}))
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


# --- nodes taken out of the pillar -------------------------------------------------------------


def labelled(fake):
    """The fake swarm after a first run: every pillar node carries its pillar labels."""
    states(fake).labels_reconciled("c", CLUSTER)
    fake.calls.clear()
    fake.actions.clear()
    fake.live_at_labels.clear()
    return fake


def former_node(fake, name="nuc4", state="ready", role="worker", in_mine=True):
    """A node that left the pillar but not the swarm: a grader with an admin label."""
    node_id = fake.add_node(name, {"grader": "true", "tiny_fast_grader": "true", "rack": "b2"},
                            state=state, role=role)
    if in_mine:
        fake.mine[name] = {"state": "active", "node_id": node_id, "cluster_id": fake.cluster_id,
                           "role": role}
    fake.run_task("ag_grader", name)
    return node_id


def test_a_node_out_of_pillar_is_drained_then_unlabelled_and_stays_a_member(fake):
    node_id = former_node(labelled(fake))
    ret = states(fake).labels_reconciled("c", CLUSTER)
    assert ret["result"] is True
    assert ret["changes"] == {"nuc4": {"availability": "drain", "tasks_left": ["ag_grader"],
                                       "remove": ["grader", "tiny_fast_grader"],
                                       "removed": False}}
    mine = [a for a in fake.actions if a[1] == node_id and a[0] != "tasks"]
    # drain, then tasks polled until none runs, then the labels: never the other way round
    assert mine == [("drain", node_id), ("labels", node_id)]
    polls = [i for i, a in enumerate(fake.actions) if a == ("tasks", node_id)]
    assert fake.actions.index(("drain", node_id)) < polls[-1] < fake.actions.index(
        ("labels", node_id))
    assert fake.live_at_labels == {node_id: 0}
    assert fake.nodes[node_id]["availability"] == "drain"  # the labels update kept it
    assert fake.nodes[node_id]["labels"] == {"rack": "b2"}
    assert "node_remove" not in fake.calls
    assert "run 'docker swarm leave' on it" in ret["comment"]
    again = states(fake).labels_reconciled("c", CLUSTER)
    assert again["result"] is True and again["changes"] == {}
    assert "nuc4 is not in pillar and stays a swarm member" in again["comment"]


def test_taking_a_node_out_in_test_mode_reports_and_changes_nothing(fake):
    node_id = former_node(labelled(fake))
    before = copy.deepcopy(fake.nodes)
    ret = states(fake, test=True).labels_reconciled("c", CLUSTER)
    assert ret["result"] is None
    assert ret["changes"] == {"nuc4": {"availability": "drain", "tasks_left": ["ag_grader"],
                                       "remove": ["grader", "tiny_fast_grader"],
                                       "removed": False}}
    assert "would be drained and unlabelled: nuc4" in ret["comment"]
    assert fake.nodes == before
    assert not {"node_update", "node_remove"} & set(fake.calls)
    assert fake.tasks[0]["desired_state"] == "running" and node_id in fake.nodes


def test_nothing_to_do_makes_no_task_or_update_call(fake):
    ret = states(fake).labels_reconciled("c", CLUSTER)
    ret = states(labelled(fake)).labels_reconciled("c", CLUSTER)
    assert ret["result"] is True and ret["changes"] == {}
    assert not {"tasks", "node_update"} & set(fake.calls)


def test_tasks_that_do_not_stop_fail_naming_node_and_tasks_labels_kept(fake):
    node_id = former_node(labelled(fake))
    fake.stop_after = 10 ** 6
    ret = states(fake).labels_reconciled("c", CLUSTER, drain_timeout=30)
    assert ret["result"] is False
    assert "after 30 s (nuc4: ag_grader)" in ret["comment"]
    assert "drain_timeout" in ret["comment"]
    assert ret["changes"] == {"nuc4": {"availability": "drain"}}  # what was done
    assert fake.nodes[node_id]["labels"]["grader"] == "true"
    assert fake.clock.now >= 30
    # the next run waits again before it removes the labels
    fake.actions.clear()
    for task in fake.tasks:
        task["polls"] = 1
    ret = states(fake).labels_reconciled("c", CLUSTER, drain_timeout=30)
    assert ret["result"] is True and fake.nodes[node_id]["labels"] == {"rack": "b2"}
    assert ("drain", node_id) not in fake.actions  # already drained
    assert fake.live_at_labels == {node_id: 0}


def test_a_down_node_is_drained_unlabelled_and_removed_without_waiting(fake):
    node_id = former_node(labelled(fake), state="down")
    ret = states(fake).labels_reconciled("c", CLUSTER)
    assert ret["result"] is True
    assert ret["changes"] == {"nuc4": {"availability": "drain",
                                       "remove": ["grader", "tiny_fast_grader"], "removed": True}}
    # its tasks never report again: no wait, and the removal comes last
    assert fake.actions == [("drain", node_id), ("labels", node_id), ("rm", node_id)]
    assert node_id not in fake.nodes
    assert "Down, removed from the swarm: nuc4" in ret["comment"]
    assert states(fake).labels_reconciled("c", CLUSTER)["changes"] == {}


def test_a_down_manager_out_of_pillar_is_not_removed_and_the_admin_is_told(fake):
    node_id = former_node(labelled(fake), state="down", role="manager")
    ret = states(fake).labels_reconciled("c", CLUSTER)
    assert ret["changes"]["nuc4"]["removed"] is False and node_id in fake.nodes
    assert "docker node demote nuc4" in ret["comment"]


def test_a_labelled_stranger_no_minion_claims_is_taken_out_too(fake):
    node_id = former_node(labelled(fake), name="nuc7", in_mine=False)
    ret = states(fake).labels_reconciled("c", CLUSTER)
    assert list(ret["changes"]) == [f"swarm node {node_id} (nuc7)"]
    assert fake.nodes[node_id]["labels"] == {"rack": "b2"}


def test_an_unlabelled_node_nothing_claims_is_left_alone(fake):
    node_id = fake.add_node("nuc8", {"rack": "b2"})
    ret = states(labelled(fake)).labels_reconciled("c", CLUSTER)
    assert ret["changes"] == {} and fake.nodes[node_id]["availability"] == "active"


def test_a_pillar_node_missing_from_the_mine_is_never_drained(fake):
    labelled(fake)
    del fake.mine["nuc2"]  # e.g. a mine flush: nuc2 has not published itself again yet
    fake.run_task("ag_grader", "nuc2")
    ret = states(fake).labels_reconciled("c", CLUSTER)
    assert ret["result"] is True and ret["changes"] == {}
    assert fake.nodes["id-nuc2"]["availability"] == "active"
    assert "it looks like nuc2" in ret["comment"]


def test_a_stale_mine_entry_of_another_minion_does_not_drain_a_pillar_node(fake):
    labelled(fake)
    fake.mine["old-name"] = dict(fake.mine["nuc2"])  # nuc2's machine under its former id
    ret = states(fake).labels_reconciled("c", CLUSTER)
    assert ret["changes"] == {} and fake.nodes["id-nuc2"]["availability"] == "active"


def test_a_pillar_node_set_to_drain_empties_before_its_labels_change(fake):
    labelled(fake)
    fake.run_task("ag_grader", "nuc2")
    cluster = copy.deepcopy(CLUSTER)
    cluster["nodes"]["nuc2"].update(availability="drain", labels=["grader"])
    ret = states(fake).labels_reconciled("c", cluster)
    assert ret["result"] is True
    assert ret["changes"] == {"nuc2": {"set": [], "remove": ["fast_grader", "image_builder"],
                                       "availability": "drain", "tasks_left": ["ag_grader"]}}
    updates = [a for a in fake.actions if a[0] != "tasks"]
    assert updates == [("drain", "id-nuc2"), ("labels", "id-nuc2")]
    assert fake.live_at_labels == {"id-nuc2": 0}
    assert fake.nodes["id-nuc2"]["availability"] == "drain"
    assert states(fake).labels_reconciled("c", cluster)["changes"] == {}
    # back to active (the default) when the pillar no longer says drain
    ret = states(fake).labels_reconciled("c", CLUSTER)
    assert ret["changes"]["nuc2"]["availability"] == "active"
    assert fake.nodes["id-nuc2"]["availability"] == "active"


def test_a_drain_that_would_stop_the_database_is_refused_before_any_call(fake):
    cluster = copy.deepcopy(CLUSTER)
    cluster["nodes"]["nuc1"]["availability"] = "drain"
    ret = states(fake).labels_reconciled("c", cluster)
    assert ret["result"] is False and "node nuc1: availability drain" in ret["comment"]
    assert fake.calls == []


def test_a_database_on_a_former_node_is_not_moved_by_taking_it_out(fake):
    labelled(fake)
    node_id = former_node(fake)
    fake.nodes[node_id]["labels"]["database"] = "true"
    fake.nodes["id-nuc1"]["labels"].pop("database")
    ret = states(fake).labels_reconciled("c", CLUSTER)
    assert ret["result"] is False and "database would move from nuc4 to nuc1" in ret["comment"]
    assert "node_update" not in fake.calls


def test_network_test_mode_reports_then_apply_creates_then_nothing_to_do(fake):
    wanted = {"driver": "overlay", "attachable": True, "encrypted": False,
              "subnets": ["198.19.200.0/24"]}
    ret = states(fake, test=True).network_present("ag-net", attachable=True, subnet="198.19.200.0/24")
    assert ret["result"] is None and ret["changes"] == {"network": {"old": None, "new": wanted}}
    assert "network_create" not in fake.calls
    ret = states(fake).network_present("ag-net", attachable=True, subnet="198.19.200.0/24")
    assert ret["result"] is True and ret["comment"] == "network ag-net created"
    assert ret["changes"] == {"network": {"old": None, "new": {"id": "net-ag-net", **wanted}}}
    again = states(fake).network_present("ag-net", attachable=True, subnet="198.19.200.0/24")
    assert again["changes"] == {} and again["comment"] == "network ag-net is present"


def test_a_network_that_differs_fails_naming_each_difference(fake):
    fake.network_create("ag-net", driver="bridge")
    ret = states(fake).network_present("ag-net", attachable=True)
    assert ret["result"] is False and ret["changes"] == {}
    assert ("network ag-net exists but differs (driver is bridge, pillar wants overlay; "
            "attachable is False, pillar wants True)") in ret["comment"]
    assert fake.calls.count("network_create") == 0


def test_an_encrypted_network_is_created_so_and_an_unencrypted_one_is_named_not_changed(fake):
    ret = states(fake).network_present("ag-net", encrypted=True)
    assert ret["result"] is True and ret["changes"]["network"]["new"]["encrypted"] is True
    assert states(fake).network_present("ag-net", encrypted=True)["changes"] == {}
    fake.networks.clear()
    fake.network_create("ag-net")
    ret = states(fake).network_present("ag-net", encrypted=True)
    assert ret["result"] is False and ret["changes"] == {}
    assert "(encrypted is False, pillar wants True)" in ret["comment"]


def test_a_network_created_otherwise_than_asked_fails_naming_the_difference(fake):
    create = fake.network_create
    fake.network_create = lambda name, **options: create(name, **dict(options, attachable=False))
    ret = states(fake).network_present("ag-net", attachable=True)
    assert ret["result"] is False and ret["changes"]["network"]["new"]["attachable"] is False
    assert ("network ag-net was created but reads back otherwise (attachable is False, pillar "
            "wants True)") in ret["comment"]


def test_labels_absent_removes_only_the_pillar_labels_of_the_nodes_named(fake):
    states(fake).labels_reconciled("c", CLUSTER)
    fake.nodes["id-nuc3"]["labels"]["site.rack"] = "b2"  # a label the site set itself
    retiring = {"nuc3": CLUSTER["nodes"]["nuc3"]["labels"]}
    ret = states(fake, test=True).labels_absent("c", retiring)
    assert ret["result"] is None
    assert ret["changes"] == {"nuc3": {"remove": ["deferred_grader", "rerun_grader"]}}
    assert labels_of(fake, "nuc3") == ["deferred_grader", "rerun_grader"]
    ret = states(fake).labels_absent("c", retiring)
    assert ret["result"] is True and ret["changes"] == {
        "nuc3": {"remove": ["deferred_grader", "rerun_grader"]}}
    assert fake.nodes["id-nuc3"]["labels"] == {"site.rack": "b2"}
    assert labels_of(fake, "nuc2") == ["fast_grader", "grader", "image_builder"]
    again = states(fake).labels_absent("c", retiring)
    assert again["result"] is True and again["changes"] == {}


def test_labels_absent_outside_a_swarm_and_on_a_worker(fake):
    fake.info = {"state": "inactive", "role": None, "node_id": None, "cluster_id": None}
    ret = states(fake).labels_absent("c", {"nuc2": ["grader"]})
    assert ret["result"] is True and ret["changes"] == {} and "in no swarm" in ret["comment"]
    fake.info = {"state": "active", "role": "worker", "node_id": "id-nuc2", "cluster_id": "clusterA"}
    ret = states(fake, minion="nuc2").labels_absent("c", {"nuc2": ["grader"]})
    assert ret["result"] is False and "nuc2 is not the swarm's manager" in ret["comment"]


def reconnecting(fake, polls):
    """A member of clusterA whose dockerd restarted: pending for `polls` looks, then active."""
    fake.info = {"state": "pending", "role": None, "node_id": "id-x", "cluster_id": "clusterA"}
    looks = iter(range(polls, -1, -1))

    def swarm_info():
        fake.calls.append("swarm_info")
        if next(looks, 0) == 0:
            fake.info.update(state="active", role="worker")
        return dict(fake.info)
    return swarm_info


@pytest.mark.parametrize("test", [False, True])
def test_a_member_reconnecting_after_a_dockerd_restart_is_waited_for_never_rejoined(fake, test):
    module = states(fake, test=test, minion="nuc2")
    module.__salt__["ag_swarm.swarm_info"] = reconnecting(fake, polls=5)
    ret = module.joined("nuc2", "nuc1", "198.18.9.11", "198.18.9.12")
    assert ret["result"] is True and ret["changes"] == {}, ret
    assert "cancel" not in fake.calls and "join" not in fake.calls
    assert ("worker of swarm clusterA" in ret["comment"]) != test  # test mode does not wait
    assert fake.clock.now == (0 if test else 5 * module.RECONNECT_POLL)


def test_a_member_that_never_reconnects_is_named_and_left_in_its_swarm(fake):
    module = states(fake, minion="nuc2")
    module.__salt__["ag_swarm.swarm_info"] = reconnecting(fake, polls=10_000)
    ret = module.joined("nuc2", "nuc1", "198.18.9.11", "198.18.9.12")
    assert ret["result"] is False and ret["changes"] == {}
    assert "not reconnected" in ret["comment"] and "198.18.9.11:2377" in ret["comment"]
    assert "cancel" not in fake.calls and "join" not in fake.calls
    waited = fake.clock.now
    assert waited >= module.RECONNECT_WAIT
    module.joined("nuc2", "nuc1", "198.18.9.11", "198.18.9.12")  # the SLS's retry
    assert fake.clock.now == waited, "each retry waited again"


def test_a_pending_member_of_another_swarm_is_cancelled_then_joined(fake):
    fake.info = {"state": "pending", "role": None, "node_id": "id-x", "cluster_id": "clusterOld"}
    ret = states(fake, minion="nuc2").joined("nuc2", "nuc1", "198.18.9.11", "198.18.9.12")
    assert ret["result"] is True and fake.calls.index("cancel") < fake.calls.index("join")
