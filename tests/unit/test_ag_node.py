"""_states/ag_node.py without Salt: the daemon.json merge and the NFS mount's decisions, with
the loader's dunders and the mount commands replaced."""

import json

import pytest

from tests.extensions import load

ag_node = load("_states/ag_node.py", "ag_node")
ag_diff = load("_utils/ag_diff.py", "ag_diff")

OWNED = {
    "log-driver": "json-file",
    "log-opts": {"max-size": "100m", "max-file": "5"},
    "default-ulimits": {"nofile": {"Name": "nofile", "Soft": 1000000, "Hard": 1000000}},
}


@pytest.fixture
def salt_env(monkeypatch):
    """The dunders Salt's loader puts in; `calls` records the commands the state ran."""
    calls = []

    def run_all(cmd, **_):
        calls.append(cmd)
        return {"retcode": 0, "stdout": "", "stderr": ""}

    monkeypatch.setattr(ag_node, "__grains__", {"id": "nuc2"}, raising=False)
    monkeypatch.setattr(ag_node, "__opts__", {"test": False}, raising=False)
    monkeypatch.setattr(ag_node, "__salt__", {"cmd.run_all": run_all}, raising=False)
    monkeypatch.setattr(ag_node, "__utils__", {"ag_diff.changes": ag_diff.changes}, raising=False)
    return calls


# --- daemon.json ----------------------------------------------------------------------------


def test_merge_keeps_admin_keys_and_merges_nested_dicts():
    current = {"bip": "198.19.11.1/24", "log-opts": {"compress": "true", "max-size": "1m"},
               "default-ulimits": {"nproc": {"Name": "nproc", "Soft": 10, "Hard": 10}}}
    merged = ag_node.merge_config(current, OWNED)
    assert merged["bip"] == "198.19.11.1/24"
    assert merged["log-opts"] == {"compress": "true", "max-size": "100m", "max-file": "5"}
    assert set(merged["default-ulimits"]) == {"nproc", "nofile"}
    assert current["log-opts"]["max-size"] == "1m"  # the input is not modified


def test_config_changes_lists_only_keys_that_differ():
    old = {"bip": "x", "log-driver": "json-file"}
    new = ag_node.merge_config(old, OWNED)
    assert set(ag_diff.changes(old, new)) == {"log-opts", "default-ulimits"}
    assert ag_diff.changes(new, new) == {}


def test_daemon_json_writes_once_then_reports_nothing(tmp_path, salt_env):
    path = tmp_path / "docker/daemon.json"
    path.parent.mkdir()
    path.write_text(json.dumps({"bip": "198.19.11.1/24", "log-opts": {"compress": "true"}}))
    first = ag_node.daemon_json(str(path), OWNED)
    assert first["result"] is True
    assert set(first["changes"]) == {"log-driver", "log-opts", "default-ulimits"}
    data = json.loads(path.read_text())
    assert data["bip"] == "198.19.11.1/24"
    assert data["log-opts"]["compress"] == "true"
    assert data["default-ulimits"]["nofile"]["Hard"] == 1000000
    second = ag_node.daemon_json(str(path), OWNED)
    assert second["result"] is True and second["changes"] == {}


def test_daemon_json_that_cannot_be_written_fails_as_a_sentence(tmp_path, salt_env):
    (tmp_path / "daemon.json.salt-tmp").mkdir()  # any write error (a full disk, read-only /etc)
    ret = ag_node.daemon_json(str(tmp_path / "daemon.json"), OWNED)
    assert ret["result"] is False and ret["changes"] == {}
    assert ret["comment"].startswith(f"writing {tmp_path}/daemon.json on nuc2 failed: ")


def test_daemon_json_test_mode_reports_and_writes_nothing(tmp_path, salt_env):
    ag_node.__opts__["test"] = True
    path = tmp_path / "daemon.json"
    ret = ag_node.daemon_json(str(path), OWNED)
    assert ret["result"] is None
    assert set(ret["changes"]) == set(OWNED)
    assert not path.exists()


