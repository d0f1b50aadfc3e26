"""Tier 1: the swarm of the cluster pillar (issue 5). The tests run in file order on one bed:
test mode on fresh nodes, highstate forms the swarm, re-runs change nothing, labels move, bad
pillars change nothing, a 4th node joins by its own highstate, no join token anywhere, the 4th
node deleted from the pillar is drained before its labels go, and removed once Down."""

import copy
import json
import subprocess
import time

import pytest

from bed import config, host, netns
from bed.util import wait_for

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
        res = bed.exec("nuc1", "docker", "node", "inspect", node_id, check=False)
        if res.returncode != 0:
            if "not found" in res.stderr:
                continue  # removed since the listing (a Down entry of a node that rejoined)
            raise AssertionError(f"nuc1: docker node inspect {node_id}: {res.stderr}")
        data = json.loads(res.stdout)[0]
        hostname, state = data["Description"]["Hostname"], data["Status"]["State"]
        if hostname in found and found[hostname][0] == "ready":
            continue  # a rejoined node's old Down entry does not hide its live one
        found[hostname] = (state, data["Spec"].get("Labels") or {})
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


def not_true(returns):
    """The states that did not succeed, with their comments: what a failing assert shows."""
    return {(m, s["__id__"]): (s["result"], s["comment"]) for m, states in returns.items()
            for s in states if isinstance(s, dict) and s["result"] is not True}


def edit_pillar(bed, edit):
    data = bed.read_pillar()
    edit(data["autograder"]["cluster"])
    bed.write_pillar(data)


def leave_swarms(bed):
    for node in json.loads(config.STATE_FILE.read_text())["nodes"]:
        bed.leave_swarm(node)
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
    assert code == 0, not_true(returns) or returns
    assert not_true(returns) == {}
    # nuc2 and nuc3 are labelled from the manager by the reactor on their join events
    wait_for(lambda: labels_match_pillar(bed), 60, "every node to carry its pillar labels", interval=1)
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
    assert not_true(returns) == {}


def test_test_mode_on_the_formed_swarm_reports_nothing_to_do(bed):
    before = swarm_nodes(bed)
    returns, _ = apply(bed, "test=True")
    assert changes(returns) == {}
    assert not_true(returns) == {}
    assert swarm_nodes(bed) == before


RACING = ["nuc2", "nuc3"]
BUMP = "ag-test-bump"  # a label outside the managed set, written by a racing admin


def test_two_label_reconciles_at_once_and_a_racing_writer_all_succeed(bed):
    """Issue 22: concurrent updates of one swarm node (two reconciles at once, an admin's
    `docker node update` between a reconcile's read and its write) are made again on the node
    as it is now, never a failed run, and never undo what the other wrote."""
    for node in RACING:
        bed.exec("nuc1", "sh", "-ec", "docker node update $(docker node inspect -f "
                 "'{{range $k, $v := .Spec.Labels}}--label-rm {{$k}} {{end}}' " + node + f") {node}")
    log_size = len(bed.exec("nuc1", "cat", "/var/log/salt/minion").stdout)
    bed.exec("nuc1", "rm", "-f", "/tmp/ag-stop-bump")
    writer = subprocess.Popen(netns.enter("nuc1") + ["sh", "-c", (
        "i=0; while [ ! -e /tmp/ag-stop-bump ]; do i=$((i+1)); "
        + "; ".join(f"docker node update --label-add {BUMP}=$i {n} >/dev/null" for n in RACING)
        + "; done")])
    try:
        runs = [subprocess.Popen(host.salt_cmd("salt", "--out=json", "--static", "nuc1",
                                               "state.apply", "swarm.labels", "concurrent=True"),
                                 stdout=subprocess.PIPE, text=True) for _ in range(2)]
        outputs = [json.loads(run.communicate(timeout=300)[0])["nuc1"] for run in runs]
    finally:
        bed.exec("nuc1", "touch", "/tmp/ag-stop-bump")
        writer.wait(timeout=60)
    for out in outputs:
        assert isinstance(out, dict) and all(s["result"] is True for s in out.values()), out
    assert labels_match_pillar(bed)
    assert all(BUMP in swarm_nodes(bed)[n][1] for n in RACING)
    retried = bed.exec("nuc1", "cat", "/var/log/salt/minion").stdout[log_size:]
    assert "(update out of sequence); read again" in retried, "the race did not happen"
    for node in RACING:
        bed.exec("nuc1", "docker", "node", "update", "--label-rm", BUMP, node)


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
    wait_for(lambda: running_on(bed, cache_service) == ["nuc1"], 60, "the service on nuc1", interval=1)

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
    wait_for(lambda: running_on(bed, cache_service) == ["nuc3"], 60, "the service to follow", interval=1)


