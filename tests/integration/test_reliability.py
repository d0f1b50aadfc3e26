"""Tier 1 (issue 7): faults the deployed cluster survives, and bad input refused with nothing
changed. Every fault test ends with the stack converged where its labels say and nothing lost
(the django stand-in's courses, every image in the registry); the seconds each took to
converge are reported at the end of the run (conftest's `measured`). The NFS server restart
is tier 2's (test_node_states_vm.py)."""

import copy
import itertools
import json
import signal
import subprocess
import time

import pytest
import yaml
from agdeploy import (
    CHECKOUT,
    MANAGER,
    STACK,
    apply,
    changed,
    changed_steps,
    deploy,
    deployed_with_bootstrap,
    kept_data,
    minion_changes,
    placement_errors,
    sh,
    task_ids,
    unconverged,
)

from bed import host, netns
from bed.util import wait_for
from tests.bad_pillars import BAD
from tests.extensions import load

pytestmark = pytest.mark.slow

WORKER = "nuc2"
ag_cluster = load("_utils/ag_cluster.py", "ag_cluster")


@pytest.fixture(scope="module")
def bed(netns_bed, measured):
    """A deployed, bootstrapped stack (from bare nodes); what it must keep in bed.kept, where
    to report timings in bed.measured."""
    netns_bed.measured = measured
    with deployed_with_bootstrap(netns_bed):
        netns_bed.kept = kept_data(netns_bed)
        assert netns_bed.kept["courses"] and netns_bed.kept["registry"]
        yield netns_bed


def assert_recovered(bed, fault, started, timeout=300):
    """The stack converged where its labels say, with nothing lost; reports how long it took
    since `started` (time.monotonic() when the fault was over)."""
    wait_for(lambda: not unconverged(bed) and not placement_errors(bed, bed.pillar), timeout,
             lambda: f"the stack to converge (unconverged: {unconverged(bed)}) with every task "
                     f"where its labels say (misplaced: {placement_errors(bed, bed.pillar)}); "
                     f"the swarm's view:\n{swarm_view(bed)}",
             interval=2)
    bed.measured(f"{fault}: survived, converged {time.monotonic() - started:.0f} s after the fault ended")
    now = kept_data(bed)
    assert now["courses"] == bed.kept["courses"]
    for repo, tags in bed.kept["registry"].items():
        assert set(tags) <= set(now["registry"].get(repo, [])), f"{repo} lost tags"


def swarm_view(bed):
    """What the manager says of its nodes and of the misplaced services' tasks, every state
    (for a failure's message)."""
    misplaced = " ".join(service for service, _, _ in placement_errors(bed, bed.pillar))
    manager = sh(bed, MANAGER, "docker node ls --format '{{.Hostname}} {{.ID}} {{.Status}} "
                               "{{.Availability}}'; docker node inspect -f '{{.Description.Hostname}} "
                               "{{json .Spec}}' $(docker node ls -q); "
                               f"[ -z '{misplaced}' ] || docker service ps --no-trunc {misplaced}; "
                               "grep -i 'orchestrat\\|schedul\\|dispatch' /var/log/docker.log "
                               "| tail -20", check=False)
    worker = sh(bed, WORKER, "grep 'level=error\\|level=warn' /var/log/docker.log | tail -20",
                check=False)
    return f"{manager}\n{WORKER}'s dockerd:\n{worker}"


def tasks_on(bed, node):
    """IDs of the tasks the manager wants on `node`."""
    return set(sh(bed, MANAGER, f"docker node ps -q --no-trunc --filter desired-state=running "
                                f"{node}").split())


def running_tasks(bed, node):
    """IDs of the tasks whose containers run on `node`; None while its dockerd does not answer."""
    res = bed.exec(node, "docker", "ps", "--filter", "label=com.docker.swarm.task.id", "--format",
                   '{{.Label "com.docker.swarm.task.id"}}', check=False)
    return set(res.stdout.split()) if res.returncode == 0 else None


def highstate_changes(bed):
    """{(node, state id): changes} of a highstate on every node; fails on a failed state."""
    return {(node, state["__id__"]): state["changes"]
            for node, states in apply(bed, "queue=True").items()
            for state in states if state["changes"]}


def node_labels(bed, node):
    labels = sh(bed, MANAGER, f"docker node inspect -f '{{{{json .Spec.Labels}}}}' {node}")
    return sorted(k for k, v in (json.loads(labels) or {}).items() if v == "true")


def test_a_down_minion_stops_the_deploy_before_any_change_then_a_rerun_completes(bed):
    before = task_ids(bed)
    sh(bed, WORKER, f"pid=$(cat {netns.MINION_PIDFILE}); kill $pid; "
                    "while kill -0 $pid 2>/dev/null; do sleep 0.2; done")
    try:
        code, steps, output = deploy(bed)
    finally:
        started = time.monotonic()
        netns.daemons_up(WORKER)
    assert code != 0 and steps == {}, output
    assert f"no answer from the minion of {WORKER}" in output and "nothing was changed" in output
    assert task_ids(bed) == before
    wait_for(lambda: bed.salt_run("ag.unanswered") == [], 60,  # the deploy's own check
             f"the minion of {WORKER} to answer again")
    code, steps, output = deploy(bed)
    assert code == 0 and changed_steps(steps) == set(), output
    assert_recovered(bed, "minion down during ag.deploy", started)


