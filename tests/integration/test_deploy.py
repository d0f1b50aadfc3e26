"""Tier 1: `salt-run state.orchestrate ag.deploy` from nodes without a swarm to the stand-in
autograder running where the bed pillar's labels say, migrated and bootstrapped (issue 6). The
tests run in file order on one deploy: re-runs and test=True change nothing, a tweak rolls only
the service it concerns, bad input stops the run before any change; last (issue 7), no secret
is in any output, log, job cache, pillar, service or container spec or pushed image, while
the app runs with them."""

import copy
import hashlib
import io
import json
import re
import secrets
import subprocess
import tarfile
import time

import pytest
import yaml
from agdeploy import (
    CHECKOUT,
    MANAGER,
    OVERRIDE,
    SECRETS,
    STACK,
    assert_migrated_and_bootstrapped_once,
    changed_steps,
    deploy,
    in_checkout,
    kept_data,
    minion_changes,
    placement_errors,
    runner,
    services,
    sh,
    task_ids,
    teardown,
    with_bootstrap,
)

from bed import config, netns
from tests import standin
from tests.extensions import load

# the site's own secret files on the NFS server node (the manager), named by the pillar
SITE_DIR = "/etc/ag-site"
OAUTH_FILE, EMAIL_FILE = f"{SITE_DIR}/oauth2_secrets.json", f"{SITE_DIR}/email_password"
SETTINGS = f"{CHECKOUT}/autograder-server/autograder/settings"


def write_on(node, path, text):
    """A root-only file on `node`, its content through stdin (never in a command line)."""
    res = netns.node_exec(node, ["sh", "-ec", f'umask 077; mkdir -p "$(dirname {path})"; '
                                              f"cat > {path}"], input=text)
    assert res.returncode == 0, res.stderr


@pytest.fixture(scope="module")
def bed(netns_bed):
    """The bed pillar plus a bootstrap, the site's OAuth client secrets and e-mail password
    (random, in files on the manager); the first deploy's result (on nodes without a swarm)
    in bed.first."""
    teardown(netns_bed)
    netns_bed.site_secrets = {
        "oauth client secret": f"oauth-{secrets.token_hex(16)}",
        "e-mail password": f"mail-{secrets.token_hex(16)}",
    }
    write_on(MANAGER, OAUTH_FILE, json.dumps({"web": {
        "client_id": "ag.apps.example.edu",
        "client_secret": netns_bed.site_secrets["oauth client secret"]}}))
    write_on(MANAGER, EMAIL_FILE, netns_bed.site_secrets["e-mail password"] + "\n")
    original = netns_bed.read_pillar()
    pillar = with_bootstrap(original)
    pillar["autograder"]["app"].update(
        oauth={"provider": "google", "secrets_file": OAUTH_FILE},
        email={"host": "smtp.example.edu", "user": "autograder", "password_file": EMAIL_FILE})
    netns_bed.write_pillar(pillar)
    netns_bed.pillar = pillar
    netns_bed.first = deploy(netns_bed)
    yield netns_bed
    netns_bed.write_pillar(original)
    teardown(netns_bed)
    sh(netns_bed, MANAGER, f"rm -rf {SITE_DIR} {SETTINGS}/oauth2_secrets.json "
                           f"{SETTINGS}/secrets/email_host_password")


def test_deploy_runs_every_service_where_its_label_is(bed):
    code, steps, output = bed.first
    assert code == 0, output
    assert all(v["result"] is True for v in steps.values()), output
    assert list(steps)[-1] == "ag-deploy-migrate"
    found = services(bed)
    assert f"{STACK}_django" in found and f"{STACK}_grader" in found and "registry" not in found
    assert placement_errors(bed, bed.pillar) == []


def test_migrations_and_bootstrap_ran_on_the_django_node(bed):
    _, steps, output = bed.first
    assert_migrated_and_bootstrapped_once(bed, steps, output)


def test_second_deploy_changes_nothing_and_restarts_no_task(bed):
    before = task_ids(bed)
    code, steps, output = deploy(bed)
    assert code == 0, output
    assert changed_steps(steps) == set(), output
    assert task_ids(bed) == before


