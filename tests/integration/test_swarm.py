"""Tier 1: the swarm of the cluster pillar (issue 5). The tests run in file order on one bed:
test mode on fresh nodes, highstate forms the swarm, re-runs change nothing, labels move, bad
pillars change nothing, a 4th node joins by its own highstate, no join token anywhere."""

import copy
import json
import subprocess
import time

import pytest

from bed import config

NODES = ["nuc1", "nuc2", "nuc3"]
NEW = "nuc4"
NEW_LABELS = ["tiny_fast_grader", "tiny_grader"]
MANAGED = {
    "registry", "webserver", "django_app", "database", "cache", "rabbitmq_broker", "small_tasks",
    "grader", "tiny_grader", "fast_grader", "tiny_fast_grader", "deferred_grader",
    "tiny_deferred_grader", "rerun_grader", "tiny_rerun_grader", "image_builder",
    "custom_image_registry",
}


def swarm_state(bed, node):
    return bed.exec(node, "docker", "info", "-f", "{{.Swarm.LocalNodeState}}").stdout.strip()


def swarm_nodes(bed):
    """{hostname: (status, labels)} as the manager sees them."""
    out = bed.exec("nuc1", "docker", "node", "ls", "-q").stdout.split()
    found = {}
    for node_id in out:
        data = json.loads(bed.exec("nuc1", "docker", "node", "inspect", node_id).stdout)[0]
        found[data["Description"]["Hostname"]] = (data["Status"]["State"],
                                                  data["Spec"].get("Labels") or {})
    return found


def pillar_labels(bed):
    return {n: sorted(v.get("labels") or [])
            for n, v in bed.read_pillar()["autograder"]["cluster"]["nodes"].items()}


def labels_match_pillar(bed):
    want = pillar_labels(bed)
    have = swarm_nodes(bed)
    return all(h in have and sorted(k for k, v in have[h][1].items() if k in MANAGED
                                    and v == "true") == sorted(want[h])
               for h in want)


def wait_until(predicate, what, timeout=60):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(1)


def apply(bed, *args, target=None):
    """state.apply on the cluster nodes (queued behind the reactor's runs on the manager);
    returns {minion: [state returns]} (or a list of render errors per minion) and the CLI's
    exit code."""
    # not --static: with it the CLI exits 0 whatever the minions return; one JSON per minion
    res = bed.salt_raw("salt", "--out=json", "-L", ",".join(target or NODES), "state.apply",
                       *args, "queue=True")
    data, decoder, text, at = {}, json.JSONDecoder(), res.stdout.strip(), 0
    while at < len(text):
        part, at = decoder.raw_decode(text, at)
        data.update(part)
        at = len(text) - len(text[at:].lstrip())
    return ({m: r if isinstance(r, list) else list(r.values()) for m, r in data.items()},
            res.returncode)


def changes(returns):
    return {(m, s["__id__"]): s["changes"] for m, states in returns.items() for s in states
            if s["changes"]}


def edit_pillar(bed, edit):
    data = bed.read_pillar()
    edit(data["autograder"]["cluster"])
    bed.write_pillar(data)


def leave_swarms(bed):
    for node in json.loads(config.STATE_FILE.read_text())["nodes"]:
        bed.exec(node, "docker", "swarm", "leave", "--force", check=False)
    bed.salt("*", "mine.flush")


@pytest.fixture(scope="module")
def bed(netns_bed):
    """The bed with every node out of any swarm and without nuc4 in the pillar; after the
    tests the same (the moved labels would refuse the next run) and the pillar restored."""
    saved = netns_bed.read_pillar()
    leave_swarms(netns_bed)
    cluster = copy.deepcopy(saved)
    cluster["autograder"]["cluster"]["nodes"].pop(NEW, None)
    netns_bed.write_pillar(cluster)
    yield netns_bed
    leave_swarms(netns_bed)
    netns_bed.write_pillar(saved)


def test_test_mode_on_fresh_nodes_reports_and_changes_nothing(bed):
    returns, _ = apply(bed, "test=True")
    states = {(m, s["__id__"]): s for m, ss in returns.items() for s in ss}
    assert states[("nuc1", "swarm-initialized")]["result"] is None
    assert states[("nuc1", "swarm-network-present")]["result"] is None
    assert states[("nuc2", "swarm-joined")]["result"] is None
    assert "would join the swarm of nuc1" in states[("nuc3", "swarm-joined")]["comment"]
    assert all(s["result"] is not False for s in states.values())
    assert [swarm_state(bed, n) for n in NODES] == ["inactive"] * 3


