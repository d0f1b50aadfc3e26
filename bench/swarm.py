"""Times of the swarm on tier 1 of the bed (issue 5): forming the 3-node swarm with network
and labels by one highstate, and adding a 4th node by its own highstate alone.

  AG_BED_ID=K /var/tmp/agbed/venv/bin/python bench/swarm.py

Leaves the bed's nodes out of any swarm first (and nuc4 out of the pillar); restores the
pillar at the end. Prints one line per measurement.
"""

import json
import subprocess
import sys
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bed import config, host  # noqa: E402

TESTBED = str(config.REPO / "testbed")
NODES = ["nuc1", "nuc2", "nuc3"]
NEW = "nuc4"


def run(*argv):
    return subprocess.run(argv, capture_output=True, text=True)


def node_exec(node, *argv):
    return run(TESTBED, "exec", node, *argv)


def salt(*args):
    return run(*host.salt_cmd("salt", *args))


def labelled(nodes, pillar):
    want = {n: sorted(v["labels"]) for n, v in pillar["autograder"]["cluster"]["nodes"].items()
            if n in nodes}
    ids = node_exec("nuc1", "docker", "node", "ls", "-q").stdout.split()
    if not ids:
        return False
    seen = {}
    for data in json.loads(node_exec("nuc1", "docker", "node", "inspect", *ids).stdout or "[]"):
        if data["Status"]["State"] == "ready":
            seen[data["Description"]["Hostname"]] = sorted(data["Spec"].get("Labels") or {})
    return all(seen.get(n) == labels for n, labels in want.items())


def timed(what, start, done):
    while not done():
        time.sleep(0.2)
    print(f"{what}: {time.monotonic() - start:.1f} s", flush=True)


def write_pillar(data):
    (config.PILLAR_DIR / "bed.sls").write_text(yaml.safe_dump(data, sort_keys=False))
    salt("*", "saltutil.refresh_pillar", "wait=True")


def main():
    subprocess.run([TESTBED, "up", "--nodes", "3"], check=True)
    saved = yaml.safe_load((config.PILLAR_DIR / "bed.sls").read_text())
    base = yaml.safe_load(yaml.safe_dump(saved))
    base["autograder"]["cluster"]["nodes"].pop(NEW, None)
    state = json.loads(config.STATE_FILE.read_text())
    for node in state["nodes"]:
        node_exec(node, "docker", "swarm", "leave", "--force")
    write_pillar(base)
    salt("*", "mine.flush")
    salt("-L", ",".join(NODES), "saltutil.sync_all")
    try:
        start = time.monotonic()
        salt("-L", ",".join(NODES), "state.apply", "queue=True")
        print(f"highstate of 3 nodes returned: {time.monotonic() - start:.1f} s")
        timed("swarm of 3 formed, network and all labels set", start,
              lambda: labelled(NODES, base))

        with_new = yaml.safe_load(yaml.safe_dump(base))
        with_new["autograder"]["cluster"]["nodes"][NEW] = {
            "address": config.node_addr("netns", 4), "labels": ["tiny_grader", "tiny_fast_grader"]}
        write_pillar(with_new)
        start = time.monotonic()
        subprocess.run([TESTBED, "add", NEW], check=True, capture_output=True)
        print(f"./testbed add {NEW}: {time.monotonic() - start:.1f} s")
        start = time.monotonic()
        salt(NEW, "state.apply", "queue=True")
        print(f"highstate of {NEW} returned: {time.monotonic() - start:.1f} s")
        timed(f"{NEW} Ready with its labels (own highstate + reactor)", start,
              lambda: labelled(NODES + [NEW], with_new))
    finally:
        write_pillar(saved)


if __name__ == "__main__":
    main()
