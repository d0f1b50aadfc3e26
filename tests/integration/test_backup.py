"""Tier 1 (issue 20.3): `salt-run ag.backup` (and backup:schedule) keeps the site's data where
backup:dir says, on the node labelled database, readable by root only and never printed;
onto nodes wiped and deployed again, `salt-run ag.restore` brings back the database (a course
the site made), media_root (a submission) and the secrets dir (the secret key and the GPG key
of the receipts) and rolls the services given them; backup:keep prunes the oldest."""

import json
import time

import pytest
from agdeploy import (
    CHECKOUT,
    COURSES,
    MANAGER,
    STACK,
    apply,
    changed,
    changed_steps,
    deploy,
    deployed_with_bootstrap,
    kept_data,
    services,
    sh,
    task_ids,
    teardown,
    wait_converged,
)

from bed.util import wait_for

pytestmark = pytest.mark.slow

SERVER = f"{CHECKOUT}/autograder-server"
SECRETS = f"{SERVER}/autograder/settings/secrets"
SUBMISSION = f"{SERVER}/media_root/courses/course1/submission-1/hello.py"
COURSE = "EECS 490 (made by the site)"


@pytest.fixture(scope="module")
def bed(netns_bed):
    with deployed_with_bootstrap(netns_bed):
        yield netns_bed


def in_django(bed, *cmd):
    (node,) = services(bed)[f"{STACK}_django"][1]
    container = sh(bed, node, f"docker ps -q -f label=com.docker.swarm.service.name={STACK}_django")
    return bed.exec(node, "docker", "exec", container.split()[0], *cmd).stdout


def courses(bed):
    return sorted(c["name"] for c in json.loads(in_django(bed, "python3", "-c", COURSES)))


def secrets(bed):
    """path → content of the secrets dir's files (read here, compared, never printed)."""
    names = sh(bed, MANAGER, f"cd {SECRETS} && find . -type f").split()
    return {name.removeprefix("./"): sh(bed, MANAGER, f"cat {SECRETS}/{name}") for name in names}


def database_node(bed):
    return next(n for n, spec in bed.pillar["autograder"]["cluster"]["nodes"].items()
                if "database" in spec["labels"])


def test_a_backup_restored_onto_wiped_nodes_brings_the_site_back(bed):
    in_django(bed, "python3", "manage.py", "shell", "-c",
              f"from autograder.core.models import Course; Course.objects.create(name={COURSE!r})")
    nonce = str(time.time_ns())
    sh(bed, MANAGER, f"mkdir -p $(dirname {SUBMISSION}) && echo 'print({nonce})' > {SUBMISSION}")
    before = {"courses": courses(bed), "secrets": secrets(bed)}
    assert COURSE in before["courses"] and {"secret_key", "db_password"} <= set(before["secrets"])

    res = bed.salt_raw("salt-run", "--out=json", "ag.backup")
    taken = json.loads(res.stdout)
    assert res.returncode == 0 and all(size > 0 for size in taken["parts"].values()), res.stdout
    assert not [name for name, value in before["secrets"].items()
                if len(value) >= 16 and value in res.stdout + res.stderr], "a secret was printed"
    where = f"/srv/autograder-backups/{taken['name']}"
    assert sh(bed, database_node(bed), f"stat -c %a {where} {where}/postgres.sql "
                                       f"{where}/files.tar.gz").split() == ["700", "600", "600"]

    # the site lost: no swarm, no volumes (the database), no media_root or secrets dir
    teardown(bed)
    sh(bed, MANAGER, f"rm -rf {SERVER}/media_root {SECRETS}")
    code, _, output = deploy(bed)
    assert code == 0, output
    fresh = secrets(bed)
    assert COURSE not in courses(bed) and fresh["secret_key"] != before["secrets"]["secret_key"]

    before_tasks = task_ids(bed)
    res = bed.salt_raw("salt-run", "--out=json", "ag.restore", f"name={taken['name']}")
    assert res.returncode == 0, res.stdout + res.stderr
    assert json.loads(res.stdout)["stack"], "the restored secrets rolled nothing"
    wait_converged(bed)
    assert courses(bed) == before["courses"]
    assert sh(bed, MANAGER, f"cat {SUBMISSION}") == f"print({nonce})"
    after = secrets(bed)
    assert {k: v for k, v in after.items() if k != "db_password"} == {
        k: v for k, v in before["secrets"].items() if k != "db_password"}
    assert after["db_password"] == fresh["db_password"], "the live database's password changed"
    changed = {s for s in before_tasks if task_ids(bed).get(s) != before_tasks[s]}
    assert f"{STACK}_django" in changed and f"{STACK}_postgres" not in changed
    assert kept_data(bed)["courses"]  # the API answers from the restored database

    code, steps, output = deploy(bed)
    assert code == 0 and not [s for s, v in steps.items() if v["changes"]], output


