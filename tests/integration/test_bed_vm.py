"""Tier 2 of the bed is real: qemu guests with their own kernel and systemd, minions that
answer the bed's master, a network between them. Kernel NFS between guests is proven by the
product's own NFS states on this tier (test_node_states_vm.py: an nfs4 mount of one guest's
export on the others), not installed twice."""

import json
import subprocess

import pytest
from agdeploy import sh

from bed import config, vm

pytestmark = pytest.mark.vm


def test_every_minion_answers_the_master(vm_bed):
    assert vm_bed.salt("*", "test.ping") == {n: True for n in vm_bed.nodes}
    assert len(vm_bed.nodes) == vm_bed.count
    grains = vm_bed.salt("*", "grains.item", "agbed_tier", "id", "init")
    for node in vm_bed.nodes:
        assert grains[node] == {"agbed_tier": "vm", "id": node, "init": "systemd"}


def test_systemd_runs_every_guest(vm_bed):
    for node in vm_bed.nodes:
        # "running": every unit started, none failed (degraded would name a broken unit); the
        # minion answers before a guest with Docker has finished booting, so wait for that
        state = sh(vm_bed, node, "timeout 600 systemctl is-system-running --wait",
                   check=False)
        assert state == "running", sh(vm_bed, node, "systemctl --failed --no-legend")
        assert vm_bed.exec(node, "cat", "/proc/1/comm").stdout.strip() == "systemd"
        assert vm_bed.exec(node, "hostname").stdout.strip() == node
        assert "ip_vs " in vm_bed.exec(node, "cat", "/proc/modules").stdout


def test_each_guest_has_its_own_kernel_and_machine_id(vm_bed):
    kernel = (config.CACHE_DIR / f"vm-{vm.image_key()}/kernel-version").read_text().strip()
    assert kernel != subprocess.run(["uname", "-r"], capture_output=True, text=True).stdout.strip()
    machine_ids, boot_ids = set(), set()
    for node in vm_bed.nodes:
        assert vm_bed.exec(node, "uname", "-r").stdout.strip() == kernel
        machine_ids.add(vm_bed.exec(node, "cat", "/etc/machine-id").stdout.strip())
        boot_ids.add(vm_bed.exec(node, "cat", "/proc/sys/kernel/random/boot_id").stdout.strip())
    assert len(machine_ids) == len(boot_ids) == len(vm_bed.nodes)
    assert "" not in machine_ids


def test_guests_reach_each_other_and_nothing_else(vm_bed):
    for node in vm_bed.nodes:
        assert vm_bed.exec(node, "ip", "route", "show", "default").stdout.strip() == ""
        addrs = vm_bed.exec(node, "ip", "-j", "-4", "addr", "show", "dev", "eth0").stdout
        assert [a["local"] for a in json.loads(addrs)[0]["addr_info"]] == [vm_bed.addr(node)]
        for other in vm_bed.nodes:
            if other != node:
                probe = (f"import socket; socket.create_connection(('{vm_bed.addr(other)}', 22),"
                         " 5).close()")
                assert vm_bed.exec(node, "python3", "-c", probe, check=False).returncode == 0, (
                    f"{node} cannot reach {other} at {vm_bed.addr(other)}:22")


def test_reused_guests_are_the_ones_that_passed(vm_bed):
    """A session starts from the kept disks of the last one that passed (tests/conftest.py)."""
    if vm_bed.passed_machine_ids is None:
        pytest.skip("not the guests of an earlier passing session: nothing to compare with")
    assert {node: vm_bed.exec(node, "cat", "/etc/machine-id").stdout.strip()
            for node in vm_bed.nodes} == vm_bed.passed_machine_ids
