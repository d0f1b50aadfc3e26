"""salt/docker, salt/limits, salt/nfs and salt/firewall rendered by Salt's own compiler (salt-call --local
state.show_sls) for the OS releases the project supports, where the bed cannot run them for
real: Docker's repository is out of reach and tier 1 has neither systemd nor NFS."""

import base64
import json
import shlex
import subprocess

import pytest
import yaml

from bed import config

OSES = {
    "jammy": {"os": "Ubuntu", "os_family": "Debian", "osrelease": "22.04", "oscodename": "jammy"},
    "noble": {"os": "Ubuntu", "os_family": "Debian", "osrelease": "24.04", "oscodename": "noble"},
    "bookworm": {"os": "Debian", "os_family": "Debian", "osrelease": "12",
                 "oscodename": "bookworm"},
}
CLUSTER = {
    "manager": "nuc1",
    "nodes": {f"nuc{i}": {"address": f"198.18.0.1{i}", "labels": []} for i in (1, 2, 3)},
}
CE_PKGS = ["docker-ce", "docker-ce-cli", "containerd.io", "docker-buildx-plugin",
           "docker-compose-plugin"]


def show_sls(tmp_path, sls, grains, pillar=None, minion="nuc2"):
    """{state id: (function, {arg: value})} of ``sls`` as the minion would compile it."""
    (tmp_path / "pillar").mkdir(exist_ok=True)
    (tmp_path / "pillar/top.sls").write_text("base:\n  '*': [site]\n")
    site = {"cluster": CLUSTER, **(pillar or {})}
    (tmp_path / "pillar/site.sls").write_text(yaml.safe_dump({"autograder": site}))
    conf = {
        "id": minion, "root_dir": str(tmp_path / "root"), "file_client": "local",
        "file_roots": {"base": [str(config.REPO / "salt"), str(config.REPO)]},
        "pillar_roots": {"base": [str(tmp_path / "pillar")]},
        "grains": {"osarch": "amd64", "init": "systemd", **grains},
    }
    (tmp_path / "minion").write_text(yaml.safe_dump(conf))
    res = subprocess.run(
        [str(config.SALT_BIN / "salt-call"), "-c", str(tmp_path), "--local", "--out=json",
         "state.show_sls", sls], capture_output=True, text=True,
    )
    out = json.loads(res.stdout)["local"]
    assert isinstance(out, dict), f"{sls} did not render: {out}"
    states = {}
    for sid, body in out.items():
        (module, decl), = ((k, v) for k, v in body.items() if not k.startswith("__"))
        args = {}
        for item in decl:
            if isinstance(item, dict):
                args.update(item)
            elif item != "order" and isinstance(item, str):
                fun = item
        states[sid] = (f"{module}.{fun}", args)
    return states


@pytest.mark.parametrize("codename", OSES)
def test_docker_ce_from_dockers_repository(tmp_path, codename):
    states = show_sls(tmp_path, "docker", OSES[codename])
    repo_os = OSES[codename]["os"].lower()
    fun, key = states["docker-repo-key-file-managed"]
    assert fun == "file.managed"
    assert key["name"] == "/etc/apt/keyrings/docker.asc"
    assert key["source"] == f"https://download.docker.com/linux/{repo_os}/gpg"
    assert key["source_hash"].startswith("sha256=")
    fun, source = states["docker-repo-sources-file-managed"]
    assert source["name"] == "/etc/apt/sources.list.d/docker.sources"
    fields = dict(line.split(": ", 1) for line in source["contents"].splitlines()
                  if not line.startswith("#"))
    assert fields == {
        "Types": "deb", "URIs": f"https://download.docker.com/linux/{repo_os}",
        "Suites": codename, "Components": "stable", "Architectures": "amd64",
        "Signed-By": "/etc/apt/keyrings/docker.asc",
    }
    fun, pkg = states["docker-package-pkg-installed"]
    assert fun == "pkg.installed" and pkg["pkgs"] == CE_PKGS and pkg["install_recommends"] is True
    assert {"sls": "docker.repo"} in pkg["require"]
    rendered = json.dumps(states)
    assert "apt-key" not in rendered and '"docker-compose"' not in rendered


