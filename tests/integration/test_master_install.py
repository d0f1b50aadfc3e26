"""A salt-master configured by the README's "Installing on a site's master" block alone (no
runner_dirs, utils_dirs, module_dirs or states_dirs, no tuning: none of the bed's settings)
and `salt-run saltutil.sync_all`: the ag runner works, and a minion with an FQDN id gets the
custom modules and states. Real master and minion from salt-factories; no bed needed."""

import re
from pathlib import Path

import pytest
import yaml

from bed.config import REPO

SITE_REPO = "/srv/autograder-salt"
SITE_PILLAR = "/srv/autograder-pillar"
MINION = "nuc1.eecs.example.edu"
CLI_TIMEOUT = 180  # a salt-run takes seconds alone, far more on a busy CI machine
PILLAR = {"autograder": {"cluster": {"manager": MINION, "nodes": {MINION: {
    "address": "127.0.0.1",
    "labels": ["database", "registry", "cache", "rabbitmq_broker", "custom_image_registry",
               "webserver", "django_app", "small_tasks"]}}}}}


def readme_master_config(pillar_dir) -> dict:
    """The README's master block, its example paths replaced by this checkout and `pillar_dir`."""
    section = (REPO / "README.md").read_text().split("## Installing on a site's master", 1)[1]
    block = re.search(r"```yaml\n(.*?)```", section, re.S).group(1)
    return yaml.safe_load(block.replace(SITE_REPO, str(REPO)).replace(SITE_PILLAR, str(pillar_dir)))


def run_cli(master):
    return master.salt_run_cli(timeout=CLI_TIMEOUT)


@pytest.fixture(scope="module")
def master(salt_factories, tmp_path_factory):
    pillar_dir = tmp_path_factory.mktemp("pillar")
    (pillar_dir / "top.sls").write_text("base:\n  '*':\n    - autograder\n")
    (pillar_dir / "autograder.sls").write_text(yaml.safe_dump(PILLAR))
    factory = salt_factories.salt_master_daemon("site-master",
                                                overrides=readme_master_config(pillar_dir))
    with factory.started():
        yield factory


@pytest.fixture(scope="module")
def minion(master):
    factory = master.salt_minion_daemon(MINION)
    with factory.started():
        yield factory


def test_the_readme_config_sets_none_of_the_beds_extras():
    config = readme_master_config("/p")
    assert set(config) == {"file_roots", "pillar_roots", "include"}


def test_before_the_sync_the_runner_is_missing_and_says_so(master):
    ret = run_cli(master).run("ag.validate")
    assert "'ag.validate' is not available" in ret.stdout + ret.stderr


def test_after_the_sync_the_runner_validates_the_fqdn_cluster(master, minion):
    synced = run_cli(master).run("saltutil.sync_all")
    assert "runners.ag" in synced.data["runners"] and "utils.ag_cluster" in synced.data["utils"]
    check = run_cli(master).run("ag.validate")
    assert check.data == {"valid": True, "errors": [], "minions": [MINION], "retcode": 0}
    assert run_cli(master).run("ag.unanswered").data == []


def test_a_pillar_file_with_a_yaml_error_is_named_with_its_line(master, minion):
    """The master keeps a render error's cause for its log (pillar_safe_render_error):
    ag.validate names the file and line, a sysadmin's first question."""
    (pillar_file,) = [Path(root) / "autograder.sls" for root in master.config["pillar_roots"]["base"]
                      if (Path(root) / "autograder.sls").is_file()]
    good = pillar_file.read_text()
    pillar_file.write_text(good.replace("    manager:", "\tmanager:", 1))  # a tab indents line 3
    try:
        check = run_cli(master).run("ag.validate")
    finally:
        pillar_file.write_text(good)
    assert check.data["valid"] is False, check.data
    assert any(e.startswith(f"{pillar_file}:3: YAML:") for e in check.data["errors"]), check.data
    assert run_cli(master).run("ag.validate").data["valid"] is True


def test_the_minion_gets_the_custom_modules_and_states(master, minion):
    salt = master.salt_cli(timeout=CLI_TIMEOUT)
    assert salt.run("saltutil.sync_all", minion_tgt=MINION).returncode == 0
    assert salt.run("ag_pillar.validate", minion_tgt=MINION).data == {"valid": True, "errors": []}
    assert "ag_swarm.nodes" in salt.run("sys.list_functions", "ag_swarm", minion_tgt=MINION).data
    top = salt.run("state.show_top", minion_tgt=MINION).data
    assert top == {"base": ["docker", "limits", "nfs", "firewall", "ag.backup", "swarm"]}
    swarm = salt.run("state.show_sls", "swarm.initialized", minion_tgt=MINION).data
    assert "ag_swarm" in swarm["swarm-initialized"]


def test_the_deploy_syncs_the_master_itself(master, minion):
    synced = list(Path(master.config["root_dir"]).glob("**/extmods/*/ag*.py"))
    assert synced
    for module in synced:  # as on a master never synced
        module.unlink()
    rendered = run_cli(master).run("state.orchestrate_show_sls", "ag.deploy").data
    (steps,) = rendered.values()
    assert {"ag-deploy-check", "ag-deploy-migrate"} <= set(steps)
