"""ag_swarm.network_create on a manager whose allocator is slow: a new overlay network reads
back without driver and subnets until the swarm has allocated it (seen in CI on a loaded bed,
where the state then failed a correct create), so the create returns it once allocated."""

from unittest import mock

import docker

from tests.extensions import FakeClock, load, on_engine

ag_swarm = load("_modules/ag_swarm.py", "ag_swarm")

ALLOCATED = {"Id": "net1", "Name": "ag-net", "Driver": "overlay", "Scope": "swarm",
             "Attachable": False, "IPAM": {"Config": [{"Subnet": "198.19.0.0/24"}]}}
# as the engine shows a swarm network without DriverState and IPAM yet
UNALLOCATED = {"Id": "net1", "Name": "ag-net", "Driver": "", "Scope": "swarm",
               "Attachable": False, "IPAM": {"Config": []}}


def manager(monkeypatch, reads):
    client = mock.create_autospec(docker.DockerClient, instance=True)
    client.api = mock.create_autospec(docker.APIClient, instance=True)
    client.api.create_network.return_value = {"Id": "net1"}
    client.api.inspect_network.side_effect = reads
    on_engine(ag_swarm, client)
    monkeypatch.setattr(ag_swarm, "time", FakeClock())
    return client.api


def test_a_network_is_returned_once_the_swarm_allocated_it(monkeypatch):
    api = manager(monkeypatch, [UNALLOCATED, UNALLOCATED, ALLOCATED])
    created = ag_swarm.network_create("ag-net", subnet="198.19.0.0/24")
    assert created["driver"] == "overlay" and created["subnets"] == ["198.19.0.0/24"]
    assert api.inspect_network.call_count == 3


def test_an_encrypted_network_is_asked_for_with_docker_s_option_and_read_back_so(monkeypatch):
    api = manager(monkeypatch, [dict(ALLOCATED, Options={"encrypted": ""})])
    created = ag_swarm.network_create("ag-net", encrypted=True)
    assert api.create_network.call_args.kwargs["options"] == {"encrypted": ""}
    assert created["encrypted"] is True


def test_a_network_never_allocated_is_returned_as_read_after_the_wait(monkeypatch):
    api = manager(monkeypatch, lambda net_id: dict(UNALLOCATED))
    created = ag_swarm.network_create("ag-net", subnet="198.19.0.0/24")
    assert created["driver"] == "" and created["subnets"] == []
    assert api.inspect_network.call_count == ag_swarm.NETWORK_ALLOCATION_WAIT / 0.5 + 1
    assert ag_swarm.time.monotonic() == ag_swarm.NETWORK_ALLOCATION_WAIT