@pytest.mark.parametrize("codename, pkgs", [
    ("jammy", ["docker.io", "docker-compose-v2"]),
    ("noble", ["docker.io", "docker-compose-v2"]),
    ("bookworm", ["docker.io"]),
])
def test_distro_docker_without_dockers_repository(tmp_path, codename, pkgs):
    states = show_sls(tmp_path, "docker", OSES[codename], {"docker": {"source": "distro"}})
    _, pkg = states["docker-package-pkg-installed"]
    assert pkg["pkgs"] == pkgs
    assert pkg["install_recommends"] is False  # no needrestart to restart dockerd after upgrades
    assert not [sid for sid in states if sid.startswith("docker-repo-")]


@pytest.mark.parametrize("hold", [True, False, None])
def test_docker_s_packages_held_released_or_left_as_the_pillar_says(tmp_path, hold):
    states = show_sls(tmp_path, "docker", OSES["bookworm"], {"docker": {"hold": hold}})
    _, pkg = states["docker-package-pkg-installed"]
    if hold is None:  # a hold the site made itself stays
        assert "hold" not in pkg
    else:
        assert pkg["hold"] is hold


def test_external_docker_installs_nothing_but_manages_config_and_service(tmp_path):
    states = show_sls(tmp_path, "docker", OSES["noble"], {"docker": {"source": "external"}})
    assert not [fun for fun, _ in states.values() if fun.startswith("pkg.")]
    assert states["docker-config-daemon-json-merged"][0] == "ag_node.daemon_json"
    fun, svc = states["docker-service-running"]
    assert fun == "service.running" and svc["enable"] is True
    assert {"ag_node": "docker-config-daemon-json-merged"} in svc["watch"]


def test_daemon_keys_come_from_docker_and_limits_pillar(tmp_path):
    pillar = {"docker": {"log_max_size": "20m", "log_max_file": 3,
                         "daemon": {"max-concurrent-uploads": 2}},
              "limits": {"nofile": 65536}}
    states = show_sls(tmp_path, "docker", OSES["bookworm"], pillar)
    assert states["docker-config-daemon-json-merged"][1]["keys"] == {
        "log-driver": "json-file",
        "log-opts": {"max-size": "20m", "max-file": "3"},
        "default-ulimits": {"nofile": {"Name": "nofile", "Soft": 65536, "Hard": 65536}},
        "max-concurrent-uploads": 2,
    }


def test_unsupported_release_fails_with_a_sentence(tmp_path):
    focal = {**OSES["jammy"], "osrelease": "20.04", "oscodename": "focal"}
    fun, args = show_sls(tmp_path, "docker", focal)["docker-repo-unsupported-os"]
    assert fun == "test.fail_without_changes"
    assert "nuc2" in args["comment"] and "autograder:docker:source" in args["comment"]


def test_docker_group_only_with_users(tmp_path):
    assert "docker-users-group-present" not in show_sls(tmp_path, "docker", OSES["noble"])
    states = show_sls(tmp_path, "docker", OSES["noble"], {"docker": {"users": ["alice"]}})
    assert states["docker-users-group-present"][1]["addusers"] == ["alice"]


@pytest.mark.parametrize("init, dropins", [("systemd", True), ("sysvinit", False)])
def test_limits_for_logins_and_systemd_services(tmp_path, init, dropins):
    grains = {**OSES["noble"], "init": init}
    states = show_sls(tmp_path, "limits", grains, {"limits": {"nofile": 1000000}})
    conf = states["limits-logins-nofile-file-managed"][1]
    assert conf["name"].startswith("/etc/security/limits.d/")
    lines = [line.split() for line in conf["contents"].splitlines() if not line.startswith("#")]
    assert lines == [[who, kind, "nofile", "1000000"]
                     for who in ("*", "root") for kind in ("soft", "hard")]
    for unit in ("docker", "containerd"):
        sid = f"limits-systemd-{unit}-dropin-file-managed"
        assert (sid in states) is dropins
        if dropins:
            assert states[sid][1]["name"] == (
                f"/etc/systemd/system/{unit}.service.d/90-autograder-nofile.conf")
            assert "LimitNOFILE=1000000" in states[sid][1]["contents"].splitlines()


def test_nfs_server_exports_to_the_other_nodes_only(tmp_path):
    states = show_sls(tmp_path, "nfs", OSES["bookworm"], minion="nuc1")
    exports = states["nfs-server-exports-file-managed"][1]["contents"].splitlines()[-1]
    opts = "(rw,sync,no_root_squash,no_subtree_check)"
    assert exports == f"/srv/autograder-full-stack 198.18.0.12{opts} 198.18.0.13{opts}"
    fun, reexport = states["nfs-server-exportfs-reexport"]
    assert reexport["name"] == "exportfs -ra"
    assert reexport["onchanges"] == [{"file": "nfs-server-exports-file-managed"}]
    assert "watch" not in states["nfs-server-service-running"][1]
    assert not [sid for sid in states if sid.startswith("nfs-client-")]


