"""The deploy on tier 1 of the bed (issues 6 and 21), three ways: the guide by hand
(bench/guide_by_hand.sh), an Ansible playbook of the same steps (bench/guide_by_ansible.yml) and
the orchestration. For each, a full deploy from nodes without a swarm (stand-in checkout:
5 builds, 8 images, 19 services, migrate) and a no-op redeploy, each way on the same bed from
the same clean start; then the ratios, and `ag.plan` and a tweak (gunicorn workers) that rolls
one service.

  AG_BED_ID=K /var/tmp/agbed/venv/bin/python bench/deploy.py [--real] [--rounds N]

--rounds N (default 1): the three ways take turns N times (a slower spell of the machine then
falls on each), and the ratios are those of the medians.

--real (issue 21.4): the real release (2022.01.v1, the bed's copy) instead of the stand-in,
with the real-stack session's site pillar (no bootstrap: the other ways make no course). Each
way builds from its own checkout, made before anything is timed: ag.deploy's (cloned by
ag.checkout, then its first deploy: the secrets and the site's edits) and the guide's, which
the by-hand script and Ansible share (the same clone, upstream's files, its secrets made by
generate_secrets.py in the django image, as the guide's venv would), moved where every node
finds the checkout while they run. One untimed run of ag.deploy and one by hand first, so each
way then builds through a warm cache (the images stay; the registry starts empty). Best on the
bed whose nodes built the real images before (the real-stack session's, AG_BED_ID=4).

Ansible runs from the bench's own venv, which the script makes and fills first where needed
(bench/by_ansible.py: `python3 -m venv` and pip from bench/requirements.txt).
Before each way: the stack, the registry, the swarm, their volumes and the stack's images go,
and the checkout gets upstream's files back. The pillar is restored at the end; the
orchestration's stack is left running (--real: the stand-in's bed is back). Prints one
line per measurement.
"""

import argparse
import contextlib
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests/integration"))

from bed import config, host, images, netns, upstream  # noqa: E402
from bench import by_ansible  # noqa: E402
from tests import standin  # noqa: E402
from tests.integration import agreal  # noqa: E402

TESTBED = str(config.REPO / "testbed")
PILLAR = config.PILLAR_DIR / "bed.sls"
BY_HAND = [str(config.REPO / "bench/guide_by_hand.sh")]
ORCHESTRATE = host.salt_cmd("salt-run", "state.orchestrate", "ag.deploy")
# --real: the guide's checkout, and ag.deploy's while the guide's is in its place
GUIDE_CHECKOUT = config.BED_DIR / "shared/guide-checkout"
PRODUCT_ASIDE = config.BED_DIR / "shared/product-checkout"


def timed(what, argv):
    start = time.monotonic()
    res = subprocess.run(argv, capture_output=True, text=True)
    seconds = time.monotonic() - start
    print(f"{what}: {seconds:.1f} s" + ("" if res.returncode == 0 else
                                       f", FAILED (exit {res.returncode})"), flush=True)
    if res.returncode != 0:
        sys.exit(res.stdout[-3000:] + res.stderr[-2000:])
    return seconds


def clean(nodes, manager, real=False):
    """No stack, registry, swarm or volumes of them; the stand-in's checkout as upstream has
    it and no stack images. `real`: the images stay (a real build is minutes cold)."""
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
            """ + ("" if real else """
            docker images --format '{{.Repository}}:{{.Tag}}' | grep '^127.0.0.1:5000/' | xargs -r docker rmi
            """)], capture_output=True)
    if not real:
        standin.write(netns.SHARED_CHECKOUT)


def emptied(directory: Path):
    for child in directory.iterdir():
        shutil.rmtree(child) if child.is_dir() and not child.is_symlink() else child.unlink()


def move_children(source: Path, target: Path):
    target.mkdir(parents=True, exist_ok=True)
    for child in list(source.iterdir()):
        child.rename(target / child.name)


@contextlib.contextmanager
def guide_checkout(real):
    """`real`: the guide's checkout where every node finds the checkout (the shared
    directory each node mounts there), ag.deploy's set aside, and back after."""
    if not real:
        yield
        return
    move_children(netns.SHARED_CHECKOUT, PRODUCT_ASIDE)
    move_children(GUIDE_CHECKOUT, netns.SHARED_CHECKOUT)
    try:
        yield
    finally:
        move_children(netns.SHARED_CHECKOUT, GUIDE_CHECKOUT)
        move_children(PRODUCT_ASIDE, netns.SHARED_CHECKOUT)


def on_manager(manager, script):
    subprocess.run([TESTBED, "exec", manager, "sh", "-ec", script], check=True)


