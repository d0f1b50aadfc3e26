"""The swarm states on tier 2, end to end (issue 5): on Debian 12 guests with their own kernel,
one state run of `swarm` (which brings the node states with it) forms the 3-guest swarm with the
overlay network and every pillar label (the reactor labels the joiners), a second run changes
nothing, and the ingress routing mesh (IPVS, which tier 1 lacks) serves a published port on
every guest."""

import json
import time

import pytest

from bed import images, vm

pytestmark = pytest.mark.vm

PROBE = "agbed-mesh-probe"
PORT = 8080


def sh(bed, node, script):
    return bed.exec(node, "sh", "-c", script).stdout.strip()


def apply_swarm(bed):
    """state.apply swarm on every guest → {node: [states that changed]}; fails on a failure."""
    out = bed.salt("-t", "1200", "*", "state.apply", "swarm", "queue=True", timeout=1300)
    assert set(out) == set(bed.nodes), out
    changed = {}
    for node, ret in out.items():
        assert isinstance(ret, dict), f"{node}: {ret}"
        failed = {k: v["comment"] for k, v in ret.items() if v["result"] is False}
        assert not failed, f"{node}: {failed}"
        changed[node] = sorted(v["__id__"] for v in ret.values() if v["changes"])
    return changed


def swarm_labels(bed, manager):
    """{hostname: (state, managed labels)} as the manager sees the swarm."""
    ids = sh(bed, manager, "docker node ls -q").split()
    found = {}
    for node in json.loads(sh(bed, manager, "docker node inspect " + " ".join(ids))):
        labels = sorted(k for k, v in (node["Spec"].get("Labels") or {}).items() if v == "true")
        found[node["Description"]["Hostname"]] = (node["Status"]["State"], labels)
    return found


@pytest.fixture(scope="module")
def swarm(vm_bed):
    cluster = vm_bed.read_pillar()["autograder"]["cluster"]
    vm_bed.salt("-t", "300", "*", "saltutil.sync_all", timeout=400)
    try:
        yield {"cluster": cluster, "first": apply_swarm(vm_bed)}
    finally:
        for node in sorted(vm_bed.nodes, key=lambda n: n == cluster["manager"]):  # manager last
            vm_bed.exec(node, "docker", "swarm", "leave", "--force", check=False)


def test_one_run_forms_the_swarm_with_network_and_labels(vm_bed, swarm):
    cluster, manager = swarm["cluster"], swarm["cluster"]["manager"]
    assert "swarm-initialized" in swarm["first"][manager]
    want = {n: ("ready", sorted(spec.get("labels") or [])) for n, spec in cluster["nodes"].items()}
    deadline = time.monotonic() + 300
    while swarm_labels(vm_bed, manager) != want:  # the reactor labels the joined guests
        assert time.monotonic() < deadline, f"{swarm_labels(vm_bed, manager)} != {want}"
        time.sleep(3)
    network = json.loads(sh(vm_bed, manager, "docker network inspect ag-swarm-network"))[0]
    assert network["Driver"] == "overlay" and network["Scope"] == "swarm"


def test_second_run_changes_nothing(vm_bed, swarm):
    assert apply_swarm(vm_bed) == {node: [] for node in vm_bed.nodes}


def test_routing_mesh_publishes_on_every_guest(vm_bed, swarm):
    """A service on one worker answers on the published port of every guest (IPVS)."""
    manager = swarm["cluster"]["manager"]
    worker = sorted(set(vm_bed.nodes) - {manager})[0]
    images.build_all()
    images.load_into(vm.node_exec, worker, ["busybox"])
    sh(vm_bed, manager, f"docker service create -d --name {PROBE} --publish {PORT}:80 "
                        f"--constraint node.hostname=={worker} agbed/busybox:latest "
                        "sh -c 'mkdir -p /www && echo mesh-ok > /www/index.html && "
                        "exec httpd -f -p 80 -h /www'")
    try:
        fetch = ("python3 -c \"import urllib.request as u; "
                 f"print(u.urlopen('http://127.0.0.1:{PORT}/', timeout=5).read().decode())\"")
        for node in vm_bed.nodes:
            deadline = time.monotonic() + 180
            while (res := vm_bed.exec(node, "sh", "-c", fetch, check=False)).stdout.strip() != "mesh-ok":
                assert time.monotonic() < deadline, f"{node}: {res.stdout} {res.stderr}"
                time.sleep(3)
    finally:
        vm_bed.exec(manager, "docker", "service", "rm", PROBE, check=False)