def test_nfs_clients_mount_the_servers_checkout(tmp_path):
    pillar = {"nfs": {"server": "nuc3"}, "app": {"checkout": "/opt/ag"}}
    states = show_sls(tmp_path, "nfs", OSES["jammy"], pillar, minion="nuc1")
    fun, mount = states["nfs-client-checkout-mounted"]
    assert fun == "ag_node.nfs_mounted"
    assert mount["name"] == "/opt/ag" and mount["device"] == "198.18.0.13:/opt/ag"
    assert mount["options"] == ["rw", "hard", "vers=4.2", "_netdev"]


@pytest.mark.parametrize(("minion", "schedule", "fun"), [
    ("nuc2", "30 3 * * *", "schedule.present"),  # the node labelled database
    ("nuc1", "30 3 * * *", "schedule.absent"),
    ("nuc2", None, "schedule.absent"),
])
def test_the_backup_schedule_is_on_the_database_node_only(tmp_path, minion, schedule, fun):
    cluster = {"manager": "nuc1", "nodes": {
        "nuc1": {"address": "198.18.0.11", "labels": ["webserver"]},
        "nuc2": {"address": "198.18.0.12", "labels": ["database"]}}}
    pillar = {"cluster": cluster, "backup": {"schedule": schedule, "keep": 3}}
    (state,) = show_sls(tmp_path, "ag.backup", OSES["bookworm"], pillar, minion=minion).values()
    assert state[0] == fun and state[1]["name"] == "ag-backup"
    if fun == "schedule.present":  # salt-run ag.backup's arguments
        assert state[1]["function"] == "ag_app.backup" and state[1]["cron"] == schedule
        assert state[1]["job_args"] == ["/srv/autograder-backups", 3, "ag-stack",
                                        "/srv/autograder-full-stack"]


def test_nfs_not_managed_renders_no_nfs_state(tmp_path):
    states = show_sls(tmp_path, "nfs", OSES["noble"], {"nfs": {"managed": False}})
    assert [fun for fun, _ in states.values()] == ["test.succeed_without_changes"]


def in_own_netns(*scripts):
    """Each shell script's exit code and output, run one after the other in a network namespace
    of their own (its iptables and ip6tables rules start empty and go with it)."""
    steps = "".join(f"sh -c {shlex.quote(script)} >$out 2>&1; echo \"$? $(base64 -w0 $out)\"\n"
                    for script in scripts)
    res = subprocess.run(["unshare", "-n", "sh", "-c", f"out=$(mktemp)\n{steps}rm $out"],
                         capture_output=True, text=True, check=True)
    return [(int(code), base64.b64decode(out).decode()) for code, _, out in
            (line.partition(" ") for line in res.stdout.splitlines())]


FIREWALL_CLUSTER = {"manager": "nuc1", "nodes": {
    "nuc1": {"address": "198.18.0.11", "labels": []},
    "nuc2": {"address": "198.18.0.12", "labels": []},
    "nuc3": {"address": "fd00:198:18::13", "labels": []}}}
SHOW_RULES = "iptables -t raw -S; ip6tables -t raw -S"