def test_a_deploy_can_be_followed_step_by_step(bed):
    """`salt-run ag.deploy` runs the same orchestration and prints each step as it starts on
    its nodes and as each node ends it (issue 18.9)."""
    code, steps, output = deploy(bed, follow=True)
    assert code == 0 and changed_steps(steps) == set(), output
    # nothing to do: the check alone, each node testing every step it has in one job
    assert list(steps) == ["ag-deploy-check"], output
    assert steps["ag-deploy-check"]["comment"].startswith("every step checked, nothing to change")
    workers = sorted(set(bed.nodes) - {MANAGER})
    for sls, nodes in (("docker,limits,nfs,firewall,ag.backup,swarm,ag.tls,ag.checkout", [MANAGER]),
                       ("docker,limits,nfs,firewall,ag.backup,swarm", workers)):
        assert re.search(rf"\d\d:\d\d:\d\d check \(test=True\) of {re.escape(sls)}\S*: started on "
                         rf"{', '.join(nodes)}\n", output), output
        for node in nodes:
            assert re.search(rf"{re.escape(sls)}\S*: {node} done in \d+s \(0 would change\)",
                             output), output


def test_test_mode_changes_nothing_when_nothing_is_to_do(bed):
    before = task_ids(bed)
    code, steps, output = deploy(bed, "test=True")
    assert code == 0, output
    assert all(v["result"] in (True, None) for v in steps.values()), output
    assert changed_steps(steps) == set(), output
    assert task_ids(bed) == before


def test_a_tweak_is_planned_truthfully_then_rolls_only_its_service(bed):
    pillar = copy.deepcopy(bed.pillar)
    pillar["autograder"]["app"]["gunicorn_workers"] = 2
    bed.write_pillar(pillar)
    try:
        before = task_ids(bed)
        override = sh(bed, MANAGER, f"cat {OVERRIDE}")
        code, steps, output = deploy(bed, "test=True")
        assert code == 0, output
        assert changed_steps(steps) == {"ag-deploy-stack"}, output
        assert sh(bed, MANAGER, f"cat {OVERRIDE}") == override
        assert task_ids(bed) == before
        plan = runner(bed, "ag.plan")
        assert f"stack: {MANAGER} ag-stack-deployed: stack {STACK} would be deployed" in plan, plan
        assert "images: no change" in plan and "tweaks: no change" in plan, plan

        code, steps, output = deploy(bed)
        assert code == 0, output
        assert "--workers=2" in sh(bed, MANAGER, f"cat {OVERRIDE}")
        after = task_ids(bed)
        rolled = {s for s in before if after.get(s) != before[s]}
        assert rolled == {f"{STACK}_django"}, rolled
    finally:
        bed.write_pillar(bed.pillar)
        code, _, output = deploy(bed)
        assert code == 0, output


def test_a_changed_source_file_rebuilds_and_rolls_only_its_image(bed):
    before = task_ids(bed)
    with in_checkout(bed, f"{CHECKOUT}/ag-website-vue/src/ag-test-change.ts",
                     "export const CHANGED = 1;") as redeployed:
        code, steps, output = deploy(bed)
        assert code == 0, output
        built = minion_changes(steps["ag-deploy-images"])[(MANAGER, "ag-images")]
        assert set(built) == {"127.0.0.1:5000/website"}, output
        after = task_ids(bed)
        assert {s for s in before if after.get(s) != before[s]} == {f"{STACK}_website"}
    code, steps, output = redeployed
    # back to the first content: its image is still in the registry, nothing is built
    assert code == 0 and "ag-deploy-images" not in changed_steps(steps), output


