"""The deploy on tier 1 of the bed (issues 6 and 21), three ways: the guide by hand
(bench/guide_by_hand.sh), an Ansible playbook of the same steps (bench/guide_by_ansible.yml) and
the orchestration. For each, a full deploy from nodes without a swarm (stand-in checkout:
5 builds, 8 images, 19 services, migrate) and a no-op redeploy, each way on the same bed from
the same clean start; then the ratios, and `ag.plan` and a tweak (gunicorn workers) that rolls
one service.

  AG_BED_ID=K /var/tmp/agbed/venv/bin/python bench/deploy.py

Ansible runs from the bench's own venv, which the script makes and fills first where needed
(bench/by_ansible.py: `python3 -m venv` and pip from bench/requirements.txt).
Before each way: the stack, the registry, the swarm, their volumes and the stack's images go,
and the checkout gets upstream's files back. The pillar is restored at the end; the
orchestration's stack is left running. Prints one line per measurement.
"""

import subprocess
import sys
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bed import config, host, netns  # noqa: E402
from bench import by_ansible  # noqa: E402
from tests import standin  # noqa: E402

TESTBED = str(config.REPO / "testbed")
PILLAR = config.PILLAR_DIR / "bed.sls"
BY_HAND = [str(config.REPO / "bench/guide_by_hand.sh")]
ORCHESTRATE = host.salt_cmd("salt-run", "state.orchestrate", "ag.deploy")


def timed(what, argv):
    start = time.monotonic()
    res = subprocess.run(argv, capture_output=True, text=True)
    seconds = time.monotonic() - start
    print(f"{what}: {seconds:.1f} s" + ("" if res.returncode == 0 else
                                       f", FAILED (exit {res.returncode})"), flush=True)
    if res.returncode != 0:
        sys.exit(res.stdout[-3000:] + res.stderr[-2000:])
    return seconds


def clean(nodes, manager):
    subprocess.run([TESTBED, "exec", manager, "sh", "-c",
                    "docker stack rm ag-stack; docker service rm registry; rm -rf /var/lib/ag-deploy/*"],
                   capture_output=True)
    for node in sorted(nodes, key=lambda n: n == manager):  # the manager last
        subprocess.run([TESTBED, "exec", node, "sh", "-c", """
            for i in $(seq 60); do
              [ -z "$(docker ps -aq -f label=com.docker.swarm.task)" ] && break; sleep 0.5
            done
            docker swarm leave --force
            docker volume ls -q | grep -E '^(ag-stack_|ag-registry$)' | xargs -r docker volume rm
            docker images --format '{{.Repository}}:{{.Tag}}' | grep '^127.0.0.1:5000/' | xargs -r docker rmi
            """], capture_output=True)
    standin.write(netns.SHARED_CHECKOUT)


def write_pillar(data):
    PILLAR.write_text(yaml.safe_dump(data, sort_keys=False))
    subprocess.run(host.salt_cmd("salt", "*", "saltutil.refresh_pillar", "wait=True"),
                   capture_output=True)


def print_ratios(times):
    for i, what in enumerate(("full deploy", "no-op redeploy")):
        for other in ("by hand", "Ansible"):
            print(f"ratio ag.deploy / {other}, {what}: {times['ag.deploy'][i] / times[other][i]:.2f}")
    for way, (full, noop) in times.items():
        print(f"{way}: no-op redeploy is {100 * noop / full:.0f}% of the full deploy")


def main():
    by_ansible.make_venv()
    subprocess.run([TESTBED, "up", "--nodes", "3"], check=True)
    saved = yaml.safe_load(PILLAR.read_text())
    cluster = saved["autograder"]["cluster"]
    nodes, manager = sorted(cluster["nodes"]), cluster["manager"]
    ansible = by_ansible.playbook_cmd(by_ansible.write_inventory(nodes), PILLAR)
    times = {}
    # ag.deploy last: ag.plan and the tweak below work on its stack
    for way, argv in (("by hand", BY_HAND), ("Ansible", ansible), ("ag.deploy", ORCHESTRATE)):
        clean(nodes, manager)
        times[way] = (timed(f"{way}: full deploy", argv), timed(f"{way}: no-op redeploy", argv))
    print_ratios(times)
    timed("ag.plan", host.salt_cmd("salt-run", "ag.plan"))
    tweaked = yaml.safe_load(yaml.safe_dump(saved))
    tweaked["autograder"].setdefault("app", {})["gunicorn_workers"] = 3
    write_pillar(tweaked)
    try:
        timed("ag.deploy of a gunicorn workers change (django rolls)", ORCHESTRATE)
    finally:
        write_pillar(saved)
    timed("ag.deploy back to the pillar's workers", ORCHESTRATE)


if __name__ == "__main__":
    main()
