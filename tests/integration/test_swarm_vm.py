"""Tier 2, on the guests test_node_states_vm.py installed (issues 5 and 7): the highstate forms
the guests' swarm with the (encrypted) overlay network and every pillar label (the reactor
labels the joiners) and builds the firewall; a second highstate changes nothing. Then, on the
ingress routing mesh (IPVS, which tier 1 lacks), seen from this machine, which is on the bed
but not a cluster node: a published port answers on every guest, yet the registries (the
guide's registry service, created by ag.registry, on 5000; 5001), the NFS export and the
swarm's own ports (TCP and UDP, IPv4 and IPv6) refuse it while the cluster's nodes reach
them; web ports published as upstream's compose file publishes nginx's, deployed with the
deploy's override, answer on the webserver node only."""

import json
import shlex
import socket
import time

import pytest
from agdeploy import MANAGER, apply, changed, sh, swarm_labels

from bed import config
from bed.util import wait_for
from tests.extensions import load

pytestmark = pytest.mark.vm

ag_compose = load("_utils/ag_compose.py", "ag_compose")
MESH_PORT = 8080
# `sh -c HTTPD PORT PORT`: an HTTP server on each port, on the bed's busybox image (which the
# guests pull through the site's registry mirror)
HTTPD = 'httpd -f -p "$0" & httpd -f -p "$1" & wait'
UNIT = "ag-cluster-only-firewall.service"
WEB_STACK, WEB_DIR = "ag-web-probe", "/var/lib/ag-web-probe"


def highstate(bed):
    """The highstate on every guest → {node: [states that changed]}; fails on a failure."""
    return {node: sorted(changed(states))
            for node, states in apply(bed, "queue=True", timeout=1800).items()}


def reaches(bed, addr: str, port: int, via=None) -> bool:
    """Whether a TCP connection to addr:port is made from the guest `via`, or from this machine
    (on the bed, not a cluster node)."""
    if via:
        code = f"import socket; socket.create_connection(('{addr}', {port}), timeout=5).close()"
        return bed.exec(via, "python3", "-c", code, check=False).returncode == 0
    try:
        socket.create_connection((addr, port), timeout=3).close()
    except OSError:
        return False
    return True


def wait_reaches(bed, addr: str, port: int, via=None) -> None:
    """Until reaches(); a service's task may still be starting."""
    wait_for(lambda: reaches(bed, addr, port, via), 300,
             f"{via or 'this machine'} to reach {addr}:{port}", interval=3)


@pytest.fixture(scope="module")
def swarm(vm_bed, measured):
    cluster = vm_bed.read_pillar()["autograder"]["cluster"]
    # no saltutil.sync_all first: a highstate syncs the project's modules itself
    # (autoload_dynamic_modules), as a site's does; a sync before it cost 100 s on the guests
    started = time.monotonic()
    first = highstate(vm_bed)
    measured(f"highstate forming the swarm on {len(vm_bed.nodes)} installed guests: "
             f"{time.monotonic() - started:.0f} s")
    try:
        yield {"cluster": cluster, "first": first}
    finally:
        for node in sorted(vm_bed.nodes, key=lambda n: n == MANAGER):  # the manager last
            vm_bed.leave_swarm(node)


def test_highstate_forms_the_swarm_with_network_labels_and_firewall(vm_bed, swarm, measured):
    cluster = swarm["cluster"]
    assert "swarm-initialized" in swarm["first"][MANAGER]
    want = {n: ("ready", sorted(spec.get("labels") or [])) for n, spec in cluster["nodes"].items()}
    started = time.monotonic()
    wait_for(lambda: swarm_labels(vm_bed) == want, 300,  # the reactor labels the joined guests
             lambda: f"every label: {swarm_labels(vm_bed)} != {want}", interval=3)
    measured(f"swarm labels all set {time.monotonic() - started:.0f} s after the highstate")
    network = json.loads(sh(vm_bed, MANAGER, "docker network inspect ag-swarm-network"))[0]
    assert network["Driver"] == "overlay" and network["Scope"] == "swarm"
    assert "encrypted" in network["Options"]  # tier 2's pillar: autograder:swarm:network
    for node in vm_bed.nodes:
        assert "AG-CLUSTER-ONLY" in sh(vm_bed, node, "iptables -t raw -S PREROUTING"), node


def test_second_highstate_changes_nothing(vm_bed, swarm):
    assert highstate(vm_bed) == {node: [] for node in vm_bed.nodes}


def test_the_boot_unit_rebuilds_lost_firewall_rules(vm_bed, swarm):
    """What a reboot loses (iptables rules live in the kernel only), the unit enabled for boot
    builds again, before Docker starts."""
    both = "iptables -t raw -S && ip6tables -t raw -S"
    for node in vm_bed.nodes:
        rules = sh(vm_bed, node, both)
        sh(vm_bed, node, """for t in iptables ip6tables; do
            $t -t raw -S PREROUTING | grep -e '-j AG-CLUSTER-ONLY$' | cut -d' ' -f2- |
              while read -r jump; do $t -t raw -D $jump; done
            $t -t raw -F AG-CLUSTER-ONLY && $t -t raw -X AG-CLUSTER-ONLY
        done""")
        assert "AG-CLUSTER-ONLY" not in sh(vm_bed, node, both)
        assert sh(vm_bed, node, f"systemctl is-enabled {UNIT}") == "enabled"
        sh(vm_bed, node, f"systemctl restart {UNIT}")
        assert sh(vm_bed, node, both) == rules, node