@pytest.mark.parametrize("init, unit", [("systemd", True), ("sysvinit", False)])
def test_firewall_keeps_cluster_only_and_swarm_ports_to_the_nodes_and_comes_back_at_boot(
        tmp_path, init, unit):
    states = show_sls(tmp_path, "firewall", {**OSES["bookworm"], "init": init},
                      {"cluster": FIREWALL_CLUSTER}, minion="nuc1")
    script = states["firewall-script-file-managed"][1]
    fun, applied = states["firewall-cluster-only-rules-applied"]
    assert (fun, applied["name"], applied["check"]) == ("ag_node.script_applied", script["name"],
                                                        "--check")
    assert ("firewall-boot-unit-enabled" in states) is unit
    if unit:
        service = states["firewall-boot-unit-file-managed"][1]["contents"]
        assert f"ExecStart={script['name']}" in service.splitlines()
        assert "Before=docker.service nfs-server.service" in service.splitlines()
    clean = show_sls(tmp_path, "firewall.clean", {**OSES["bookworm"], "init": init},
                     {"cluster": FIREWALL_CLUSTER}, minion="nuc1")
    clean_rules = clean["firewall-clean-cluster-only-rules-absent"][1]
    (clean_needed,) = clean_rules["onlyif"]
    (tmp_path / "fw").write_text(script["contents"])
    fw = f"sh {tmp_path / 'fw'}"
    lose_a_jump = ("iptables -t raw -D PREROUTING $(iptables -t raw -S PREROUTING | "
                   "grep -e '-p udp.*-j AG-CLUSTER-ONLY$' | cut -d' ' -f3-)")
    steps = in_own_netns(f"{fw} --check", fw, f"{fw} --check", SHOW_RULES, fw, SHOW_RULES,
                         lose_a_jump, f"{fw} --check", fw, f"{fw} --check",
                         clean_needed, clean_rules["name"], clean_needed, SHOW_RULES)
    codes = [code for code, _ in steps]
    # no rules yet: check says so; built; checked; built again, the same rules
    assert codes[:6] == [1, 0, 0, 0, 0, 0], steps
    assert steps[3] == steps[5]
    rules = steps[3][1].splitlines()
    v4, v6 = rules[:rules.index("-P PREROUTING ACCEPT", 1)], rules[rules.index(
        "-P PREROUTING ACCEPT", 1):]
    for family, sources in ((v4, ["198.18.0.11/32", "198.18.0.12/32"]),
                            (v6, ["fd00:198:18::13/128"])):
        assert [r for r in family if r.startswith("-A AG-CLUSTER-ONLY")] == [
            f"-A AG-CLUSTER-ONLY -s {s} -j RETURN" for s in sources] + ["-A AG-CLUSTER-ONLY -j DROP"]
        jumps = sorted(r for r in family if r.startswith("-A PREROUTING"))
        # the registries, the swarm's control and gossip ports, NFS (nuc1 is the NFS server);
        # gossip and VXLAN over UDP
        assert jumps == [f"-A PREROUTING ! -i lo -p {proto} -m multiport --dports {ports} -m "
                         "addrtype --dst-type LOCAL -j AG-CLUSTER-ONLY"
                         for proto, ports in (("tcp", "5000,5001,2377,7946,2049"),
                                              ("udp", "4789,7946"))]
    # a lost jump is seen and built again; the clean is needed, removes all, and is done
    assert codes[6:] == [0, 1, 0, 0, 0, 0, 1, 0], steps
    assert "AG-CLUSTER-ONLY" not in steps[-1][1]


def test_firewall_leaves_a_minion_outside_the_cluster_alone(tmp_path):
    states = show_sls(tmp_path, "firewall", OSES["noble"], minion="stranger")
    assert not [sid for sid in states if sid.startswith("firewall-")]


# --- clean: each concern's clean.sls (ag.retire runs them on the retiring nodes) ------------


@pytest.mark.parametrize("init, unit", [("systemd", True), ("sysvinit", False)])
def test_firewall_clean_removes_rules_script_and_boot_unit(tmp_path, init, unit):
    # a node no longer in the cluster gets the clean too: what an earlier run made goes
    states = show_sls(tmp_path, "firewall.clean", {**OSES["bookworm"], "init": init},
                      minion="stranger")
    # what its commands do to live rules: test_firewall_keeps_cluster_only_and_swarm_ports...
    fun, rules = states["firewall-clean-cluster-only-rules-absent"]
    assert fun == "cmd.run"
    fun, script = states["firewall-clean-script-file-absent"]
    assert (fun, script["name"]) == ("file.absent", "/usr/local/sbin/ag-cluster-only-firewall")
    assert script["require"] == [{"cmd": "firewall-clean-cluster-only-rules-absent"}]
    assert ("firewall-clean-boot-unit-dead" in states) is unit
    if unit:
        fun, dead = states["firewall-clean-boot-unit-dead"]
        assert (fun, dead["name"], dead["enable"]) == (
            "service.dead", "ag-cluster-only-firewall.service", False)
        assert states["firewall-clean-boot-unit-file-absent"][1]["name"] == (
            "/etc/systemd/system/ag-cluster-only-firewall.service")