def test_daemon_json_creates_missing_file_and_directory(tmp_path, salt_env):
    path = tmp_path / "etc/docker/daemon.json"
    assert ag_node.daemon_json(str(path), OWNED)["result"] is True
    assert json.loads(path.read_text()) == OWNED


@pytest.mark.parametrize("owned, admin, words", [
    ({**OWNED, "live-restore": False}, {}, "autograder:docker:daemon"),
    (OWNED, {"live-restore": True}, "admin's daemon.json"),
])
def test_daemon_json_refuses_live_restore(tmp_path, salt_env, owned, admin, words):
    path = tmp_path / "daemon.json"
    path.write_text(json.dumps(admin))
    ret = ag_node.daemon_json(str(path), owned)
    assert ret["result"] is False
    assert "live-restore" in ret["comment"] and words in ret["comment"]
    assert "nuc2" in ret["comment"]
    assert json.loads(path.read_text()) == admin


def test_daemon_json_invalid_json_fails_and_is_left_alone(tmp_path, salt_env):
    path = tmp_path / "daemon.json"
    path.write_text("{ not json")
    ret = ag_node.daemon_json(str(path), OWNED)
    assert ret["result"] is False and "not valid JSON" in ret["comment"]
    assert path.read_text() == "{ not json"


# --- a script with a check ------------------------------------------------------------------

SCRIPT = "/usr/local/sbin/ag-cluster-only-firewall"


@pytest.fixture
def script(salt_env):
    """A script whose check passes once it has run (unless `builds` is False), exiting with
    `exit`; the commands run are in `calls`."""
    state = {"live": False, "builds": True, "exit": 0, "calls": salt_env}

    def run_all(cmd, **_):
        salt_env.append(cmd)
        if cmd == [SCRIPT, "--check"]:
            return {"retcode": 0 if state["live"] else 1, "stdout": "", "stderr": ""}
        state["live"] = state["builds"] and not state["exit"]
        return {"retcode": state["exit"], "stdout": "", "stderr": "iptables: not found"}

    ag_node.__salt__["cmd.run_all"] = run_all
    return state


def test_a_script_whose_check_fails_runs_then_nothing_to_do(script):
    ret = ag_node.script_applied(SCRIPT)
    assert ret["result"] is True and set(ret["changes"]) == {"applied"}
    assert script["calls"] == [[SCRIPT, "--check"], [SCRIPT], [SCRIPT, "--check"]]
    again = ag_node.script_applied(SCRIPT)
    assert again["result"] is True and again["changes"] == {}
    assert len(script["calls"]) == 4


def test_test_mode_says_the_script_would_run_and_runs_only_the_check(script):
    ag_node.__opts__["test"] = True
    ret = ag_node.script_applied(SCRIPT)
    assert ret["result"] is None and set(ret["changes"]) == {"applied"}
    assert script["calls"] == [[SCRIPT, "--check"]]


@pytest.mark.parametrize("builds, exit, words", [
    (True, 3, "exited 3: iptables: not found"),
    (False, 0, "ran, but /usr/local/sbin/ag-cluster-only-firewall --check still fails")])
def test_a_script_that_fails_or_builds_otherwise_fails_naming_node_and_cause(script, builds, exit,
                                                                            words):
    script.update(builds=builds, exit=exit)
    ret = ag_node.script_applied(SCRIPT)
    assert ret["result"] is False and ret["changes"] == {}
    assert ret["comment"] == f"{SCRIPT} on nuc2 {words}"


# --- NFS mount ------------------------------------------------------------------------------

DEVICE = "198.18.0.11:/srv/ag"
OPTS = ["rw", "hard", "_netdev"]
GOOD_FSTAB = f"{DEVICE} /srv/ag nfs rw,hard,_netdev 0 0"


def mountinfo(source="198.18.0.11:/srv/ag", fstype="nfs4", opts="rw,relatime",
              sopts="rw,vers=4.2,hard,proto=tcp"):
    return (
        "22 1 8:1 / / rw,relatime - ext4 /dev/sda1 rw\n"
        f"90 22 0:50 / /srv/ag {opts} shared:1 - {fstype} {source} {sopts}\n"
    )


