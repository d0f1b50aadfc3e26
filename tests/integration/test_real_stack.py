"""Issue 17.4 and 17.7: `salt-run state.orchestrate ag.deploy`, unchanged, takes the tier 1 bed
from nodes without a swarm to the REAL autograder-full-stack 2022.01.v1 (the bed's copy,
served by its git daemon, built from its own Dockerfiles on the look-alike bases of
bed/real_bases.py):
every service of its compose file where the labels say, the real `manage.py migrate` on the
real postgres, the bootstrap through the real models; a second deploy changes nothing.
Marked real_stack (the first build of the real images takes long; cached after): run with
`AG_BED_ID=4 ./testbed test -m real_stack`."""

import json
import re
import time

import pytest
from agdeploy import (
    ADMIN,
    CHECKOUT,
    COURSE,
    MANAGER,
    STACK,
    assert_migrated_and_bootstrapped_once,
    changed_steps,
    deploy,
    placement_errors,
    services,
    sh,
    task_ids,
    teardown,
    with_bootstrap,
)

from bed import config, images, netns, npm_rebuilt, upstream
from tests import standin

pytestmark = pytest.mark.real_stack

RELEASE = "2022.01.v1"
# the bed's copy of RELEASE: the website's lock takes the bed's rebuild of a package the npm
# registry lost (bed/README.md)
BED_RELEASE = RELEASE + npm_rebuilt.BED_SUFFIX
DEPLOY_TIMEOUT = 7200  # the first build of the real images, with cold caches


def wipe_checkout(bed):
    """The shared checkout emptied (the stand-in's or the release's: one path for both)."""
    sh(bed, MANAGER, f"find {CHECKOUT} -mindepth 1 -maxdepth 1 -exec rm -rf {{}} +")


@pytest.fixture(scope="module")
def bed(netns_bed):
    """The release deployed by ag.deploy from nodes without a swarm (its first run in .first,
    its time in .seconds); afterwards the stand-in's images, checkout and pillar are back."""
    if not any(config.UPSTREAM_BUNDLES.glob("*.bundle")):
        pytest.skip(f"no release bundles in {config.UPSTREAM_BUNDLES}")
    started = upstream.up()
    images.build_all("real")
    for node in netns_bed.nodes:
        images.load_into(netns.node_exec, node, group="real")
    teardown(netns_bed)
    wipe_checkout(netns_bed)
    original = netns_bed.read_pillar()
    pillar = with_bootstrap(original)
    pillar["autograder"]["app"].update(git_url=upstream.UPSTREAM_GIT_URL, revision=BED_RELEASE)
    netns_bed.pillar = pillar
    netns_bed.write_pillar(pillar)
    began = time.monotonic()
    # cloned first, as a site does before it adds its own compose file: the bed's (no IPVS)
    netns_bed.salt(MANAGER, "saltutil.sync_all")  # ag.checkout's ag_app state
    checkout = netns_bed.salt(MANAGER, "state.sls", "ag.checkout", timeout=1800)[MANAGER]
    assert all(state["result"] for state in checkout.values()), checkout
    netns_bed.exec(MANAGER, "cp", str(standin.BED_OVERRIDE), CHECKOUT)
    netns_bed.first = deploy(netns_bed, timeout=DEPLOY_TIMEOUT)
    netns_bed.seconds = time.monotonic() - began
    try:
        yield netns_bed
    finally:
        netns_bed.write_pillar(original)
        netns_bed.pillar = original
        teardown(netns_bed)
        wipe_checkout(netns_bed)
        for node in netns_bed.nodes:
            images.load_into(netns.node_exec, node)
        for daemon in started:
            daemon.stop()


def test_the_release_deploys_every_service_where_its_label_is(bed, measured):
    code, steps, output = bed.first
    assert code == 0, output[-6000:]
    measured(f"ag.deploy of the real {RELEASE} from no swarm: {bed.seconds:.0f} s")
    compose = sh(bed, MANAGER, f"docker stack config -c {CHECKOUT}/docker-compose.yml")
    assert compose  # the CLI reads the release's compose file as the deploy did
    deployed = services(bed)
    assert len(deployed) == 19, sorted(deployed)
    assert placement_errors(bed, bed.pillar) == []
    assert_migrated_and_bootstrapped_once(bed, steps, output)


def test_the_real_models_hold_the_bootstrap(bed):
    (node,) = services(bed)[f"{STACK}_django"][1]
    container = sh(bed, node, f"docker ps -q -f label=com.docker.swarm.service.name={STACK}_django")
    query = ("import json; from autograder.core.models import Course; "
             f"c = Course.objects.get(name={COURSE!r}); "
             "print('AG', json.dumps(sorted(u.username for u in c.admins.all())))")
    out = sh(bed, node, f'docker exec {container} python3 manage.py shell -c "{query}"')
    admins = json.loads([line for line in out.splitlines() if line.startswith("AG ")][-1][3:])
    assert admins == [ADMIN]


def test_a_second_deploy_changes_nothing_and_restarts_no_task(bed):
    before = task_ids(bed)
    code, steps, output = deploy(bed)
    assert code == 0, output[-4000:]
    assert changed_steps(steps) == set(), output[-4000:]
    assert task_ids(bed) == before
    code, steps, output = deploy(bed, "test=True")
    assert code == 0 and changed_steps(steps) == set(), output[-4000:]


UNITS = {"B": 1, "KiB": 2**10, "MiB": 2**20, "GiB": 2**30}


def test_the_memory_the_running_stack_takes(bed, measured):
    """What the release's containers use on each node (docker stats), for the site's sizing."""
    used = {}
    for node in bed.nodes:
        lines = sh(bed, node, "docker stats --no-stream --format '{{.Name}} {{.MemUsage}}'")
        for line in lines.splitlines():
            name, usage = line.split(" ", 1)
            if name.startswith(f"{STACK}_"):
                amount, unit = re.fullmatch(r"([\d.]+)(\w+)", usage.split(" / ")[0]).groups()
                used.setdefault(node, {})[name.split(".")[0]] = float(amount) * UNITS[unit]
    running = {service for per_node in used.values() for service in per_node}
    assert running == {name for name, (_, nodes) in services(bed).items() if nodes}
    for node, per_service in sorted(used.items()):
        measured(f"{node}: {sum(per_service.values()) / 2**20:.0f} MiB in "
                 f"{len(per_service)} containers of the real stack")
    measured(f"the real stack: {sum(sum(v.values()) for v in used.values()) / 2**20:.0f} MiB")