@pytest.fixture(scope="module")
def mesh_services(vm_bed, swarm):
    """The guide's registry service (ag.registry) and, on a worker, an HTTP server published on
    the mesh at MESH_PORT and at 5001 (the custom image registry's port)."""
    apply(vm_bed, "ag.registry", "queue=True", nodes=[MANAGER])
    worker = sorted(set(vm_bed.nodes) - {MANAGER})[0]
    sh(vm_bed, MANAGER, f"docker service create -d --no-resolve-image --name ag-mesh-probe "
                        f"--publish {MESH_PORT}:{MESH_PORT} --publish 5001:5001 "
                        f"--constraint node.hostname=={worker} agbed/busybox:latest "
                        f"sh -c {shlex.quote(HTTPD)} {MESH_PORT} 5001")
    yield worker
    sh(vm_bed, MANAGER, "docker service rm ag-mesh-probe registry", check=False)


def test_mesh_answers_everyone_but_the_cluster_only_ports_answer_cluster_nodes_only(
        vm_bed, mesh_services):
    worker = mesh_services
    for node in vm_bed.nodes:  # the mesh is open: this machine reaches the probe on every guest
        wait_reaches(vm_bed, vm_bed.addr(node), MESH_PORT)
    # the cluster's nodes reach the registries through the mesh, each on the other's address
    # (5000's task runs on the manager, 5001's on the worker)
    for port in (5000, 5001):
        wait_reaches(vm_bed, vm_bed.addr(worker), port, via=MANAGER)
        assert reaches(vm_bed, vm_bed.addr(MANAGER), port, via=worker)
    assert reaches(vm_bed, vm_bed.addr(MANAGER), 2049, via=worker)
    for node in vm_bed.nodes:  # ...and this machine does not, nor the swarm's ports
        for port in (5000, 5001, 2377, 7946):
            assert not reaches(vm_bed, vm_bed.addr(node), port), (node, port)
    assert not reaches(vm_bed, vm_bed.addr(MANAGER), 2049)
    assert reaches(vm_bed, vm_bed.addr(MANAGER), 2377, via=worker)


def dropped(bed, node, family="iptables"):
    """Packets the chain's DROP rule on `node` has dropped so far."""
    rules = sh(bed, node, f"{family} -t raw -L AG-CLUSTER-ONLY -v -x -n").splitlines()
    return int(next(line.split()[0] for line in rules if " DROP " in f" {line} "))


def test_udp_to_the_overlay_and_gossip_ports_from_outside_is_dropped(vm_bed, swarm):
    """VXLAN (4789) would put this machine's packets into the overlay network unauthenticated;
    UDP has no connection to refuse, so the DROP rule's counter shows them go."""
    before = dropped(vm_bed, MANAGER)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for port in (4789, 7946):
            for _ in range(5):
                sock.sendto(b"not from the cluster", (vm_bed.addr(MANAGER), port))
    wait_for(lambda: dropped(vm_bed, MANAGER) >= before + 10, 10, "10 more packets dropped")


def test_ipv6_is_closed_to_outsiders_too(vm_bed, swarm):
    """The NFS server listens on IPv6 as well (so does sshd): a site's NUC has at least a
    link-local address on its LAN, no way around the filter. The bed's guests have link-local
    addressing off (bed/vm-image), so the manager gets one for the test, on the bed's bridge."""
    link_local = "fe80::198:18:1:101"
    sh(vm_bed, MANAGER, f"ip -6 addr add {link_local}/64 dev eth0")
    try:
        before = dropped(vm_bed, MANAGER, "ip6tables")
        with pytest.raises(OSError):  # without the rules: connected (tried by hand)
            socket.create_connection((f"{link_local}%{config.BRIDGE}", 2049), timeout=3).close()
        assert dropped(vm_bed, MANAGER, "ip6tables") > before
    finally:
        sh(vm_bed, MANAGER, f"ip -6 addr del {link_local}/64 dev eth0")


def test_web_ports_answer_on_the_webserver_node_only(vm_bed, swarm):
    """nginx's ports as upstream's compose file publishes them (on the whole mesh), with the
    override the deploy computes (web_on_webserver_only, the default)."""
    compose = {"version": "3.7", "services": {"nginx": {
        # a compose file interpolates $VAR: $$ is a dollar sign
        "image": "agbed/busybox:latest",
        "command": ["sh", "-c", HTTPD.replace("$", "$$"), "80", "443"],
        "ports": ["80:80", "443:443"],
        "deploy": {"placement": {"constraints": ["node.labels.webserver == true"]}}}}}
    override = ag_compose.override(compose, workers=1, concurrency={})
    assert override["services"]["nginx"]["ports"][0]["mode"] == "host"
    sh(vm_bed, MANAGER, f"mkdir -p {WEB_DIR} && cd {WEB_DIR} && "
                        f"echo {shlex.quote(json.dumps(compose))} > compose.yml && "
                        f"echo {shlex.quote(json.dumps(override))} > override.yml")
    out = vm_bed.salt(MANAGER, "ag_app.stack_deploy", WEB_STACK,
                      json.dumps(["compose.yml", "override.yml"]), WEB_DIR, timeout=300)
    assert f"Creating service {WEB_STACK}_nginx" in out[MANAGER], out
    web = {n for n, spec in swarm["cluster"]["nodes"].items() if "webserver" in spec["labels"]}
    try:
        for node in web:
            for port in (80, 443):
                wait_reaches(vm_bed, vm_bed.addr(node), port)
        for node in set(vm_bed.nodes) - web:
            for port in (80, 443):
                assert not reaches(vm_bed, vm_bed.addr(node), port), (node, port)
    finally:
        sh(vm_bed, MANAGER, f"docker stack rm {WEB_STACK}", check=False)
