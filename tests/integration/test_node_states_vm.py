"""salt/docker, salt/limits and salt/nfs for real on tier 2 (fresh Debian 12 guests with
systemd and kernel NFS): docker.io installed through the bed's apt proxy (source distro),
nofile 1000000 for dockerd, containerd and containers, the checkout shared over NFS to the
cluster nodes only; a second run and test=True change nothing."""

import json
import time

import pytest

from bed import images, vm

pytestmark = pytest.mark.vm

SLS = "docker,limits,nfs"
CHECKOUT = "/srv/autograder-full-stack"
NOFILE = 1000000
PROBE_IMAGE_NAME, PROBE_IMAGE = "busybox", "agbed/busybox:latest"


def apply(bed, *args, target="*"):
    """state.apply SLS → ({node: [state results]}, seconds); fails on a failed state."""
    start = time.monotonic()
    # -t: wait for the returns themselves; busy emulated guests miss find_job's short timeout
    out = bed.salt("-t", "1800", target, "state.apply", SLS, *args, timeout=1900)
    seconds = time.monotonic() - start
    assert set(out) == ({target} if target != "*" else set(bed.nodes)), out
    for node, ret in out.items():
        assert isinstance(ret, dict), f"{node}: {ret}"
        failed = {k: v["comment"] for k, v in ret.items() if v["result"] is False}
        assert not failed, f"{node}: {failed}"
    return {node: list(ret.values()) for node, ret in out.items()}, seconds


def changed(states):
    return [s["__id__"] for s in states if s["changes"]]


def sh(bed, node, script, check=True):
    return bed.exec(node, "sh", "-c", script, check=check).stdout.strip()


@pytest.fixture(scope="module")
def converged(vm_bed):
    """The node states applied twice to the guests; the two runs' results and times."""
    pillar = vm_bed.read_pillar()["autograder"]
    assert pillar["docker"]["source"] == "distro" and pillar["nfs"]["managed"] is True
    assert "limits" not in pillar, "tier 2 must run with the default nofile"
    vm_bed.salt("-t", "300", "*", "saltutil.sync_all", timeout=400)
    fresh = all(vm_bed.exec(node, "test", "-e", "/usr/sbin/dockerd", check=False).returncode
                for node in vm_bed.nodes)
    first, first_s = apply(vm_bed)
    second, second_s = apply(vm_bed)
    print(f"\nnode states on 3 {'fresh' if fresh else 'reused'} guests: first run "
          f"{first_s:.0f} s, second {second_s:.0f} s")
    return {"first": first, "second": second, "fresh": fresh}


def test_first_run_installs_and_configures(vm_bed, converged):
    if not converged["fresh"]:
        pytest.skip("the guests had docker before this run (bed reused): `./testbed down --wipe`")
    assert set(converged["first"]) == set(vm_bed.nodes)
    for node, states in converged["first"].items():
        ids = changed(states)
        assert "docker-package-pkg-installed" in ids
        assert "docker-config-daemon-json-merged" in ids
        assert "limits-logins-nofile-file-managed" in ids
        assert ("nfs-server-exports-file-managed" if node == "nuc1"
                else "nfs-client-checkout-mounted") in ids


def test_second_run_and_test_mode_change_nothing(vm_bed, converged):
    for node, states in converged["second"].items():
        assert changed(states) == [], f"{node}: second run changed {changed(states)}"
    pids = {node: sh(vm_bed, node, "pidof dockerd") for node in vm_bed.nodes}
    dry, _ = apply(vm_bed, "test=True")
    for node, states in dry.items():
        assert [s["__id__"] for s in states if s["result"] is None or s["changes"]] == []
        assert sh(vm_bed, node, "pidof dockerd") == pids[node]


def test_dockerd_runs_with_the_merged_config_and_nofile(vm_bed, converged):
    for node in vm_bed.nodes:
        assert sh(vm_bed, node, "systemctl is-active docker containerd") == "active\nactive"
        assert sh(vm_bed, node, "systemctl is-enabled docker") == "enabled"
        config = json.loads(sh(vm_bed, node, "cat /etc/docker/daemon.json"))
        assert config["log-driver"] == "json-file" and "live-restore" not in config
        for unit in ("docker", "containerd"):
            assert sh(vm_bed, node, f"systemctl show -p LimitNOFILE --value {unit}") == str(NOFILE)
        assert f"{NOFILE}" in sh(vm_bed, node, "grep 'Max open files' /proc/$(pidof dockerd)/limits")
        # a new ssh login goes through pam_limits, which reads limits.d
        assert sh(vm_bed, node, "ulimit -Sn; ulimit -Hn").split() == [str(NOFILE)] * 2


def test_containers_see_nofile_one_million(vm_bed, converged):
    images.build_all()  # cached; the guests had no docker before the states: load the probe now
    for node in vm_bed.nodes:
        images.load_into(vm.node_exec, node, [PROBE_IMAGE_NAME])
        out = sh(vm_bed, node, f"docker run --rm {PROBE_IMAGE} sh -c 'ulimit -Sn; ulimit -Hn'")
        assert out.split() == [str(NOFILE), str(NOFILE)], node


def test_exports_go_to_the_other_nodes_only(vm_bed, converged):
    exports = sh(vm_bed, "nuc1", "exportfs -s")
    clients = {line.split()[1].split("(")[0] for line in exports.splitlines()
               if line.startswith(CHECKOUT)}
    assert clients == {vm_bed.addr("nuc2"), vm_bed.addr("nuc3")}
    assert "*(" not in exports


def test_checkout_is_shared_both_ways(vm_bed, converged):
    token = f"written-{time.time_ns()}"
    sh(vm_bed, "nuc2", f"echo {token} > {CHECKOUT}/from-nuc2")
    for node in ("nuc1", "nuc3"):
        assert sh(vm_bed, node, f"cat {CHECKOUT}/from-nuc2") == token
    sh(vm_bed, "nuc1", f"echo {token} > {CHECKOUT}/from-nuc1")
    assert sh(vm_bed, "nuc2", f"cat {CHECKOUT}/from-nuc1") == token
    for node in ("nuc2", "nuc3"):
        fstab = sh(vm_bed, node, f"grep ' {CHECKOUT} ' /etc/fstab")
        assert fstab == f"{vm_bed.addr('nuc1')}:{CHECKOUT} {CHECKOUT} nfs rw,hard,_netdev 0 0"
        assert "hard" in sh(vm_bed, node, f"findmnt -n -o OPTIONS {CHECKOUT}").split(",")
        # the kernel NFS client of a guest, version 4, on the server guest's export
        assert sh(vm_bed, node, f"findmnt -n -o FSTYPE,SOURCE {CHECKOUT}").split() == [
            "nfs4", f"{vm_bed.addr('nuc1')}:{CHECKOUT}"]


def test_wrong_mount_is_corrected_once(vm_bed, converged):
    server = f"{vm_bed.addr('nuc1')}:{CHECKOUT}"
    sh(vm_bed, "nuc3", f"umount {CHECKOUT} && mount -t nfs -o ro,soft {server} {CHECKOUT}")
    fixed, _ = apply(vm_bed, target="nuc3")
    assert changed(fixed["nuc3"]) == ["nfs-client-checkout-mounted"]
    options = sh(vm_bed, "nuc3", f"findmnt -n -o OPTIONS {CHECKOUT}").split(",")
    assert "rw" in options and "hard" in options and "soft" not in options
    again, _ = apply(vm_bed, target="nuc3")
    assert changed(again["nuc3"]) == []
