"""salt/docker, salt/limits and salt/nfs for real on tier 2 (Debian 12 guests with systemd and
kernel NFS), applied to fresh guests (or the last passing session's): docker.io from the distro,
nofile 1000000 for dockerd, containerd and containers, the checkout shared over NFS to the
cluster nodes only; test=True changes nothing, a wrong mount is corrected once, clients ride out
an NFS server restart."""

import json
import time

import pytest
from agdeploy import MANAGER, changed, sh
from agdeploy import apply as apply_states

pytestmark = pytest.mark.vm

SLS = "docker,limits,nfs"
CHECKOUT = "/srv/autograder-full-stack"
NOFILE = 1000000
PROBE_IMAGE = "agbed/busybox:latest"
SERVER = MANAGER  # nfs:server defaults to the cluster's manager


def apply(bed, *args, nodes=None):
    """The node states → ({node: [state returns]}, seconds)."""
    start = time.monotonic()
    out = apply_states(bed, SLS, *args, nodes=nodes, timeout=3000)
    return out, time.monotonic() - start


@pytest.fixture(scope="module")
def converged(vm_bed, measured):
    """The node states applied (on fresh guests: Docker and NFS installed), then in test mode
    once more, with every dockerd's pid before and after."""
    pillar = vm_bed.read_pillar()["autograder"]
    assert pillar["docker"]["source"] == "distro" and pillar["nfs"]["managed"] is True
    assert "limits" not in pillar, "tier 2 must run with the default nofile"
    # the states run on the project's own modules (_states, _modules), synced first; one job:
    # a job's start costs the emulated guests more than the kinds sync_all adds
    synced = vm_bed.salt("-t", "600", "*", "saltutil.sync_all", timeout=660)
    assert set(synced) == set(vm_bed.nodes), synced
    applied, seconds = apply(vm_bed)
    measured(f"node states on {len(vm_bed.nodes)} {'fresh' if vm_bed.fresh else 'reused'} guests: "
             f"{seconds:.0f} s")
    pids = {node: sh(vm_bed, node, "pidof dockerd") for node in vm_bed.nodes}
    dry, seconds = apply(vm_bed, "test=True")
    measured(f"node states in test mode on {len(vm_bed.nodes)} installed guests: {seconds:.0f} s")
    return {"applied": applied, "dry": dry, "pids": pids}


def test_fresh_guests_get_docker_and_nfs_installed(vm_bed, converged):
    if not vm_bed.fresh:
        pytest.skip("not fresh guests (reused)")
    for node, states in converged["applied"].items():
        nfs = "nfs-server-pkg-installed" if node == SERVER else "nfs-client-pkg-installed"
        assert {"docker-package-pkg-installed", nfs} <= set(changed(states)), node


def test_test_mode_changes_nothing_and_restarts_no_dockerd(vm_bed, converged):
    for node, states in converged["dry"].items():
        assert [s["__id__"] for s in states if s["result"] is None or s["changes"]] == []
        assert sh(vm_bed, node, "pidof dockerd") == converged["pids"][node]


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
    for node in vm_bed.nodes:  # the image comes through the site's registry mirror
        out = sh(vm_bed, node, f"docker run --rm {PROBE_IMAGE} sh -c 'ulimit -Sn; ulimit -Hn'")
        assert out.split() == [str(NOFILE), str(NOFILE)], node


def nfs_clients(bed):
    """The guests that mount the checkout: all but the manager, which serves it."""
    return sorted(set(bed.nodes) - {SERVER})


def test_exports_go_to_the_other_nodes_only(vm_bed, converged):
    exports = sh(vm_bed, SERVER, "exportfs -s")
    clients = {line.split()[1].split("(")[0] for line in exports.splitlines()
               if line.startswith(CHECKOUT)}
    assert clients == {vm_bed.addr(node) for node in nfs_clients(vm_bed)}
    assert "*(" not in exports


def test_checkout_is_shared_both_ways(vm_bed, converged):
    token = f"written-{time.time_ns()}"
    for writer in vm_bed.nodes:
        sh(vm_bed, writer, f"echo {token} > {CHECKOUT}/from-{writer}")
    for node in vm_bed.nodes:
        for writer in vm_bed.nodes:
            assert sh(vm_bed, node, f"cat {CHECKOUT}/from-{writer}") == token, (node, writer)
    for node in nfs_clients(vm_bed):
        fstab = sh(vm_bed, node, f"grep ' {CHECKOUT} ' /etc/fstab")
        assert fstab == f"{vm_bed.addr(SERVER)}:{CHECKOUT} {CHECKOUT} nfs rw,hard,vers=4.2,_netdev 0 0"
        live_options = sh(vm_bed, node, f"findmnt -n -o OPTIONS {CHECKOUT}").split(",")
        assert {"hard", "vers=4.2"} <= set(live_options)
        # the kernel NFS client of a guest, version 4, on the server guest's export
        assert sh(vm_bed, node, f"findmnt -n -o FSTYPE,SOURCE {CHECKOUT}").split() == [
            "nfs4", f"{vm_bed.addr(SERVER)}:{CHECKOUT}"]


def test_wrong_mount_is_corrected_once(vm_bed, converged):
    server, client = f"{vm_bed.addr(SERVER)}:{CHECKOUT}", nfs_clients(vm_bed)[-1]
    # lazily: anything on the client (the stack's tasks, when deployed) may hold files of it
    sh(vm_bed, client, f"umount -l {CHECKOUT} && mount -t nfs -o ro,soft {server} {CHECKOUT}")
    fixed, _ = apply(vm_bed, nodes=[client])
    assert changed(fixed[client]) == ["nfs-client-checkout-mounted"]
    options = sh(vm_bed, client, f"findmnt -n -o OPTIONS {CHECKOUT}").split(",")
    assert "rw" in options and "hard" in options and "soft" not in options
    again, _ = apply(vm_bed, nodes=[client])
    assert changed(again[client]) == []


def test_clients_ride_out_an_nfs_server_restart(vm_bed, converged, measured):
    """Hard mounts: a client's I/O waits while the server restarts (and its grace period runs),
    then goes on; nothing written is lost and nobody remounts by hand."""
    token, path, client = f"{time.time_ns()}", f"{CHECKOUT}/nfs-restart-probe", nfs_clients(vm_bed)[0]
    sh(vm_bed, client, f"echo before-{token} > {path}")
    started = time.monotonic()
    sh(vm_bed, SERVER, "systemctl restart nfs-server")
    sh(vm_bed, client, f"echo after-{token} >> {path}")
    measured(f"NFS server restart: survived, a client's write went through after "
             f"{time.monotonic() - started:.0f} s")
    for node in vm_bed.nodes:
        assert sh(vm_bed, node, f"cat {path}").split() == [f"before-{token}", f"after-{token}"]
    assert "hard" in sh(vm_bed, client, f"findmnt -n -o OPTIONS {CHECKOUT}").split(",")
    sh(vm_bed, client, f"rm {path}")