@pytest.fixture
def node(tmp_path, monkeypatch, salt_env):
    """A node whose mount table (before a mount command, and after one: the wanted mount),
    fstab and server reachability the test sets."""
    state = {"mountinfo": mountinfo(), "after_mount": mountinfo(), "reachable": True}
    fstab = tmp_path / "fstab"
    fstab.write_text("/dev/sda1 / ext4 defaults 0 1\n" + GOOD_FSTAB + "\n")
    real_read = ag_node._read

    def fake_read(path, default=""):
        if path != "/proc/self/mountinfo":
            return real_read(path, default)
        mounted = any(cmd[0] == "mount" for cmd in salt_env)
        return state["after_mount" if mounted else "mountinfo"]

    monkeypatch.setattr(ag_node, "_read", fake_read)
    monkeypatch.setattr(ag_node, "server_reachable", lambda host, wait=0: state["reachable"])
    state.update(fstab=fstab, calls=salt_env, mount_dir=tmp_path / "srv/ag")
    return state


def apply(node, **kw):
    return ag_node.nfs_mounted("/srv/ag", DEVICE, OPTS, fstab=str(node["fstab"]), **kw)


def test_right_mount_is_left_alone(node):
    ret = apply(node)
    assert ret["result"] is True and ret["changes"] == {}
    assert node["calls"] == []


def test_missing_mount_and_entry_are_made(node):
    node["mountinfo"] = mountinfo().splitlines()[0] + "\n"
    node["fstab"].write_text("/dev/sda1 / ext4 defaults 0 1\n")
    ret = apply(node)
    assert ret["result"] is True
    assert set(ret["changes"]) == {"fstab", "mount"}
    assert node["calls"] == [["mount", "-t", "nfs", "-o", "rw,hard,_netdev", DEVICE, "/srv/ag"]]
    assert node["fstab"].read_text().splitlines() == ["/dev/sda1 / ext4 defaults 0 1", GOOD_FSTAB]


@pytest.mark.parametrize("info, why", [
    (mountinfo(source="198.18.0.99:/srv/ag"), "198.18.0.99"),
    (mountinfo(sopts="rw,vers=4.2,soft,proto=tcp"), "hard"),
    (mountinfo(opts="ro,relatime"), "rw"),
])
def test_wrong_mount_is_replaced(node, info, why):
    node["mountinfo"] = info
    ret = apply(node)
    assert ret["result"] is True
    assert why in ret["changes"]["mount"]["old"]
    assert node["calls"][0] == ["umount", "/srv/ag"]
    assert node["calls"][1][0] == "mount"


def test_a_mount_the_kernel_shows_otherwise_fails_and_leaves_fstab(node):
    node["mountinfo"] = mountinfo().splitlines()[0] + "\n"
    node["after_mount"] = mountinfo(sopts="rw,vers=4.2,soft,proto=tcp")
    node["fstab"].write_text("/dev/sda1 / ext4 defaults 0 1\n")
    ret = apply(node)
    assert ret["result"] is False and ret["changes"] == {}
    assert ret["comment"] == (f"nuc2: {DEVICE} was mounted on /srv/ag but reads back mounted "
                              f"without hard; {node['fstab']} was left as it was.")
    assert node["fstab"].read_text() == "/dev/sda1 / ext4 defaults 0 1\n"


def test_an_fstab_that_cannot_be_written_fails_as_a_sentence_after_the_mount(node, tmp_path):
    node["mountinfo"] = mountinfo().splitlines()[0] + "\n"
    node["fstab"].write_text("/dev/sda1 / ext4 defaults 0 1\n")
    (tmp_path / "fstab.salt-tmp").mkdir()  # any write error (a full disk, read-only /etc)
    ret = apply(node)
    assert ret["result"] is False and list(ret["changes"]) == ["mount"]
    assert ret["comment"].startswith(f"nuc2: {DEVICE} on /srv/ag: writing {node['fstab']} "
                                      "failed: ")
    assert node["fstab"].read_text() == "/dev/sda1 / ext4 defaults 0 1\n"