def test_a_new_release_s_migrations_run_before_any_service_rolls(bed):
    """Issue 20.1: a release with a new migration: applied by a one-off task of the new django
    image, on the stack's network, before the stack rolls (ag.migrate after it finds none
    left), while no celery worker runs (paused, resumed by the deploy); the one-off is gone
    after."""
    before = task_ids(bed)
    with in_checkout(bed, f"{CHECKOUT}/autograder-server/autograder/core/migrations/"
                          "0099_ag_release.py",
                     'operations = ["CREATE TABLE ag_release (id INTEGER)"]') as redeployed:
        since = time.time()
        code, steps, output = deploy(bed)
        assert code == 0, output
        stack = minion_changes(steps["ag-deploy-stack"])[(MANAGER, "ag-stack-deployed")]
        assert stack["migrations"] == {"new": ["core.0099_ag_release"]}, output
        paused = stack["paused"]["new"]
        assert f"{STACK}_grader" in paused and f"{STACK}_django" not in paused, paused
        lives = container_lives(bed, since)
        ((migrate_start, migrate_end),) = lives[f"{STACK}_migrate"]
        overlapping = [(service, life) for service in paused for life in lives.get(service, [])
                       if life[0] < migrate_end and life[1] > migrate_start]
        assert overlapping == [], "a celery worker ran while the migrations did"
        resumed = {service for service in paused
                   if any(start > migrate_end for start, _ in lives.get(service, []))}
        assert resumed == set(paused) & after_deploy(bed), "the deploy resumed no worker"
        assert f"{STACK}_grader" in resumed
        assert "ag-deploy-migrate" not in changed_steps(steps), output
        assert f"{STACK}_migrate" not in sh(bed, MANAGER, "docker service ls --format '{{.Name}}'")
        after = task_ids(bed)
        assert f"{STACK}_django" in {s for s in before if after.get(s) != before[s]}
    code, _, output = redeployed
    assert code == 0, output


def container_lives(bed, since) -> dict:
    """service → [(start, end)] of its containers on every node since `since` (end: now for
    one still running), from the engines' events."""
    starts, lives = {}, {}
    for node in bed.nodes:
        events = sh(bed, node, f"docker events --since {since:.3f} --until {time.time():.3f} "
                               "--filter type=container --filter event=start --filter event=die "
                               "--format '{{.TimeNano}} {{.Action}} {{.ID}} "
                               "{{index .Actor.Attributes \"com.docker.swarm.service.name\"}}'")
        for line in events.splitlines():
            stamp, action, container, service = (line.split() + [""])[:4]
            if action == "start":
                starts[container] = (service, int(stamp) / 1e9)
            elif container in starts:
                service, start = starts.pop(container)
                lives.setdefault(service, []).append((start, int(stamp) / 1e9))
    for service, start in starts.values():
        lives.setdefault(service, []).append((start, float("inf")))
    return lives


def after_deploy(bed) -> set:
    """The stack's services that run a task now."""
    return {service for service, ids in task_ids(bed).items() if ids}


def test_a_rotated_e_mail_password_rolls_exactly_the_services_that_read_the_secrets(bed):
    """Issue 20.6: the site's new e-mail password reaches the running app: the secrets step
    copies it, the deploy gives it as a new swarm secret (named by content) to the services
    that read the secrets, which roll, no other, and removes the old one; the password is in
    no output."""
    before = task_ids(bed)
    secrets_before = stack_secrets(bed)
    old, new = bed.site_secrets["e-mail password"], f"mail-{secrets.token_hex(16)}"
    write_on(MANAGER, EMAIL_FILE, new + "\n")
    try:
        code, steps, output = deploy(bed)
        assert code == 0, output
        assert new not in output and old not in output
        assert sh(bed, MANAGER, f"cat {SETTINGS}/secrets/email_host_password") == new
        after = task_ids(bed)
        rolled = {s for s in before if after.get(s) != before[s]}
        assert {f"{STACK}_django", f"{STACK}_grader"} <= rolled, rolled
        assert not rolled & {f"{STACK}_{s}" for s in ("nginx", "postgres", "redis", "website")}
        secrets_after = stack_secrets(bed)
        assert len(secrets_after - secrets_before) == 1 == len(secrets_before - secrets_after)
    finally:
        write_on(MANAGER, EMAIL_FILE, old + "\n")
        code, _, output = deploy(bed)
    assert code == 0, output


