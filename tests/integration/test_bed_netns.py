"""Tier 1 of the bed is real: separate daemons, separate files, one network, one master."""

import uuid

import pytest

from bed import config


def test_every_minion_answers_the_master(netns_bed):
    assert netns_bed.salt("*", "test.ping") == {n: True for n in netns_bed.nodes}


def test_each_node_runs_its_own_dockerd(netns_bed):
    ids = {n: netns_bed.exec(n, "docker", "info", "-f", "{{.ID}}").stdout.strip()
           for n in netns_bed.nodes}
    assert len(set(ids.values())) == len(netns_bed.nodes), ids
    names = {n: netns_bed.exec(n, "docker", "info", "-f", "{{.Name}}").stdout.strip()
             for n in netns_bed.nodes}
    assert names == {n: n for n in netns_bed.nodes}


def test_each_dockerd_reads_its_own_etc(netns_bed):
    for n in netns_bed.nodes:
        bridge_ip = netns_bed.exec(n, "docker", "network", "inspect", "bridge", "-f",
                                   "{{(index .IPAM.Config 0).Gateway}}").stdout.strip()
        assert bridge_ip == config.docker_bip(config.node_index(n)).split("/")[0]


def test_etc_is_private_to_each_node(netns_bed):
    first, *others = netns_bed.nodes
    marker = f"/etc/agbed-probe-{uuid.uuid4().hex}"
    netns_bed.exec(first, "sh", "-c", f"echo here > {marker}")
    try:
        assert netns_bed.exec(first, "cat", marker).stdout == "here\n"
        for n in others:
            assert netns_bed.exec(n, "test", "-e", marker, check=False).returncode == 1
    finally:
        netns_bed.exec(first, "rm", "-f", marker)


def test_nodes_reach_each_other_on_bed_addresses(netns_bed):
    for src in netns_bed.nodes:
        for dst in netns_bed.nodes:
            res = netns_bed.exec(src, "busybox", "ping", "-c", "1", "-W", "2",
                                 netns_bed.addr(dst), check=False)
            assert res.returncode == 0, f"{src} cannot reach {dst}: {res.stdout}{res.stderr}"


def test_nodes_have_no_route_out(netns_bed):
    for n in netns_bed.nodes:
        routes = netns_bed.exec(n, "ip", "route").stdout
        assert "default" not in routes
        assert routes.split()[0] == f"{config.SUBNET}.0/{config.PREFIX_LEN}"


def test_minions_see_their_own_identity(netns_bed):
    grains = netns_bed.salt("*", "grains.item", "host", "ipv4")
    for n in netns_bed.nodes:
        assert grains[n]["host"] == n
        assert netns_bed.addr(n) in grains[n]["ipv4"]


@pytest.mark.slow
def test_down_then_up_brings_the_same_nodes_back(netns_bed):
    before = {n: netns_bed.exec(n, "docker", "info", "-f", "{{.ID}}").stdout for n in netns_bed.nodes}
    netns_bed.cli("down")
    status = netns_bed.cli("status").stdout
    assert "tier: none" in status
    netns_bed.cli("up", "--nodes", str(len(netns_bed.nodes)))
    after = {n: netns_bed.exec(n, "docker", "info", "-f", "{{.ID}}").stdout for n in netns_bed.nodes}
    assert after == before  # node data survives a down without --wipe
    assert netns_bed.salt("*", "test.ping") == {n: True for n in netns_bed.nodes}


def test_mesh_stand_in_forwards_registry_ports_to_the_labelled_node(netns_bed):
    from bed import mesh

    holders = mesh.holders()
    assert set(holders) == {5000, 5001}
    for node in netns_bed.nodes:
        for port, holder in holders.items():
            pid = netns_bed.exec(node, "cat", config.mesh_pidfile(port), check=False).stdout.strip()
            if node == holder:
                assert not pid, f"{node} holds port {port} itself and needs no forwarder"
            else:
                assert mesh.target_of(int(pid)) == netns_bed.addr(holder)