def test_a_backup_that_is_not_there_is_refused_naming_it_and_keep_prunes(bed):
    res = bed.salt_raw("salt-run", "--out=json", "ag.restore", "name=19990101-000000")
    assert res.returncode != 0 and "no backup 19990101-000000" in res.stdout, res.stdout
    pillar = json.loads(json.dumps(bed.pillar))
    pillar["autograder"]["backup"] = {"keep": 1}
    bed.write_pillar(pillar)
    try:
        names = [json.loads(bed.salt_raw("salt-run", "--out=json", "ag.backup",
                                         f"name=2099010{i}-000000").stdout)["name"]
                 for i in (1, 2)]
        assert sh(bed, database_node(bed), "ls /srv/autograder-backups").split() == [names[1]]
    finally:
        bed.write_pillar(bed.pillar)


def test_the_schedule_makes_backups_on_the_database_node_only_until_it_is_removed(bed):
    """backup:schedule (a cron expression): the node states put ag_app.backup in the database
    node's minion schedule with ag.backup's arguments, and no other node's; a second run
    changes nothing; null takes it off again."""
    database = database_node(bed)
    pillar = json.loads(json.dumps(bed.pillar))
    pillar["autograder"]["backup"] = {"schedule": "* * * * *", "keep": 2}
    bed.write_pillar(pillar)
    try:
        first = apply(bed, "ag.backup")
        assert {n for n, states in first.items() if changed(states)} == {database}
        assert not [n for n, states in apply(bed, "ag.backup").items() if changed(states)]
        before = set(sh(bed, database, "ls /srv/autograder-backups").split())
        made = wait_for(lambda: set(sh(bed, database, "ls /srv/autograder-backups").split())
                        - before, timeout=150, what="a scheduled backup", interval=5)
        (name,) = made
        parts = sh(bed, database, f"cd /srv/autograder-backups/{name} && ls").split()
        assert parts == ["files.tar.gz", "postgres.sql"]
    finally:
        bed.write_pillar(bed.pillar)
    off = apply(bed, "ag.backup")
    assert {n for n, states in off.items() if changed(states)} == {database}
    assert "ag-backup" not in str(bed.salt(database, "schedule.list")[database])


def test_an_upgrade_is_backed_up_before_anything_of_it_is_built(bed):
    """Issue 20.1: the deploy's backup step, right after the checkout: the stack ran another
    revision than the checkout now holds (the record the stack step keeps, set back here as
    an upgrade leaves it), so a backup named '-before-upgrade' is made on the database node;
    then the stack runs this revision and the next deploy backs up nothing. (Tier 1's
    checkout is a copy: made a git repository here, as a site's clone is.)"""
    record = f"/var/lib/ag-deploy/{STACK}.revision"
    sh(bed, MANAGER, f"cd {CHECKOUT} && git init -q && git add -A && git -c user.name=site "
                     "-c user.email=site@example.edu commit -qm 'a site clone'")
    try:
        code, _, output = deploy(bed)  # the stack step records the revision it deployed
        assert code == 0, output
        current = sh(bed, MANAGER, f"cat {record}")
        assert current == sh(bed, MANAGER, f"git -C {CHECKOUT} rev-parse HEAD")
        sh(bed, MANAGER, f"echo {'0' * 40} > {record}")
        code, steps, output = deploy(bed)
    finally:
        sh(bed, MANAGER, f"rm -rf {CHECKOUT}/.git")
    assert code == 0, output
    made = steps["ag-deploy-backup"]["changes"]["backup"]
    assert f"{'0' * 12} -> {current[:12]}" in made and "-before-upgrade" in made, made
    name = made.split()[0]
    where = f"/srv/autograder-backups/{name}"
    assert sh(bed, database_node(bed), f"ls {where}").split() == [
        "files.tar.gz", "postgres.sql", "revision"]
    assert sh(bed, database_node(bed), f"cat {where}/revision") == "0" * 40  # ag.rollback's
    code, steps, output = deploy(bed)  # no git repository: no revision, no upgrade to see
    assert code == 0 and "ag-deploy-backup" not in changed_steps(steps), output
    assert sh(bed, MANAGER, f"test -e {record} || echo gone") == "gone"