def test_wrong_fstab_entry_is_replaced_in_place(node):
    node["fstab"].write_text(
        "/dev/sda1 / ext4 defaults 0 1\n198.18.0.99:/x /srv/ag/ nfs rw,intr 0 0\n# end\n")
    ret = apply(node)
    assert ret["changes"] == {"fstab": {"old": "198.18.0.99:/x /srv/ag/ nfs rw,intr 0 0",
                                        "new": GOOD_FSTAB}}
    assert node["fstab"].read_text().splitlines() == [
        "/dev/sda1 / ext4 defaults 0 1", GOOD_FSTAB, "# end"]
    assert node["calls"] == []


def test_test_mode_reports_and_changes_nothing(node):
    ag_node.__opts__["test"] = True
    node["mountinfo"] = mountinfo(source="198.18.0.99:/srv/ag")
    before = node["fstab"].read_text().replace(GOOD_FSTAB, "")
    node["fstab"].write_text(before)
    ret = apply(node)
    assert ret["result"] is None and set(ret["changes"]) == {"fstab", "mount"}
    assert node["fstab"].read_text() == before
    assert node["calls"] == []


def test_unreachable_server_fails_and_touches_nothing(node):
    node["reachable"] = False
    node["mountinfo"] = mountinfo(source="198.18.0.99:/srv/ag")
    node["fstab"].write_text("/dev/sda1 / ext4 defaults 0 1\n")
    ret = apply(node)
    assert ret["result"] is False and ret["changes"] == {}
    assert "198.18.0.11" in ret["comment"] and "/srv/ag" in ret["comment"]
    assert node["fstab"].read_text() == "/dev/sda1 / ext4 defaults 0 1\n"
    assert node["calls"] == []


def test_failed_mount_leaves_fstab_and_removes_only_the_directory_it_made(node, tmp_path,
                                                                          salt_env):
    def failing(cmd, **_):
        salt_env.append(cmd)
        return {"retcode": 32, "stdout": "", "stderr": "access denied by server"}

    ag_node.__salt__["cmd.run_all"] = failing
    target = tmp_path / "mnt/ag"
    ret = ag_node.nfs_mounted(str(target), DEVICE, OPTS, fstab=str(node["fstab"]))
    assert ret["result"] is False
    assert "access denied by server" in ret["comment"] and DEVICE in ret["comment"]
    assert str(target) not in node["fstab"].read_text()
    assert not target.exists()


def test_options_differ_only_on_what_the_kernel_reports():
    live = ["rw", "relatime", "vers=4.2", "hard", "proto=tcp"]
    assert ag_node.options_differ(["rw", "hard", "_netdev", "x-systemd.automount"], live) == []
    assert ag_node.options_differ(["vers=4.1", "noatime"], live) == ["vers=4.1"]
    assert ag_node.options_differ(["soft", "ro"], live) == ["soft", "ro"]


def test_live_mount_takes_the_topmost_and_unescapes():
    info = ("1 0 0:1 / /srv/a\\040b rw - tmpfs tmpfs rw\n"
            "2 1 0:2 / /srv/a\\040b rw - nfs4 h:/x rw,hard\n")
    assert ag_node.live_mount(info, "/srv/a b") == ("h:/x", "nfs4", ["rw", "rw", "hard"])
    assert ag_node.live_mount(info, "/srv/c") is None


def test_refused_mount_is_retried_while_the_server_is_set_up(node, salt_env, monkeypatch):
    answers = [32, 32, 0]  # access denied until the server has exported the path

    def mount_later(cmd, **_):
        salt_env.append(cmd)
        return {"retcode": answers.pop(0), "stdout": "", "stderr": "access denied by server"}

    ag_node.__salt__["cmd.run_all"] = mount_later
    monkeypatch.setattr(ag_node.time, "sleep", lambda s: None)
    node["mountinfo"] = mountinfo().splitlines()[0] + "\n"
    ret = apply(node, server_wait=60)
    assert ret["result"] is True and "mount" in ret["changes"]
    assert [c[0] for c in salt_env] == ["mount", "mount", "mount"]
