"""Times of `salt-run state.orchestrate ag.deploy` on tier 1 of the bed (issue 6): the first
deploy from nodes without a swarm (stand-in checkout: 8 image builds, 19 services), a re-run
with nothing to do, `ag.plan`, and a tweak (gunicorn workers) that rolls one service.

  AG_BED_ID=K /var/tmp/agbed/venv/bin/python bench/deploy.py

Removes the stack, the registry and the swarm first (their volumes too), restores the pillar
at the end and leaves the deployed stack running. Prints one line per measurement.
"""

import subprocess
import sys
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bed import config, host  # noqa: E402

TESTBED = str(config.REPO / "testbed")
PILLAR = config.PILLAR_DIR / "bed.sls"


def timed(what, *argv):
    start = time.monotonic()
    res = subprocess.run(argv, capture_output=True, text=True)
    status = "ok" if res.returncode == 0 else f"FAILED (exit {res.returncode})"
    print(f"{what}: {time.monotonic() - start:.1f} s, {status}", flush=True)
    if res.returncode != 0:
        sys.exit(res.stdout[-3000:] + res.stderr[-2000:])


def write_pillar(data):
    PILLAR.write_text(yaml.safe_dump(data, sort_keys=False))
    subprocess.run(host.salt_cmd("salt", "*", "saltutil.refresh_pillar", "wait=True"),
                   capture_output=True)


def main():
    subprocess.run([TESTBED, "up", "--nodes", "3"], check=True)
    saved = yaml.safe_load(PILLAR.read_text())
    nodes = sorted(saved["autograder"]["cluster"]["nodes"])
    manager = saved["autograder"]["cluster"]["manager"]
    subprocess.run([TESTBED, "exec", manager, "sh", "-c",
                    "docker stack rm ag-stack; docker service rm registry; rm -rf /var/lib/ag-deploy;"
                    " sleep 5"], capture_output=True)
    for node in sorted(nodes, key=lambda n: n == manager):
        subprocess.run([TESTBED, "exec", node, "sh", "-c",
                        "docker swarm leave --force; docker volume ls -q | grep -E "
                        "'^(ag-stack_|ag-registry$)' | xargs -r docker volume rm"],
                       capture_output=True)
    deploy = host.salt_cmd("salt-run", "state.orchestrate", "ag.deploy")
    try:
        timed("first deploy (swarm, registry, 8 builds, 19 services, migrate)", *deploy)
        timed("second deploy, nothing to do", *deploy)
        timed("ag.plan", *host.salt_cmd("salt-run", "ag.plan"))
        tweaked = yaml.safe_load(yaml.safe_dump(saved))
        tweaked["autograder"].setdefault("app", {})["gunicorn_workers"] = 3
        write_pillar(tweaked)
        timed("deploy of a gunicorn workers change (django rolls)", *deploy)
    finally:
        write_pillar(saved)
    timed("deploy back to the pillar's workers", *deploy)


if __name__ == "__main__":
    main()