def test_a_database_move_is_refused_until_allowed(bed):
    def move(cluster):
        cluster["nodes"]["nuc1"]["labels"].remove("database")
        cluster["nodes"]["nuc2"]["labels"].append("database")

    before = swarm_nodes(bed)
    edit_pillar(bed, move)
    # the check before any change, as ag.deploy's first step and the sysadmin run it
    checked = bed.salt_run("ag.validate")
    assert checked["valid"] is False and checked["errors"] == [
        "label database would move from nuc1 to nuc2, but its data lives on nuc1; move the "
        "data first, then approve this move once: add 'database: nuc1 -> nuc2' to "
        "autograder:cluster:allow_label_moves"]
    returns, code = apply(bed, "swarm", target=["nuc1"])
    assert code != 0
    labels = next(s for s in returns["nuc1"] if s["__id__"] == "swarm-labels-reconciled")
    assert labels["result"] is False and labels["changes"] == {}
    assert "database would move from nuc1 to nuc2" in labels["comment"]
    assert swarm_nodes(bed) == before

    edit_pillar(bed, lambda cluster: cluster.update(allow_label_moves=["database: nuc1 -> nuc2"]))
    assert bed.salt_run("ag.validate")["valid"] is True
    returns, code = apply(bed, "swarm", target=["nuc1"])
    assert code == 0
    assert swarm_nodes(bed)["nuc2"][1]["database"] == "true"
    assert "database" not in swarm_nodes(bed)["nuc1"][1]
    # done: the approval is refused from now on, so it can approve no later move
    checked = bed.salt_run("ag.validate")
    assert checked["valid"] is False
    assert checked["errors"][0].startswith("autograder:cluster:allow_label_moves: 'database: "
                                           "nuc1 -> nuc2' approves no move the pillar makes now")
    edit_pillar(bed, lambda cluster: cluster.update(allow_label_moves=[]))
    assert bed.salt_run("ag.validate")["valid"] is True


def test_an_address_on_no_interface_of_its_node_is_named_by_validate(bed):
    good = bed.read_pillar()
    wrong = config.node_addr("netns", 9)  # a bed address no node has
    try:
        edit_pillar(bed, lambda cluster: cluster["nodes"]["nuc2"].update(address=wrong))
        checked = bed.salt_run("ag.validate")
        assert checked["valid"] is False and len(checked["errors"]) == 1
        error = checked["errors"][0]
        assert error.startswith(f"autograder:cluster:nodes:nuc2:address: {wrong} is on no "
                                "interface of nuc2 (it has ")
        assert config.node_addr("netns", 2) in error  # its own address, named for the fix
    finally:
        bed.write_pillar(good)


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
        bed.leave_swarm(NEW)
        bed.exec("nuc1", "docker", "node", "rm", "--force", NEW, check=False)
    returns, code = apply(bed, target=[NEW])
    assert code == 0, not_true(returns) or returns
    joined = next(s for s in returns[NEW] if s["__id__"] == "swarm-joined")
    assert joined["result"] is True and joined["changes"]["swarm"]["new"]["role"] == "worker"
    wait_for(lambda: swarm_nodes(bed).get(NEW, ("", {}))[0] == "ready", 60, f"{NEW} Ready", interval=1)
    wait_for(lambda: labels_match_pillar(bed), 60, f"{NEW} to carry its labels", interval=1)
    assert sorted(swarm_nodes(bed)[NEW][1]) == NEW_LABELS