@pytest.mark.parametrize("init, dropins", [("systemd", True), ("sysvinit", False)])
def test_limits_clean_removes_the_files_limits_wrote(tmp_path, init, dropins):
    states = show_sls(tmp_path, "limits.clean", {**OSES["noble"], "init": init},
                      {"limits": {"dropin_name": "80-ag.conf"}})
    files = {sid: (fun, args["name"]) for sid, (fun, args) in states.items()
             if fun == "file.absent"}
    assert files.pop("limits-clean-logins-nofile-file-absent") == (
        "file.absent", "/etc/security/limits.d/90-autograder-nofile.conf")
    assert files == ({f"limits-clean-systemd-{u}-dropin-file-absent": (
        "file.absent", f"/etc/systemd/system/{u}.service.d/80-ag.conf")
        for u in ("docker", "containerd")} if dropins else {})
    assert ("limits-clean-systemd-daemon-reload" in states) is dropins
    if dropins:
        reload = states["limits-clean-systemd-daemon-reload"][1]
        assert reload["onchanges"] == [{"file": f"limits-clean-systemd-{u}-dropin-file-absent"}
                                       for u in ("docker", "containerd")]


def test_nfs_clean_unexports_on_the_server_and_unmounts_elsewhere(tmp_path):
    server = show_sls(tmp_path, "nfs.clean", OSES["bookworm"], minion="nuc1")
    assert sorted(server) == ["nfs-clean-server-exportfs-reexport",
                              "nfs-clean-server-exports-file-absent"]
    assert server["nfs-clean-server-exports-file-absent"][1]["name"] == (
        "/etc/exports.d/autograder.exports")
    for minion in ("nuc2", "stranger"):
        client = show_sls(tmp_path, "nfs.clean", OSES["bookworm"], minion=minion)
        fun, unmounted = client["nfs-clean-client-checkout-unmounted"]
        assert (fun, unmounted["name"]) == ("mount.unmounted", "/srv/autograder-full-stack")
        assert "-t nfs,nfs4" in unmounted["onlyif"]
        fun, fstab = client["nfs-clean-client-fstab-entry-absent"]
        assert (fun, fstab["name"], fstab["fs_file"]) == (
            "mount.fstab_absent", "198.18.0.11:/srv/autograder-full-stack",
            "/srv/autograder-full-stack")


def test_nfs_clean_leaves_shared_storage_alone_when_not_managed(tmp_path):
    states = show_sls(tmp_path, "nfs.clean", OSES["noble"], {"nfs": {"managed": False}})
    assert [fun for fun, _ in states.values()] == ["test.succeed_without_changes"]


def test_clean_test_mode_reports_then_clean_removes_once(local_minion, tmp_path):
    """limits.clean and nfs.clean on this machine, their files put under tmp_path by the
    pillar: test=True reports and keeps them, a run removes them, a second changes nothing."""
    conf, exports = tmp_path / "limits.conf", tmp_path / "ag.exports"
    pillar = {"cluster": CLUSTER, "limits": {"conf_file": str(conf)},
              "nfs": {"exports_file": str(exports)}}
    minion = local_minion(pillar, minion_id="nuc1", grains={"init": "sysvinit"})
    for path in (conf, exports):
        path.write_text("# managed by Salt\n")
    sls = "limits.clean,nfs.clean"
    states = minion.apply(sls, test=True)
    assert states["limits-clean-logins-nofile-file-absent"]["result"] is None
    assert states["limits-clean-logins-nofile-file-absent"]["changes"] == {"removed": str(conf)}
    assert states["nfs-clean-server-exports-file-absent"]["changes"] == {"removed": str(exports)}
    assert conf.exists() and exports.exists()
    states = minion.apply(sls)
    assert all(s["result"] is True for s in states.values()), states
    assert not conf.exists() and not exports.exists()
    states = minion.apply(sls)
    assert all(s["result"] is True and not s["changes"] for s in states.values()), states


def test_every_state_ag_roll_counts_as_restarting_dockerd_is_in_what_it_applies(tmp_path):
    """ag.roll finds the nodes whose dockerd a state run would restart by these state IDs:
    a renamed state would make it restart every node at once again."""
    from tests.extensions import load

    roll = load("_runners/ag.py", "ag_runner")
    states = show_sls(tmp_path, roll.ROLLED_SLS, OSES["bookworm"])
    assert set(roll.DOCKERD_RESTARTERS) <= set(states), set(roll.DOCKERD_RESTARTERS) - set(states)