def stack_secrets(bed) -> set:
    return set(sh(bed, MANAGER, f"docker secret ls -q --filter label=com.docker.stack.namespace={STACK}"
                  ).split())


def test_the_app_signs_receipts_in_its_writable_gpg_home(bed):
    """Issue 17.8: the secrets dir is the app's GPG home, and gpg writes there as it signs
    (locks, its agent's socket): each secret file is given read-only at its own path, the
    dir stays writable, and a receipt is signed and verified as the real app does."""
    container = sh(bed, MANAGER, f"docker ps -q -f label=com.docker.swarm.service.name={STACK}_django")
    home = "/usr/src/app/autograder/settings/secrets"
    sh(bed, MANAGER, f"docker exec {container} sh -c 'touch {home}/probe && rm {home}/probe'")
    assert "Read-only" in bed.exec(MANAGER, "docker", "exec", container, "sh", "-c",
                                   f"echo x > {home}/secret_key", check=False).stderr
    receipt = ("import base64; from autograder.core.submission_email_receipts import sign_email, "
               "check_signature; signed = sign_email('receipt 42'); print('AG', bool(signed), "
               "check_signature(base64.urlsafe_b64encode(signed.encode()))[0])")
    out = sh(bed, MANAGER, f'docker exec {container} python3 manage.py shell -c "{receipt}"')
    assert "AG True True" in out, out


def test_a_renewed_certificate_is_reloaded_by_nginx_without_a_restart(bed):
    """Issue 20.6: a site renews its TLS certificate on the webserver node; the deploy's TLS
    step has the nginx task there reload it (`nginx -s reload`: the same task, no restart),
    and a second deploy changes nothing."""
    cert, key = "/etc/ssl/certs/autograder.io.cert", "/etc/ssl/private/autograder.io.key.pem"
    (node,) = services(bed)[f"{STACK}_nginx"][1]
    nginx = sh(bed, node, f"docker ps -q -f label=com.docker.swarm.service.name={STACK}_nginx")
    before = task_ids(bed)
    sh(bed, node, f"cp {cert} {cert}.kept && cp {key} {key}.kept && openssl req -x509 "
                  f"-newkey rsa:2048 -nodes -subj /CN=renewed.example.edu -days 2 "
                  f"-keyout {key} -out {cert} 2>/dev/null")
    try:
        code, steps, output = deploy(bed)
        assert code == 0, output
        assert minion_changes(steps["ag-deploy-tls"])[(node, "ag-tls-loaded")]["tls"], output
        served = sh(bed, node, f"docker exec {nginx} cat /var/www/tls")
        assert served == sh(bed, node, f"cat {cert} {key} | sha256sum | cut -d' ' -f1")
        assert task_ids(bed) == before, "a task restarted"
        code, steps, output = deploy(bed)
        assert code == 0 and changed_steps(steps) == set(), output
    finally:
        sh(bed, node, f"mv {cert}.kept {cert} && mv {key}.kept {key}")
        code, _, output = deploy(bed)
    assert code == 0, output


def test_convergence_timeout_names_the_unconverged_service_and_its_error(bed):
    pillar = copy.deepcopy(bed.pillar)
    # a site's compose file naming an image no node has or can pull: its tasks are rejected
    pillar["autograder"]["app"]["extra_compose_files"] += ["docker-compose.broken.yml"]
    pillar["autograder"]["app"]["converge_timeout"] = 20
    sh(bed, MANAGER, f"echo '{{version: \"3.7\", services: {{redis: {{image: \"redis:99\"}}}}}}' "
                     f"> {CHECKOUT}/docker-compose.broken.yml")
    bed.write_pillar(pillar)
    try:
        code, steps, output = deploy(bed)
    finally:
        bed.write_pillar(bed.pillar)
        sh(bed, MANAGER, f"rm {CHECKOUT}/docker-compose.broken.yml")
        restored, _, restore_output = deploy(bed)
    assert code != 0 and steps["ag-deploy-stack"]["result"] is False, output
    assert "ag-deploy-migrate" not in steps or steps["ag-deploy-migrate"]["result"] is False
    # its tasks keep being rejected: a crash loop, told apart from a slow start, or 20 s in
    # which the stack got no further, whichever comes first; either names each task's error
    assert re.search(f"stack {STACK} did not converge: (every service not running keeps "
                     "failing|it got no further for 20s)", output), output
    assert f"{STACK}_redis: 0/1 running" in output, output
    assert re.search(r"task \w{12} on nuc1: rejected \d+s ago, [^\n]*redis:99", output), output
    assert restored == 0, restore_output