@contextlib.contextmanager
def real_release(saved, nodes, manager):
    """The bed set for the real release (its daemons, base images, the site pillar), both
    checkouts made and every way's images built once (module docstring); after, the
    stand-in's bed again (agreal.release_deployed's order)."""
    started = upstream.up()
    images.build_all("real")
    for node in nodes:
        images.load_into(netns.node_exec, node, group="real")
    try:
        clean(nodes, manager, real=True)
        emptied(netns.SHARED_CHECKOUT)
        shutil.rmtree(GUIDE_CHECKOUT, ignore_errors=True)
        on_manager(manager, f"install -m 600 {upstream.SMTP_PASSWORD_FILE} "
                            f"{agreal.EMAIL_PASSWORD_FILE}")
        site = agreal.site_pillar(saved, agreal.bed_release(agreal.RELEASE))
        del site["autograder"]["app"]["bootstrap"]
        write_pillar(site)
        subprocess.run(host.salt_cmd("salt", manager, "saltutil.sync_all"), check=True,
                       capture_output=True)
        subprocess.run(host.salt_cmd("salt", manager, "state.sls", "ag.checkout", "-t", "1800"),
                       check=True, capture_output=True)
        shutil.copy(standin.BED_OVERRIDE, netns.SHARED_CHECKOUT / standin.BED_OVERRIDE.name)
        shutil.copytree(netns.SHARED_CHECKOUT, GUIDE_CHECKOUT, symlinks=True)
        timed("ag.deploy: first run (untimed: its checkout's secrets and edits, warm builds)",
              ORCHESTRATE)
        with guide_checkout(True):
            # the guide's venv, with Django and python-gnupg: the django image just built
            on_manager(manager, f"cd {netns.CHECKOUT}/autograder-server && docker run --rm "
                                "-v $PWD:/usr/src/app -w /usr/src/app 127.0.0.1:5000/django "
                                "python3 generate_secrets.py >/dev/null")
            clean(nodes, manager, real=True)
            timed("by hand: first run (untimed: warm builds)", BY_HAND)
        yield
    finally:
        write_pillar(saved)
        clean(nodes, manager, real=True)
        on_manager(manager, f"rm -f {agreal.EMAIL_PASSWORD_FILE}")
        emptied(netns.SHARED_CHECKOUT)
        shutil.rmtree(GUIDE_CHECKOUT, ignore_errors=True)
        standin.write(netns.SHARED_CHECKOUT)
        shutil.copy(standin.BED_OVERRIDE, netns.SHARED_CHECKOUT / standin.BED_OVERRIDE.name)
        for node in nodes:
            images.load_into(netns.node_exec, node)
        for daemon in started:
            daemon.stop()


def write_pillar(data):
    PILLAR.write_text(yaml.safe_dump(data, sort_keys=False))
    subprocess.run(host.salt_cmd("salt", "*", "saltutil.refresh_pillar", "wait=True"),
                   capture_output=True)


def print_ratios(times):
    """`times`: {way: [(full, no-op) of each round]} → the medians, their ratios."""
    medians = {way: [statistics.median(run[i] for run in runs) for i in (0, 1)]
               for way, runs in times.items()}
    if len(next(iter(times.values()))) > 1:
        for way, (full, noop) in medians.items():
            print(f"{way}: median of {len(times[way])} rounds: full deploy {full:.1f} s, "
                  f"no-op redeploy {noop:.1f} s")
    for i, what in enumerate(("full deploy", "no-op redeploy")):
        for other in ("by hand", "Ansible"):
            print(f"ratio ag.deploy / {other}, {what}: {medians['ag.deploy'][i] / medians[other][i]:.2f}")
    for way, (full, noop) in medians.items():
        print(f"{way}: no-op redeploy is {100 * noop / full:.0f}% of the full deploy")


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--real", action="store_true")
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args()
    if args.rounds < 1:
        parser.error("--rounds takes 1 or more")
    by_ansible.make_venv()
    subprocess.run([TESTBED, "up", "--nodes", "3"], check=True)
    saved = yaml.safe_load(PILLAR.read_text())
    cluster = saved["autograder"]["cluster"]
    nodes, manager = sorted(cluster["nodes"]), cluster["manager"]
    with real_release(saved, nodes, manager) if args.real else contextlib.nullcontext():
        deployed = yaml.safe_load(PILLAR.read_text())
        ansible = by_ansible.playbook_cmd(by_ansible.write_inventory(nodes), PILLAR)
        times = {"by hand": [], "Ansible": [], "ag.deploy": []}
        for _ in range(args.rounds):
            # ag.deploy last: ag.plan and the tweak below work on its stack
            for way, argv in (("by hand", BY_HAND), ("Ansible", ansible), ("ag.deploy", ORCHESTRATE)):
                with guide_checkout(args.real and way != "ag.deploy"):
                    clean(nodes, manager, args.real)
                    times[way].append((timed(f"{way}: full deploy", argv),
                                       timed(f"{way}: no-op redeploy", argv)))
        print_ratios(times)
        timed("ag.plan", host.salt_cmd("salt-run", "ag.plan"))
        tweak(deployed)


def tweak(deployed):
    """A gunicorn-workers change deployed (django rolls), then the pillar `deployed` again."""
    tweaked = yaml.safe_load(yaml.safe_dump(deployed))
    tweaked["autograder"].setdefault("app", {})["gunicorn_workers"] = 3
    write_pillar(tweaked)
    try:
        timed("ag.deploy of a gunicorn workers change (django rolls)", ORCHESTRATE)
    finally:
        write_pillar(deployed)
    timed("ag.deploy back to the pillar's workers", ORCHESTRATE)


if __name__ == "__main__":
    main()
