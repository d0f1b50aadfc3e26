"""Label moves at scale (issue 21.2): on tier 1 of the bed with N nodes (3, 6 and 12 by
default), every worker's labels moved at once, reconciled three ways, each timed, with the
Docker API calls it made (the manager's dockerd logs each call it serves while its `debug`
is on: it is set for the bench and reloaded by SIGHUP, no restart):

  - ag.deploy's swarm step: `salt -L NODES state.apply swarm queue=True`, the job that step
    runs on every node (init/join checks, the labels, the network);
  - `salt MANAGER state.apply swarm.labels`, what the README says to run after a label edit;
  - the Ansible play's swarm part (bench/guide_by_ansible.yml, tag `swarm`: init/join
    checks and community.docker.docker_node on each node).

  AG_BED_ID=K /var/tmp/agbed/venv/bin/python bench/labels.py [N ...]

Each way starts from the same labels (layout A, set by swarm.labels, untimed) and moves to
layout B: on every worker three labels go and three come (nuc1, the manager, keeps the
labels whose data lives on it). The bed is brought up with N nodes first (`./testbed up
--nodes N`), which rewrites the pillar; the last N's pillar is left. The ways take turns,
three moves each; prints one line per way (median, min, max) and Ansible's median over
swarm.labels'.
"""

import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bed import config, host  # noqa: E402
from bench import by_ansible  # noqa: E402

TESTBED = str(config.REPO / "testbed")
PILLAR = config.PILLAR_DIR / "bed.sls"
MANAGER_LABELS = ["registry", "database", "cache", "rabbitmq_broker", "custom_image_registry",
                  "webserver", "django_app", "small_tasks"]
# a worker's labels in each layout, by the parity of its index: every label differs
LAYOUT = {"A": (["grader", "fast_grader", "image_builder"],
                ["deferred_grader", "tiny_fast_grader", "rerun_grader"]),
          "B": (["tiny_grader", "tiny_rerun_grader", "tiny_fast_grader"],
                ["tiny_deferred_grader", "fast_grader", "image_builder"])}
DOCKER_LOG = "/var/log/docker.log"
ROUNDS = 3  # moves per way: one move's time varies by a few tenths of a second
LABELS_WAY, ANSIBLE_WAY = "swarm.labels on the manager", "Ansible play (swarm part)"


def run(argv, check=True):
    res = subprocess.run(argv, capture_output=True, text=True)
    if check and res.returncode != 0:
        sys.exit(f"{' '.join(argv)} failed (exit {res.returncode}):\n"
                 f"{res.stdout[-3000:]}{res.stderr[-2000:]}")
    return res


def on(node, script):
    return run([TESTBED, "exec", node, "sh", "-c", script]).stdout.strip()


def salt(*args):
    return run(host.salt_cmd("salt", "--out=json", "--static", *args))


def laid_out(pillar, name):
    """`pillar` with the labels of layout `name` (LAYOUT); → {node: sorted labels}."""
    nodes = pillar["autograder"]["cluster"]["nodes"]
    manager = pillar["autograder"]["cluster"]["manager"]
    workers = sorted((n for n in nodes if n != manager), key=config.node_index)
    nodes[manager]["labels"] = MANAGER_LABELS
    for k, node in enumerate(workers):
        nodes[node]["labels"] = LAYOUT[name][k % 2]
    return {n: sorted(spec["labels"]) for n, spec in nodes.items()}


def layout(pillar, name):
    """The bed's pillar written with layout `name`, and read by every minion."""
    wanted = laid_out(pillar, name)
    PILLAR.write_text(yaml.safe_dump(pillar, sort_keys=False))
    salt("*", "saltutil.refresh_pillar", "wait=True")
    return wanted


def settled(nodes, timeout=600):
    """Wait until no node runs a job: the reactor labels each node that joins, on the manager."""
    deadline = time.monotonic() + timeout
    while '"jid"' in salt("-L", ",".join(nodes), "saltutil.running").stdout:
        if time.monotonic() > deadline:
            sys.exit(f"a job still runs on one of {', '.join(nodes)} after {timeout} s")
        time.sleep(1)


def formed(manager, nodes):
    """The swarm of `nodes` formed by the firewall (which lets the cluster's nodes reach the
    swarm's ports) and swarm states, untimed, as ag.deploy's node states and swarm step do;
    a node new to it may take another run (it asks for its join token; the reactor answers)."""
    for _ in range(10):
        run(host.salt_cmd("salt", "-L", ",".join(nodes), "state.apply", "firewall,swarm",
                          "queue=True"), check=False)
        settled(nodes)
        if sorted(labels_now(manager)) == sorted(nodes):
            return
    sys.exit(f"the swarm of {len(nodes)} nodes did not form")