def test_highstate_forms_the_swarm_with_network_and_labels(bed):
    returns, code = apply(bed)
    assert code == 0, returns
    assert all(s["result"] is True for ss in returns.values() for s in ss), returns
    # nuc2 and nuc3 are labelled from the manager by the reactor on their join events
    wait_until(lambda: labels_match_pillar(bed), "every node to carry its pillar labels")
    nodes = swarm_nodes(bed)
    assert sorted(nodes) == NODES
    assert {state for state, _ in nodes.values()} == {"ready"}
    net = json.loads(bed.exec("nuc1", "docker", "network", "inspect", "ag-swarm-network").stdout)[0]
    assert net["Driver"] == "overlay" and net["Scope"] == "swarm"
    assert net["IPAM"]["Config"][0]["Subnet"].startswith("198.19.")


def test_second_run_changes_nothing(bed):
    returns, code = apply(bed)
    assert code == 0
    assert changes(returns) == {}
    assert all(s["result"] is True for ss in returns.values() for s in ss)


def test_test_mode_on_the_formed_swarm_reports_nothing_to_do(bed):
    before = swarm_nodes(bed)
    returns, _ = apply(bed, "test=True")
    assert changes(returns) == {}
    assert all(s["result"] is True for ss in returns.values() for s in ss)
    assert swarm_nodes(bed) == before


def running_on(bed, service):
    out = bed.exec("nuc1", "docker", "service", "ps", service, "--filter",
                   "desired-state=running", "--format", "{{.Node}} {{.CurrentState}}").stdout
    return sorted(line.split()[0] for line in out.splitlines() if " Running " in f"{line} ")


@pytest.fixture
def cache_service(bed):
    """A service constrained to the cache label, as the stack's cache service is."""
    bed.exec("nuc1", "docker", "service", "create", "--detach", "--name", "ag-probe-cache",
             "--constraint", "node.labels.cache==true", "--no-resolve-image",
             "agbed/busybox:latest", "sleep", "1d")
    yield "ag-probe-cache"
    bed.exec("nuc1", "docker", "service", "rm", "ag-probe-cache", check=False)


def test_a_moved_label_moves_its_service_and_admin_labels_stay(bed, cache_service):
    bed.exec("nuc1", "docker", "node", "update", "--label-add", "rack=b2", "nuc2")
    wait_until(lambda: running_on(bed, cache_service) == ["nuc1"], "the service on nuc1")

    def move(cluster):
        cluster["nodes"]["nuc1"]["labels"].remove("cache")
        cluster["nodes"]["nuc3"]["labels"].append("cache")
        cluster["nodes"]["nuc2"]["labels"].remove("image_builder")

    edit_pillar(bed, move)
    returns, code = apply(bed, "swarm.labels", target=["nuc1"])  # the documented command
    assert code == 0
    assert changes(returns) == {("nuc1", "swarm-labels-reconciled"): {
        "nuc1": {"set": [], "remove": ["cache"]},
        "nuc2": {"set": [], "remove": ["image_builder"]},
        "nuc3": {"set": ["cache"], "remove": []},
    }}
    assert labels_match_pillar(bed)
    assert swarm_nodes(bed)["nuc2"][1]["rack"] == "b2"
    wait_until(lambda: running_on(bed, cache_service) == ["nuc3"], "the service to follow")


def test_a_database_move_is_refused_until_allowed(bed):
    def move(cluster):
        cluster["nodes"]["nuc1"]["labels"].remove("database")
        cluster["nodes"]["nuc2"]["labels"].append("database")

    before = swarm_nodes(bed)
    edit_pillar(bed, move)
    returns, code = apply(bed, "swarm", target=["nuc1"])
    assert code != 0
    labels = next(s for s in returns["nuc1"] if s["__id__"] == "swarm-labels-reconciled")
    assert labels["result"] is False and labels["changes"] == {}
    assert "database would move from nuc1 to nuc2" in labels["comment"]
    assert swarm_nodes(bed) == before

    edit_pillar(bed, lambda cluster: cluster.update(allow_label_moves=["database"]))
    returns, code = apply(bed, "swarm", target=["nuc1"])
    assert code == 0
    assert swarm_nodes(bed)["nuc2"][1]["database"] == "true"
    assert "database" not in swarm_nodes(bed)["nuc1"][1]