def test_a_service_the_compose_files_no_longer_name_is_removed(bed):
    """Issue 20.5: a release may drop a service (2022.01.v1 dropped 2021.05.v4's apidocs): the
    deploy removes it from the stack, not leaves it running the old release's image."""
    pillar = copy.deepcopy(bed.pillar)
    pillar["autograder"]["app"]["extra_compose_files"] += ["docker-compose.extra.yml"]
    sh(bed, MANAGER, "echo '{version: \"3.7\", services: {extra: {image: \"agbed/busybox:latest\", "
                     "command: [sleep, \"1d\"]}}}' > " f"{CHECKOUT}/docker-compose.extra.yml")
    bed.write_pillar(pillar)
    try:
        code, _, output = deploy(bed)
        assert code == 0, output
        assert f"{STACK}_extra" in services(bed)
    finally:
        bed.write_pillar(bed.pillar)
        sh(bed, MANAGER, f"rm {CHECKOUT}/docker-compose.extra.yml")
    code, _, output = deploy(bed)
    assert code == 0, output
    assert f"{STACK}_extra" not in services(bed)


def test_a_new_postgres_major_version_is_refused_naming_the_steps(bed):
    """Issue 20.3: a new major version never starts on the old one's data files: the stack
    step refuses it before any change and says how to move by dump and restore."""
    before = task_ids(bed)
    pillar = copy.deepcopy(bed.pillar)
    pillar["autograder"]["app"]["postgres_version"] = "14"
    bed.write_pillar(pillar)
    try:
        code, steps, output = deploy(bed)
    finally:
        bed.write_pillar(bed.pillar)
    assert code != 0 and steps["ag-deploy-stack"]["result"] is False, output
    assert "postgres would move from major version 9.5 to 14" in output, output
    assert f"docker volume rm {STACK}_pgdata" in output and "salt-run ag.restore" in output
    assert task_ids(bed) == before


def test_status_shows_nodes_labels_and_where_services_run(bed):
    table = runner(bed, "ag.status")
    rows = {line.split()[0]: line.split() for line in table.splitlines() if line.strip()}
    for node, spec in bed.pillar["autograder"]["cluster"]["nodes"].items():
        assert rows[node][4] == ",".join(sorted(spec["labels"])), table
    assert rows["nuc1"][1:4] == ["manager", "active", "ready"], table
    assert rows["django"][1:4] == ["1/1", "yes", "nuc1"], table
    assert rows["grader"][3] == "nuc2" and rows["tiny_grader"][1] == "0/0", table


def test_plan_says_nothing_would_change(bed):
    plan = runner(bed, "ag.plan").splitlines()
    assert plan[0].startswith("every step checked, nothing to change: roll, node-states"), plan
    assert plan[0].endswith(", stack, migrate") and len(plan) == 1, plan


def test_bad_pillar_stops_before_any_change(bed):
    before = task_ids(bed)
    pillar = copy.deepcopy(bed.pillar)
    pillar["autograder"]["cluster"]["nodes"]["nuc2"]["labels"].append("database")
    bed.write_pillar(pillar)
    try:
        code, steps, output = deploy(bed)
    finally:
        bed.write_pillar(bed.pillar)
    assert code != 0 and steps == {}, output
    assert "database" in output and "nuc2" in output and "nothing was changed" in output
    assert task_ids(bed) == before


