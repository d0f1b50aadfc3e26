"""salt/docker and salt/limits on tier 1 (docker source external, no systemd, no NFS): the
admin's daemon.json keys survive, dockerd restarts only when its config changed, containers
get the pillar's nofile, test=True and a second run change nothing. And the NFS client's
failure when its server does not answer (tier 1 has no NFS server: nothing answers)."""

import json

import pytest
from agdeploy import apply as apply_states
from agdeploy import changed

PROBE_IMAGE = "agbed/busybox:latest"
ADMIN_KEY = ("max-concurrent-uploads", 3)  # a key only the admin sets
SLS = "docker,limits"


@pytest.fixture(scope="module", autouse=True)
def synced(netns_bed):
    """state.apply of single SLS does not sync custom states (only highstate does)."""
    netns_bed.salt("*", "saltutil.sync_states")


def apply(bed, *args):
    return apply_states(bed, SLS, *args)


def dockerd_pid(bed, node):
    return bed.exec(node, "cat", "/run/docker-ssd.pid").stdout.strip()


def daemon_json(bed, node):
    return json.loads(bed.exec(node, "cat", "/etc/docker/daemon.json").stdout)


def container_nofile(bed, node):
    res = bed.exec(node, "docker", "run", "--rm", PROBE_IMAGE, "sh", "-c",
                   "ulimit -Sn; ulimit -Hn")
    return [int(n) for n in res.stdout.split()]


@pytest.fixture
def nofile(netns_bed):
    """The pillar's nofile; the pillar as it was is put back after the test."""
    before = netns_bed.read_pillar()
    yield before["autograder"]["limits"]["nofile"]
    netns_bed.write_pillar(before)
    apply(netns_bed)


def test_docker_and_limits_converge_keeping_admin_keys(netns_bed, nofile):
    bed = netns_bed
    for node in bed.nodes:
        bed.exec(node, "python3", "-c",
                 "import json; p = '/etc/docker/daemon.json'; d = json.load(open(p)); "
                 f"d[{ADMIN_KEY[0]!r}] = {ADMIN_KEY[1]}; json.dump(d, open(p, 'w'), indent=2)")
    admin = {node: daemon_json(bed, node) for node in bed.nodes}
    pids = {node: dockerd_pid(bed, node) for node in bed.nodes}

    for node, states in apply(bed, "test=True").items():
        assert all(s["result"] in (True, None) for s in states)
        assert daemon_json(bed, node) == admin[node], "test=True changed daemon.json"
        assert dockerd_pid(bed, node) == pids[node], "test=True restarted dockerd"

    for node, states in apply(bed).items():
        config_changed = "docker-config-daemon-json-merged" in changed(states)
        assert (dockerd_pid(bed, node) != pids[node]) is config_changed
        merged = daemon_json(bed, node)
        for key, value in admin[node].items():
            if key not in ("log-driver", "log-opts", "default-ulimits"):
                assert merged[key] == value, f"{node}: admin key {key} not kept"
        assert merged["log-driver"] == "json-file"
        assert merged["default-ulimits"]["nofile"] == {"Name": "nofile", "Soft": nofile,
                                                       "Hard": nofile}
        assert "live-restore" not in merged

    pids = {node: dockerd_pid(bed, node) for node in bed.nodes}
    for node, states in apply(bed).items():
        assert changed(states) == [], f"{node}: second run changed {changed(states)}"
        assert dockerd_pid(bed, node) == pids[node]
        assert container_nofile(bed, node) == [nofile, nofile]
        limits_d = bed.exec(node, "cat", "/etc/security/limits.d/90-autograder-nofile.conf")
        assert f"*     hard  nofile  {nofile}" in limits_d.stdout


def test_nofile_change_restarts_dockerd_and_reaches_containers(netns_bed, nofile):
    bed = netns_bed
    apply(bed)
    pids = {node: dockerd_pid(bed, node) for node in bed.nodes}
    lower = nofile - 1000  # below what dockerd itself has: only default-ulimits gives this
    pillar = bed.read_pillar()
    pillar["autograder"]["limits"]["nofile"] = lower
    bed.write_pillar(pillar)

    for node, states in apply(bed).items():
        assert "docker-config-daemon-json-merged" in changed(states)
        assert dockerd_pid(bed, node) != pids[node], f"{node}: dockerd not restarted"
        assert container_nofile(bed, node) == [lower, lower]


@pytest.mark.parametrize("test_mode", [True, False])
def test_nfs_client_fails_on_unreachable_server_touching_nothing(netns_bed, test_mode):
    bed, node, path = netns_bed, "nuc2", "/srv/ag-nfs-probe"
    server = bed.addr("nuc1")
    fstab = bed.exec(node, "cat", "/etc/fstab").stdout
    out = bed.salt(node, "state.single", "ag_node.nfs_mounted", f"name={path}",
                   f"device={server}:{path}", 'options=["rw", "hard", "_netdev"]',
                   "server_wait=2", f"test={test_mode}")
    (ret,) = out[node].values()
    if test_mode:
        assert ret["result"] is None and set(ret["changes"]) == {"fstab", "mount"}
    else:
        assert ret["result"] is False and ret["changes"] == {}
        assert f"NFS server {server}" in ret["comment"] and path in ret["comment"]
    assert bed.exec(node, "cat", "/etc/fstab").stdout == fstab
    assert bed.exec(node, "test", "-e", path, check=False).returncode == 1