BAD_PILLARS = [
    ("two graders on one node", lambda c: c["nodes"]["nuc3"]["labels"].append("grader"),
     "node nuc3: labels grader and deferred_grader on one node"),
    ("unknown label", lambda c: c["nodes"]["nuc2"]["labels"].append("gpu"),
     "node nuc2: label 'gpu'"),
    ("registry on two nodes", lambda c: c["nodes"]["nuc3"]["labels"].append("registry"),
     "label registry is on nodes nuc1 and nuc3"),
    ("manager not a node", lambda c: c.update(manager="nuc7"), "manager 'nuc7' is not one of"),
    ("labels not a list", lambda c: c["nodes"]["nuc2"].update(labels="grader"),
     "labels of node nuc2 must be a list"),
]


@pytest.mark.parametrize("edit,error", [b[1:] for b in BAD_PILLARS], ids=[b[0] for b in BAD_PILLARS])
def test_bad_pillar_fails_everywhere_and_changes_nothing(bed, edit, error):
    good = bed.read_pillar()
    before = swarm_nodes(bed)
    edit_pillar(bed, edit)
    try:
        returns, code = apply(bed)
        assert code != 0
        for minion in NODES:  # every minion refuses to render: no state ran anywhere
            assert isinstance(returns[minion][0], str), returns[minion]
            assert error in "\n".join(returns[minion])
        assert swarm_nodes(bed) == before
        report = bed.salt_raw("salt-run", "--out=json", "ag.validate")
        assert report.returncode != 0
        assert any(error in e for e in json.loads(report.stdout)["errors"])
    finally:
        bed.write_pillar(good)


def test_a_fourth_node_joins_and_is_labelled_by_its_own_highstate(bed):
    def add(cluster):
        cluster["nodes"][NEW] = {"address": config.node_addr("netns", 4), "labels": NEW_LABELS}

    edit_pillar(bed, add)
    bed.cli("add", NEW)
    if NEW in swarm_nodes(bed):  # left over from an earlier run of this file
        bed.exec(NEW, "docker", "swarm", "leave", "--force", check=False)
        bed.exec("nuc1", "docker", "node", "rm", "--force", NEW, check=False)
    returns, code = apply(bed, target=[NEW])
    assert code == 0, returns
    joined = next(s for s in returns[NEW] if s["__id__"] == "swarm-joined")
    assert joined["result"] is True and joined["changes"]["swarm"]["new"]["role"] == "worker"
    wait_until(lambda: swarm_nodes(bed).get(NEW, ("", {}))[0] == "ready", f"{NEW} Ready")
    wait_until(lambda: labels_match_pillar(bed), f"{NEW} to carry its labels")
    assert sorted(swarm_nodes(bed)[NEW][1]) == NEW_LABELS


def test_no_join_token_in_master_cache_or_any_log(bed):
    tokens = [bed.exec("nuc1", "docker", "swarm", "join-token", "-q", role).stdout.strip()
              for role in ("worker", "manager")]
    assert all(t.startswith("SWMTKN-") for t in tokens)
    # the manager withdraws the tokens from the mine once nobody waits to join (its last
    # reactor run); then no copy is left in the master's cache (job cache, mine) or logs,
    # nor in any node's logs and minion cache (job returns)
    wait_until(lambda: bed.salt("nuc1", "saltutil.running") == {"nuc1": []}, "nuc1 idle")
    places = [config.MASTER_DIR / "var/cache/salt/master", config.MASTER_DIR / "var/log"]
    places += [config.NODES_DIR / n / "fs/var/log" for n in bed.nodes]
    places += [config.NODES_DIR / n / "fs/var/cache/salt" for n in bed.nodes]
    places = [str(p) for p in places if p.exists()]
    assert len(places) >= 4
    for token in tokens:
        # the secret half of the token (after the CA digest) is what must not leak
        secret = token.rsplit("-", 1)[1]
        found = subprocess.run(["grep", "-rl", "-F", secret, *places],
                               capture_output=True, text=True)
        assert found.stdout == "", f"join token found in {found.stdout}"