@pytest.mark.parametrize("how", ["restarted", "killed"])
def test_a_worker_dockerd_comes_back_ready_labelled_and_running(bed, how):
    assert tasks_on(bed, WORKER)
    node_id = sh(bed, WORKER, "docker info -f '{{.Swarm.NodeID}}'").strip()
    if how == "restarted":
        sh(bed, WORKER, "/etc/init.d/docker restart >/dev/null")
        # the swarm state at once, while the member reconnects (pending): waited for, never
        # made to leave and join again as a new, unlabelled node
        swarm = apply(bed, "swarm.joined", nodes=[WORKER])[WORKER]
        assert changed(swarm) == [], swarm
        assert sh(bed, WORKER, "docker info -f '{{.Swarm.NodeID}}'").strip() == node_id
    else:
        # started again once the killed one is gone (reaped), else the init script sees it
        sh(bed, WORKER, "pid=$(cat /run/docker-ssd.pid); kill -9 $pid; "
                        "while kill -0 $pid 2>/dev/null; do sleep 0.2; done; "
                        "/etc/init.d/docker start >/dev/null")
    started = time.monotonic()
    # the manager's view lags the node's: wait until the tasks it wants there are the
    # containers that run there
    wait_for(lambda: sh(bed, MANAGER, f"docker node inspect -f '{{{{.Status.State}}}}' "
                                      f"{WORKER}").strip() == "ready"
             and tasks_on(bed, WORKER) == running_tasks(bed, WORKER), 180,
             lambda: f"{WORKER} back: the manager wants {tasks_on(bed, WORKER)}, it runs "
                     f"{running_tasks(bed, WORKER)}", interval=1)
    assert node_labels(bed, WORKER) == sorted(bed.pillar["autograder"]["cluster"]["nodes"][WORKER]["labels"])
    assert_recovered(bed, f"dockerd {how} on a worker", started)
    assert highstate_changes(bed) == {}


def test_a_deploy_killed_during_the_build_is_completed_by_running_it_again(bed):
    """salt-run killed (SIGKILL) while the build's job runs on its node: the job goes on there,
    and the next run waits for it (queue) and completes the deploy. The build is the longest
    step, so the likeliest to be cut."""
    step = "ag.images"
    changed = f"{CHECKOUT}/ag-website-vue/standin-build-seconds"  # a new input, a slow build
    # the nonce on line 2: content the build cache has never seen (an earlier run on this bed
    # built "20" alone, and its cached layer would take no time)
    sh(bed, MANAGER, f"printf '20\\n{time.time_ns()}\\n' > {changed}")
    before = task_ids(bed)
    run = subprocess.Popen(host.salt_cmd("salt-run", "state.orchestrate", "ag.deploy"),
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: run.poll() is not None or any(
            step in json.dumps(job.get("arg"))
            for job in bed.salt(MANAGER, "saltutil.running", timeout=60).get(MANAGER) or []),
            300, f"{step} to begin", interval=0.5)
        assert run.poll() is None, "the deploy ended before the step began"
        run.send_signal(signal.SIGKILL)
        run.wait()
        started = time.monotonic()
        code, _, output = deploy(bed)
        assert code == 0, output
        assert_recovered(bed, f"ag.deploy killed during {step}", started)
        after = task_ids(bed)
        assert {s for s in before if after.get(s) != before[s]} == {f"{STACK}_website"}
        code, steps, output = deploy(bed)
        assert code == 0 and changed_steps(steps) == set(), output
    finally:
        sh(bed, MANAGER, f"rm -f {changed}")
    code, _, output = deploy(bed)
    assert code == 0, output


def dockerd_restart_window(bed, node):
    """(stopped, listening again) of the last dockerd restart in `node`'s log, as sortable
    strings (RFC 3339 with its nanoseconds padded; the engine trims trailing zeros)."""
    log = sh(bed, node, "grep -e \"Processing signal 'terminated'\" -e 'API listen on' "
                        "/var/log/docker.log | tail -n 2")
    stamps = []
    for line in log.splitlines():
        stamp = line.split('"')[1].rstrip("Z")
        whole, _, fraction = stamp.partition(".")
        stamps.append(f"{whole}.{fraction.ljust(9, '0')}")
    assert len(stamps) == 2 and "terminated" in log.splitlines()[0], f"{node}: {log}"
    return tuple(stamps)