def test_missing_tls_key_stops_the_deploy_naming_node_and_file(bed):
    key = bed.pillar["autograder"]["app"].get("tls_key", "/etc/ssl/private/autograder.io.key.pem")
    sh(bed, MANAGER, f"mv {key} {key}.aside")
    try:
        code, steps, output = deploy(bed)
    finally:
        sh(bed, MANAGER, f"mv {key}.aside {key}")
    assert code != 0, output
    assert steps["ag-deploy-tls"]["result"] is False
    assert f"no TLS key at {key} on {MANAGER}" in output
    assert "ag-deploy-stack" not in steps or steps["ag-deploy-stack"]["result"] is False


# --- issue 7: secrets kept ------------------------------------------------------------------

class Secrets(dict):
    """name → value; its repr names them only, so no failing test prints a value."""

    def __repr__(self):
        return f"Secrets({', '.join(self)})"


@pytest.fixture(scope="module")
def secret_values(bed):
    """name → value of every secret the deployed app has: generated by upstream's
    generate_secrets.py and the deploy, and the site's (from their copies in the checkout)."""
    found = Secrets((name, sh(bed, MANAGER, f"cat {SECRETS}/{name}"))
                    for name in ("db_password", "secret_key", "gpg_key_password",
                                 "email_host_password"))
    oauth = json.loads(sh(bed, MANAGER, f"cat {SETTINGS}/oauth2_secrets.json"))
    found["oauth client secret"] = oauth["web"]["client_secret"]
    assert found["oauth client secret"] == bed.site_secrets["oauth client secret"]
    assert found["email_host_password"] == bed.site_secrets["e-mail password"]
    assert all(len(value) >= 16 for value in found.values())
    return found


def leaked(values, text):
    """The names (never the values) of the secrets in `text` (str or bytes)."""
    if isinstance(text, bytes):
        return sorted(name for name, value in values.items() if value.encode() in text)
    return sorted(name for name, value in values.items() if value in text)


def test_the_leak_check_finds_a_secret_where_it_is(secret_values):
    assert leaked(secret_values, "x" + secret_values["db_password"] + "x") == ["db_password"]
    assert leaked(secret_values, secret_values["gpg_key_password"].encode()) == ["gpg_key_password"]


def test_no_password_in_env_file_or_spec_and_the_app_reads_them(bed, secret_values):
    env = sh(bed, MANAGER, f"cat {CHECKOUT}/autograder-server/_prod.env")
    assert "\nAG_DB_PASSWORD=\n" in env and "\n# EMAIL_HOST_PASSWORD=\n" in env
    specs = {s["Spec"]["Name"]: s["Spec"]["TaskTemplate"]["ContainerSpec"] for s in json.loads(
        sh(bed, MANAGER, "docker service inspect $(docker service ls -q)"))}
    postgres = specs[f"{STACK}_postgres"]
    # upstream's 'postgres' blanked, the image reads the mounted file instead
    assert {"POSTGRES_PASSWORD=", "POSTGRES_PASSWORD_FILE=/run/secrets/db_password"} \
        <= set(postgres["Env"])
    assert [g["File"]["Name"] for g in postgres["Secrets"]] == ["db_password"]
    django = specs[f"{STACK}_django"]
    assert "AG_DB_PASSWORD=" in django["Env"]
    assert not [e for e in django["Env"] if e.startswith("EMAIL_HOST_PASSWORD=")]
    # the app authenticates with the generated password (the first deploy migrated through
    # it) and has the e-mail password, read from the secrets given as swarm secrets
    container = sh(bed, MANAGER, f"docker ps -q -f label=com.docker.swarm.service.name={STACK}_django")
    check = ("from django.conf import settings; import hashlib; print('AG', *(hashlib.sha256("
             "v.encode()).hexdigest() for v in (settings.DATABASES['default']['PASSWORD'], "
             "settings.EMAIL_HOST_PASSWORD, settings.SECRET_KEY)))")
    out = sh(bed, MANAGER, f'docker exec {container} python3 manage.py shell -c "{check}"')
    digests = [line for line in out.splitlines() if line.startswith("AG ")][-1].split()[1:]
    assert digests == [hashlib.sha256(secret_values[n].encode()).hexdigest()
                       for n in ("db_password", "email_host_password", "secret_key")]