def test_no_join_token_in_master_cache_or_any_log(bed):
    tokens = [bed.exec("nuc1", "docker", "swarm", "join-token", "-q", role).stdout.strip()
              for role in ("worker", "manager")]
    assert all(t.startswith("SWMTKN-") for t in tokens)
    # the manager withdraws the tokens from the mine once nobody waits to join (its last
    # reactor run); then no copy is left in the master's cache (job cache, mine) or logs,
    # nor in any node's logs and minion cache (job returns)
    wait_for(lambda: bed.salt("nuc1", "saltutil.running") == {"nuc1": []}, 60, "nuc1 idle",
             interval=1)
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


def availability(bed, node):
    return bed.exec("nuc1", "docker", "node", "inspect", "-f", "{{.Spec.Availability}}",
                    node).stdout.strip()


def events(bed, node, since, *filters):
    """docker events of `node` from `since` (epoch seconds) until now, oldest first."""
    out = bed.exec(node, "docker", "events", "--since", f"{since:.3f}", "--until",
                   f"{time.time():.3f}", "--format", "{{json .}}", *filters).stdout
    return [json.loads(line) for line in out.splitlines()]


@pytest.fixture
def grader_service(bed):
    """A global service on the nodes labelled grader, as the stack's grader is."""
    bed.exec("nuc1", "docker", "service", "create", "--detach", "--name", "ag-probe-grader",
             "--mode", "global", "--constraint", "node.labels.grader==true",
             "--no-resolve-image", "agbed/busybox:latest", "sleep", "1d")
    yield "ag-probe-grader"
    bed.exec("nuc1", "docker", "service", "rm", "ag-probe-grader", check=False)


def test_a_node_deleted_from_the_pillar_is_drained_before_its_labels_go(bed, grader_service,
                                                                        measured):
    edit_pillar(bed, lambda c: c["nodes"][NEW].update(labels=["grader", "tiny_fast_grader"]))
    returns, code = apply(bed, "swarm.labels", target=["nuc1"])
    assert code == 0, not_true(returns) or returns
    wait_for(lambda: running_on(bed, grader_service) == ["nuc2", NEW], 60, "graders on nuc2, nuc4",
             interval=1)

    since = time.time() - 1
    edit_pillar(bed, lambda c: c["nodes"].pop(NEW))
    returns, code = apply(bed, "swarm.labels", target=["nuc1"])
    assert code == 0, not_true(returns) or returns
    measured(f"worker deleted from the pillar: drained, emptied and unlabelled by one swarm.labels "
             f"run of {time.time() - since - 1:.0f} s")
    assert changes(returns) == {("nuc1", "swarm-labels-reconciled"): {
        NEW: {"availability": "drain", "tasks_left": [grader_service],
              "remove": ["grader", "tiny_fast_grader"], "removed": False}}}
    # what the engines saw: nuc4 drained, its grader container gone, then its labels changed
    updates = [e for e in events(bed, "nuc1", since, "--filter", "type=node")
               if e["Actor"]["Attributes"].get("name") == NEW]
    drained = next(e["timeNano"] for e in updates
                   if e["Actor"]["Attributes"].get("availability.new") == "drain")
    labels_gone = next(e["timeNano"] for e in updates if e["timeNano"] > drained
                       and set(e["Actor"]["Attributes"]) == {"name"})
    died = [e["timeNano"] for e in events(bed, NEW, since, "--filter", "type=container",
                                          "--filter", "event=die", "--filter",
                                          f"label=com.docker.swarm.service.name={grader_service}")]
    assert len(died) == 1 and drained < died[0] < labels_gone
    state, labels = swarm_nodes(bed)[NEW]
    assert state == "ready" and availability(bed, NEW) == "drain"
    assert not set(labels) & MANAGED
    assert running_on(bed, grader_service) == ["nuc2"]
    comment = next(s["comment"] for s in returns["nuc1"]
                   if s["__id__"] == "swarm-labels-reconciled")
    assert "run 'docker swarm leave' on it" in comment

    again, code = apply(bed, "swarm.labels", target=["nuc1"])
    assert code == 0 and changes(again) == {}