def test_a_dockerd_restarting_change_rolls_one_node_at_a_time_the_manager_last(bed):
    """Issue 20.4: a daemon.json change goes through ag.deploy's roll step: each swarm member
    drained, its dockerd restarted, Ready and active again before the next; never two nodes'
    dockerd down at once; nothing left for the node states; a second deploy rolls nothing."""
    current = json.loads(sh(bed, MANAGER, "cat /etc/docker/daemon.json"))
    uploads = 7 if current.get("max-concurrent-uploads") == 6 else 6  # a change on any bed
    pillar = copy.deepcopy(bed.pillar)
    pillar["autograder"].setdefault("docker", {}).setdefault("daemon", {})[
        "max-concurrent-uploads"] = uploads
    pids = {node: sh(bed, node, "cat /run/docker-ssd.pid") for node in bed.nodes}
    bed.write_pillar(pillar)
    try:
        code, steps, output = deploy(bed, follow=True)
        started = time.monotonic()
        assert code == 0, output
        order = [*sorted(set(bed.nodes) - {MANAGER}), MANAGER]
        assert list(steps["ag-deploy-roll"]["changes"]) == order, output
        assert all(f"ag.roll: {node}: drained in" in output for node in order), output
        assert not [key for key in minion_changes(steps["ag-deploy-node-states"])
                    if key[1] == "docker-config-daemon-json-merged"]
        assert all(sh(bed, node, "cat /run/docker-ssd.pid") != pids[node] for node in bed.nodes)
        windows = [dockerd_restart_window(bed, node) for node in order]
        assert all(a[1] < b[0] for a, b in itertools.pairwise(windows)), windows
        assert sh(bed, MANAGER, "docker node ls --format '{{.Availability}}' | sort -u") == "Active"
        assert_recovered(bed, "dockerd rolled over every node", started)
        code, steps, output = deploy(bed)
        assert code == 0 and changed_steps(steps) == set(), output
    finally:
        bed.write_pillar(bed.pillar)  # daemon.json keeps the key: it is merged, never pruned


def snapshot(bed):
    """What a refused run must leave as it was: the swarm's nodes, services and networks (with
    their versions), every task, each node's dockerd and the files and rules the states own,
    and the checkout."""
    swarm = sh(bed, MANAGER, """
        docker node ls -q | xargs docker node inspect -f '{{.ID}} {{.Version.Index}} {{json .Spec}}'
        docker service ls -q | xargs docker service inspect -f '{{.ID}} {{.Version.Index}}'
        docker network ls -q -f driver=overlay | xargs docker network inspect -f '{{.ID}} {{.Created}}'
        docker stack ps -q ag-stack
        find /srv/autograder-full-stack -path '*/.git' -prune -o -type f -print0 | sort -z \
          | xargs -0 sha256sum""")
    nodes = {node: sh(bed, node, """
        cat /run/docker-ssd.pid
        find /etc/docker /etc/security/limits.d /etc/fstab /var/lib/ag-deploy -type f -print0 \
          2>/dev/null | sort -z | xargs -0 -r sha256sum
        iptables-save -t raw | grep -v '^#'""") for node in bed.nodes}
    return swarm, nodes


def bad_cases(pillar):
    """(id, bad pillar, words) of the BAD table that make the bed's pillar invalid, plus a label
    on a minion the master does not know."""
    cases = []
    for case_id, edit, words in BAD:
        if edit is None:  # no autograder key: outside any cluster, nothing to deploy
            continue
        data = copy.deepcopy(pillar["autograder"])
        try:
            edit(data)
        except (KeyError, ValueError, IndexError):  # the edit names a key the bed lacks
            continue
        cases.append((case_id, {**pillar, "autograder": data}, words))
    cases = cases[::5][:12]  # a spread over the table (all of it: unit tests): each costs a deploy
    stranger = copy.deepcopy(pillar)
    stranger["autograder"]["cluster"]["nodes"]["nuc7"] = {"address": "198.18.250.17",
                                                          "labels": ["tiny_grader"]}
    cases.append(("unknown-minion", stranger, ["node nuc7", "accepted"]))
    return cases


def test_bad_pillars_stop_the_deploy_naming_the_fault_and_change_nothing(bed):
    cases = bad_cases(bed.pillar)
    assert len(cases) >= 12, [c[0] for c in cases]
    assert not [case_id for case_id, pillar, _ in cases[:-1]
                if not ag_cluster.validate(pillar["autograder"])], "a case is valid on the bed"
    before = snapshot(bed)
    wrong = []
    try:
        for case_id, pillar, words in cases:
            # ag.validate compiles the pillar from the files: no minion refresh needed
            bed.pillar_file.write_text(yaml.safe_dump(pillar))  # YAML keeps a numeric node id
            code, steps, output = deploy(bed)
            if code == 0 or steps or "nothing was changed" not in output or \
                    not all(word in output for word in words):
                wrong.append((case_id, code, output[-600:]))
    finally:
        bed.write_pillar(bed.pillar)
    assert wrong == []
    assert snapshot(bed) == before
    bed.measured(f"{len(cases)} bad pillars refused by ag.deploy, nothing changed")


def test_bad_runner_arguments_are_refused(bed):
    res = bed.salt_raw("salt-run", "ag.validate", "minion=nosuch-minion")
    assert res.returncode != 0 and "nosuch-minion" in res.stdout + res.stderr
    # salt-run exits 0 on any runner's invalid arguments (Salt's own behaviour): the usage says it
    res = bed.salt_raw("salt-run", "ag.unanswered", "timeout=soon")
    assert "timeout must be a whole number of seconds, not 'soon'" in res.stdout + res.stderr