def test_a_database_made_with_another_password_takes_the_generated_one(bed, secret_values):
    """Issue 20.5: a site that adopts the product has a database made with upstream's
    'postgres', which a new POSTGRES_PASSWORD_FILE does not change: the deploy sets the
    generated password in the running database before the stack rolls, and the app answers
    from it; nothing printed holds the password, and the next deploy changes nothing."""
    (node,) = services(bed)[f"{STACK}_postgres"][1]
    container = sh(bed, node, f"docker ps -q -f label=com.docker.swarm.service.name={STACK}_postgres")
    bed.exec(node, "docker", "exec", container, "sh", "-c",
             "echo \"ALTER ROLE CURRENT_USER PASSWORD 'postgres';\" > /tmp/old.sql && "
             "psql -q -f /tmp/old.sql -U postgres postgres && rm /tmp/old.sql")
    code, steps, output = deploy(bed)
    assert code == 0, output
    assert list(minion_changes(steps["ag-deploy-database"])) == [(node, "ag-database-password")]
    assert "ag-deploy-stack" not in changed_steps(steps)  # the app itself did not change
    assert not leaked(secret_values, output)
    assert kept_data(bed)["courses"] is not None  # django reads the database with it
    code, steps, output = deploy(bed)
    assert code == 0 and not changed_steps(steps), output


def test_no_secret_in_deploy_outputs_or_pillar(bed, secret_values):
    code, _, planned = deploy(bed, "test=True")
    assert code == 0, "the test=True deploy failed"
    pillar = bed.salt_raw("salt", "--out=json", "--static", "*", "pillar.items")
    # the site's pillar (salt masks its values in this output; its keys show)
    assert '"password_file"' in pillar.stdout and '"secrets_file"' in pillar.stdout
    plan = runner(bed, "ag.plan")
    for what, text in (("deploy", bed.first[2]), ("test=True deploy", planned),
                       ("ag.plan", plan), ("pillar.items", pillar.stdout + pillar.stderr)):
        assert leaked(secret_values, text) == [], what


def test_no_secret_in_the_job_cache_or_any_salt_log(bed, secret_values):
    master = config.MASTER_DIR
    jobs = [p for p in (master / "var/cache/salt/master/jobs").rglob("*") if p.is_file()]
    assert len(jobs) > 10  # the deploys' returns are there
    for path in jobs + [master / "var/log/salt/master"]:
        assert leaked(secret_values, path.read_bytes()) == [], path
    for node in bed.nodes:
        log = netns.node_exec(node, ["cat", "/var/log/salt/minion"])
        assert log.returncode == 0, f"{node} has no minion log"
        assert leaked(secret_values, log.stdout) == [], f"/var/log/salt/minion on {node}"


def test_no_secret_in_any_service_or_container_spec(bed, secret_values):
    services = sh(bed, MANAGER, "docker service ls -q").split()
    assert len(services) > 10
    assert leaked(secret_values, sh(bed, MANAGER, "docker service inspect " + " ".join(services))) == []
    for node in bed.nodes:
        containers = sh(bed, node, "docker ps -aq").split()
        assert containers, f"no container on {node}"
        spec = sh(bed, node, "docker inspect " + " ".join(containers))
        assert leaked(secret_values, spec) == [], f"docker inspect on {node}"


def registry_images(bed):
    """Every repository:tag in the stack's registry (127.0.0.1:5000 on the manager)."""
    script = ("import json, urllib.request as u\n"
              "get = lambda p: json.load(u.urlopen('http://127.0.0.1:5000/v2/' + p, timeout=10))\n"
              "print(json.dumps([r + ':' + t for r in get('_catalog?n=1000')['repositories']\n"
              "                  for t in get(r + '/tags/list')['tags'] or []]))")
    return json.loads(bed.exec(MANAGER, "python3", "-c", script).stdout)