def test_a_down_node_deleted_from_the_pillar_is_removed_from_the_swarm(bed):
    # back in the pillar: active and labelled again
    edit_pillar(bed, lambda c: c["nodes"].__setitem__(
        NEW, {"address": config.node_addr("netns", 4), "labels": NEW_LABELS}))
    returns, code = apply(bed, "swarm.labels", target=["nuc1"])
    assert code == 0, not_true(returns) or returns
    assert changes(returns)[("nuc1", "swarm-labels-reconciled")][NEW]["availability"] == "active"
    assert availability(bed, NEW) == "active" and labels_match_pillar(bed)

    bed.exec(NEW, "/etc/init.d/docker", "stop")  # the machine is gone, labels and all
    try:
        wait_for(lambda: swarm_nodes(bed)[NEW][0] == "down", 90, f"{NEW} Down", interval=1)
        edit_pillar(bed, lambda c: c["nodes"].pop(NEW))
        returns, code = apply(bed, "swarm.labels", target=["nuc1"])
        assert code == 0, not_true(returns) or returns
        assert changes(returns) == {("nuc1", "swarm-labels-reconciled"): {
            NEW: {"availability": "drain", "remove": NEW_LABELS, "removed": True}}}
        assert NEW not in swarm_nodes(bed)
        again, code = apply(bed, "swarm.labels", target=["nuc1"])
        assert code == 0 and changes(again) == {}
    finally:
        # nuc4 as the other tests expect it: dockerd up (the fixture makes it leave the swarm)
        bed.exec(NEW, "/etc/init.d/docker", "start")
        wait_for(lambda: bed.exec(NEW, "docker", "info", "-f", "{{.ID}}",
                                  check=False).returncode == 0, 60, f"dockerd on {NEW}", interval=1)


def reactor_jobs(bed):
    """The IDs of the state.sls jobs the master sent to nuc1 (the reactor's answers)."""
    return sorted(bed.salt_run("jobs.list_jobs", "search_function=state.sls",
                               "search_target=nuc1"))


def test_a_minion_outside_the_cluster_cannot_get_a_join_token(bed):
    """nuc4, accepted by the master but no longer in the pillar, asks for the join tokens every
    way the project ships (the mine, the reactor's token event, peer publishing) while nuc3, a
    pillar node out of the swarm, may read its own. nuc4's event starts nothing on the
    manager (issue 18.5); nuc3's starts the token publishing."""
    assert NEW not in pillar_labels(bed) and NEW in bed.salt(NEW, "test.ping")
    bed.exec("nuc3", "docker", "swarm", "leave", "--force")
    bed.salt("nuc3", "ag_swarm.publish_swarm_node")  # as swarm.joined does before it asks
    try:
        returns, code = apply(bed, "swarm.initialized", target=["nuc1"])
        assert code == 0, not_true(returns) or returns
        assert bed.salt("nuc3", "ag_swarm.join_token_published", "nuc1") == {"nuc3": True}
        before = reactor_jobs(bed)
        bed.salt(NEW, "event.send", "ag/swarm/token/wanted", "manager=nuc1", "role=manager")
        time.sleep(5)  # the reactor's runner would have started its job by now
        assert reactor_jobs(bed) == before, "an outsider's event started a state run on nuc1"
        bed.salt("nuc3", "event.send", "ag/swarm/token/wanted", "manager=nuc1")
        wait_for(lambda: len(reactor_jobs(bed)) > len(before), 60,
                 "the reactor to answer nuc3, a node of the cluster", interval=1)
        wait_for(lambda: bed.salt("nuc1", "saltutil.running") == {"nuc1": []}, 60, "nuc1 idle",
                 interval=1)
        for role in ("worker", "manager"):
            assert bed.salt(NEW, "ag_swarm.join_token_published", "nuc1", f"role={role}") == {NEW: False}
            assert bed.salt(NEW, "mine.get", "nuc1", f"ag_swarm_join_token_{role}") == {NEW: {}}
        peer = bed.salt(NEW, "publish.publish", "nuc1", "ag_swarm.swarm_info")
        assert not peer.get(NEW), peer
    finally:
        returns, code = apply(bed, target=["nuc3"])  # back in the swarm, labelled again
        assert code == 0, not_true(returns) or returns
        wait_for(lambda: labels_match_pillar(bed), 60, "nuc3 to carry its labels again", interval=1)