def labels_now(manager):
    found = json.loads(on(manager, "docker node inspect $(docker node ls -q)"))
    return {n["Description"]["Hostname"]: sorted(n["Spec"].get("Labels") or {}) for n in found}


def debug_logging(manager, enabled):
    """The manager's dockerd logging each API call it serves (debug) or not, reloaded by
    SIGHUP: `debug` is one of the settings dockerd reloads live."""
    on(manager, f"""python3 - <<'EOF'
import json
path = "/etc/docker/daemon.json"
conf = json.load(open(path))
{'conf["debug"] = True' if enabled else 'conf.pop("debug", None)'}
json.dump(conf, open(path, "w"), indent=2)
EOF
[ $? = 0 ] && kill -HUP $(cat /run/docker-ssd.pid)""")
    time.sleep(1)


def api_calls(manager, since):
    """The API calls the manager's dockerd logged after byte `since` of its log, as
    'METHOD /path' without the API version (the swarm's own traffic is no API call)."""
    lines = on(manager, f"tail -c +{since + 1} {DOCKER_LOG} | grep -o 'Calling [A-Z]* [^\"]*' "
                        "|| true").splitlines()
    return [line.split(" ", 1)[1] for line in lines]


def log_size(manager):
    return int(on(manager, f"stat -c %s {DOCKER_LOG}"))


def measure(n):
    run([TESTBED, "up", "--nodes", str(n)])
    pillar = yaml.safe_load(PILLAR.read_text())
    manager = pillar["autograder"]["cluster"]["manager"]
    nodes = sorted(pillar["autograder"]["cluster"]["nodes"], key=config.node_index)
    everyone = ",".join(nodes)
    salt("-L", everyone, "saltutil.sync_all")
    layout(pillar, "A")
    formed(manager, nodes)
    inventory = by_ansible.write_inventory(nodes)
    ways = {
        "ag.deploy's swarm step": host.salt_cmd("salt", "-L", everyone, "state.apply", "swarm",
                                                "queue=True"),
        LABELS_WAY: host.salt_cmd("salt", manager, "state.apply",
                                                     "swarm.labels", "queue=True"),
        ANSIBLE_WAY: by_ansible.playbook_cmd(inventory, PILLAR) + [
            "--tags", "swarm"],
    }
    seconds, calls, failures = {way: [] for way in ways}, {}, []
    debug_logging(manager, True)
    try:
        # the ways take turns, so a slower spell of the machine falls on all of them
        for _ in range(ROUNDS):
            for way, argv in ways.items():
                took, calls[way], failure = move(pillar, manager, nodes, argv)
                seconds[way].append(took)
                if failure:
                    failures.append(f"{way}: {failure}")
    finally:
        debug_logging(manager, False)
    for way, took in seconds.items():
        took.sort()
        print(f"{n} nodes, {way}: {statistics.median(took):.1f} s (min {took[0]:.1f}, max "
              f"{took[-1]:.1f}, {ROUNDS} moves), {len(calls[way])} Docker API calls on the "
              f"manager ({len([c for c in calls[way] if not c.startswith('GET')])} writes)",
              flush=True)
    ours, theirs = (statistics.median(seconds[way]) for way in (LABELS_WAY, ANSIBLE_WAY))
    print(f"{n} nodes, Ansible / swarm.labels (medians): {theirs / ours:.1f}", flush=True)
    if failures:
        sys.exit("\n".join(failures))


def move(pillar, manager, nodes, argv):
    """One label move by `argv`, from layout A to B (both set by swarm.labels, untimed):
    → its seconds, the manager's Docker API calls during it, what failed (or None)."""
    layout(pillar, "A")
    run(host.salt_cmd("salt", manager, "state.apply", "swarm.labels", "queue=True"))
    want = layout(pillar, "B")
    settled(nodes)
    since = log_size(manager)
    start = time.monotonic()
    res = run(argv, check=False)
    seconds = time.monotonic() - start
    calls = api_calls(manager, since)
    got = labels_now(manager)
    moved = all(got.get(node) == labels for node, labels in want.items())
    failure = None if moved and res.returncode == 0 else \
        f"exit {res.returncode}, labels moved: {moved}"
    return seconds, calls, failure


def main():
    by_ansible.make_venv()
    for n in [int(a) for a in sys.argv[1:]] or [3, 6, 12]:
        measure(n)


if __name__ == "__main__":
    main()