def test_no_secret_and_no_secret_file_in_any_pushed_image(bed, secret_values):
    images = ["127.0.0.1:5000/" + image for image in registry_images(bed)]
    for built in ("django", "grader", "celerybeat", "website"):
        assert f"127.0.0.1:5000/{built}:latest" in images
    sh(bed, MANAGER, "for i in " + " ".join(images) + "; do docker pull -q $i >/dev/null; done")
    # one `docker save` of them all (each layer once), read as it streams: every file of
    # every layer, and the image configs (Env, history)
    save = subprocess.Popen(netns.enter(MANAGER) + ["docker", "save", *images],
                            stdout=subprocess.PIPE)
    members, found = set(), {}
    with tarfile.open(fileobj=save.stdout, mode="r|") as outer:
        for entry in outer:
            if not entry.isfile():
                continue
            data = outer.extractfile(entry).read()
            if entry.name.endswith("layer.tar"):
                with tarfile.open(fileobj=io.BytesIO(data)) as layer:
                    for file in layer:
                        members.add(file.name)
                        if file.isfile():
                            for name in leaked(secret_values, layer.extractfile(file).read()):
                                found.setdefault(name, set()).add(f"{entry.name}:{file.name}")
            else:
                for name in leaked(secret_values, data):
                    found.setdefault(name, set()).add(entry.name)
    assert save.wait() == 0, "docker save failed"
    assert "usr/src/app/manage.py" in members  # the server's layers were read
    assert found == {}
    assert sorted(m for m in members if "autograder/settings/secrets" in m
                  or m.endswith("oauth2_secrets.json")) == []


# What the product puts into a build context beside upstream's files: nothing. Its
# edits (ag.tweaks) change tracked files in place; its secrets and the site's secret files
# are in the checkout but kept out by .dockerignore; file.replace's .bak copies are never made.
PRODUCT_FILES_IN_CONTEXTS = set()
# builds a context as image_build_push does (the docker SDK, the context's .dockerignore),
# with a Dockerfile of the test's own (outside the context) that lists what arrived
CONTEXT_LISTING = """
import json, sys, docker
client = docker.DockerClient(base_url="unix:///run/docker.sock")
probe, listed = sys.argv[1], {}
for context in sys.argv[2:]:
    image, _ = client.images.build(path=context, dockerfile=probe, rm=True)
    listed[context] = client.containers.run(image.id, remove=True).decode().splitlines()
    client.images.remove(image.id)
print(json.dumps(listed))
"""
PROBE_DOCKERFILE = 'FROM agbed/busybox\nCOPY . /context\nCMD ["find", "/context", "!", "-type", "d"]\n'


def test_every_build_context_holds_upstream_s_files_and_nothing_else(bed):
    compose = yaml.safe_load(sh(bed, MANAGER, f"cat {CHECKOUT}/docker-compose.yml"))
    contexts = sorted({context for context, *_ in load("_utils/ag_compose.py", "ag_compose")
                      .builds(compose)})
    # upstream's files: here the stand-in's, which the bed writes into the checkout
    upstream = {str(path.relative_to(standin.TEMPLATE)) for path in standin.TEMPLATE.rglob("*")
                if path.is_file() and "__pycache__" not in path.parts}
    write_on(MANAGER, "/tmp/ag-context-probe/Dockerfile", PROBE_DOCKERFILE)
    listed = json.loads(bed.exec(MANAGER, str(config.SALT_BIN / "python"), "-c", CONTEXT_LISTING,
                                 "/tmp/ag-context-probe/Dockerfile",
                                 *[f"{CHECKOUT}/{context}" for context in contexts]).stdout)
    received = {f"{context}/{path.removeprefix('/context/')}"
                for context in contexts for path in listed[f"{CHECKOUT}/{context}"]
                if not path.startswith("/context/.dockerfile.")}  # the probe, as the SDK names it
    assert "autograder-server/manage.py" in received  # the listing lists
    assert received - upstream == PRODUCT_FILES_IN_CONTEXTS
