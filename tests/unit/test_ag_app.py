"""The decisions of _states/ag_app.py without Salt or Docker (`converged` has its own file):
whether stack_deployed deploys, what migrated and bootstrapped read from manage.py's output.
The ag_app execution module is faked from its real signatures; the checkout is the stand-in
one, read only."""

import hashlib
import os

import pytest
import yaml
from salt.exceptions import CommandExecutionError

from bed.config import REPO
from tests.extensions import load, module_fakes

ag_compose = load("_utils/ag_compose.py", "ag_compose")
CHECKOUT = REPO / "tests/standin/autograder-full-stack"
SERVICES = set(yaml.safe_load((CHECKOUT / "docker-compose.yml").read_text())["services"])
CONCURRENCY = {"celery_small_tasks": 4, "celery_project_downloads": 2, "celerybeat": 1}
WORKERS = {name for name, service in yaml.safe_load(
    (CHECKOUT / "docker-compose.yml").read_text())["services"].items()
    if "celery" in str(service.get("command")) and "worker" in str(service.get("command"))}


class Docker:
    """What the ag_app states see through the ag_app execution module: the registry's images,
    the stack's services, the deploys it asked for, and what manage.py prints in this node's
    django task."""

    def __init__(self):
        self.unpushed = set()  # image names the registry lacks (at any tag)
        self.services = set(SERVICES)
        self.deploys = []
        self.builds = []
        self.not_created = set()  # services a stack deploy leaves out
        self.manage = None  # manage.py's result: {"retcode", "stdout", "stderr"}, None: no task
        self.commands = []
        self.release = "r1"  # what the registry's images are built from
        self.django = None  # the image the django service runs (None: no service yet)
        self.job = {"retcode": 0, "node": "nuc2", "output": "  Applying core.0042_y... OK\n"}
        self.workers_hang = False
        self.postgres = "postgres:9.5"  # what the stack's postgres service runs
        self.nginx_here = True  # a task of the nginx service runs on this node
        self.log = []  # the jobs and the deploys, in order
        self.db_password = "postgres"  # what this node's database takes (None: no task here)
        self.db_refuses_change = False

    def service_list(self):  # ag_app.services
        if not self.django:
            return []
        return [{"name": "ag-stack_django", "image": self.django},
                {"name": "ag-stack_postgres", "image": self.postgres}]

    def job_like(self, service, name, image, cmd, timeout=3600):
        self.log.append(("job", service, name, image, cmd))
        return dict(self.job)

    def image_digest(self, reference):
        if reference.rsplit(":", 1)[0] in self.unpushed:
            return None
        return "sha256:" + hashlib.sha256((reference + self.release).encode()).hexdigest()

    def stack_status(self, name, settle=5):
        return {service: {} for service in self.services}

    def image_build_push(self, path, dockerfile, tags, buildargs=None):
        self.builds.append((path, dockerfile) + ((buildargs,) if buildargs else ()))
        self.unpushed -= {tag.rsplit(":", 1)[0] for tag in tags}
        return {tag: self.image_digest(tag) for tag in tags}

    def stack_deploy(self, name, compose_files, cwd):
        self.deploys.append(compose_files)
        self.log.append(("deploy",))
        self.services = set(SERVICES) - self.not_created
        with open(compose_files[-1]) as fh:  # the image pins
            self.django = yaml.safe_load(fh)["services"]["django"]["image"]

    def stack_secrets_pruned(self, name):
        return []

    def services_paused(self, names, timeout):
        self.log.append(("paused", tuple(names), timeout))
        if self.workers_hang:
            raise CommandExecutionError(f"2 of the services paused still run a task after {timeout} s")
        return list(names)

    def services_resumed(self, names):
        self.log.append(("resumed", tuple(names)))
        return list(names)

    def local_task_password_works(self, service, password_file):
        with open(password_file) as fh:
            password = fh.read().strip()
        return None if self.db_password is None else password == self.db_password

    def local_task_password_set(self, service, password_file):
        self.log.append(("password set", service, password_file))
        if not self.db_refuses_change:
            with open(password_file) as fh:
                self.db_password = fh.read().strip()

    def local_task_exec(self, service, cmd):
        if service.endswith("_nginx") and not self.nginx_here:
            return None  # no task of it on this node: nothing ran
        self.commands.append(cmd)
        return self.manage


@pytest.fixture
def docker():
    return Docker()


@pytest.fixture
def ag_app(docker, tmp_path, monkeypatch):
    """ag_app with the dunders Salt's loader puts in; `ag_app.test(True)` sets test mode."""
    module = load("_states/ag_app.py", "ag_app")
    module.__salt__ = module_fakes({
        **{f"ag_app.{name}": getattr(docker, name) for name in (
            "image_digest", "image_build_push", "stack_status", "stack_deploy", "local_task_exec",
            "job_like", "stack_secrets_pruned", "services_paused", "services_resumed",
            "local_task_password_works", "local_task_password_set")},
        "ag_app.services": docker.service_list,
        "ag_app.local_task_running": lambda service: docker.nginx_here})
    module.__salt__["git.revision"] = lambda checkout: f"commit-of-{docker.release}"  # Salt's
    module.__utils__ = {f"ag_compose.{f}": getattr(ag_compose, f)
                        for f in ("checkout_override", "builds", "context_hash", "pinned",
                                  "celery_workers", "build_variables")}
    module.__opts__ = {"test": False}
    module.__grains__ = {"id": "nuc1"}
    module.test = lambda on: module.__opts__.update(test=on)
    monkeypatch.setattr(module, "DEPLOYED_DIR", str(tmp_path / "deployed"))
    return module


def deploy(ag_app, workers=4, postgres_version=None):
    return ag_app.stack_deployed("ag-stack", str(CHECKOUT), ["docker-compose.yml"], workers,
                                 CONCURRENCY, postgres_version, worker_stop_grace_period=300)


def output(stdout, retcode=0, stderr=""):
    return {"retcode": retcode, "stdout": stdout, "stderr": stderr}


# --- images_pushed ---------------------------------------------------------------------------


def test_only_the_unpushed_context_is_built_then_nothing(ag_app, docker):
    docker.unpushed.add("127.0.0.1:5000/nginx")
    ret = ag_app.images_pushed(str(CHECKOUT))
    assert ret["result"] is True and list(ret["changes"]) == ["127.0.0.1:5000/nginx"]
    assert docker.builds == [(str(CHECKOUT / "nginx/production"), "Dockerfile")]
    assert ag_app.images_pushed(str(CHECKOUT))["changes"] == {}


def test_a_release_that_builds_postgres_gets_the_version_as_its_build_arg(ag_app, docker, tmp_path):
    """2025.08: postgres built with AG_POSTGRES_VERSION; app:postgres_version is passed, and
    another version is another build (its own content tag)."""
    (tmp_path / "postgres").mkdir()
    (tmp_path / "postgres/Dockerfile").write_text("ARG AG_POSTGRES_VERSION\n"
                                                  "FROM postgres:${AG_POSTGRES_VERSION}\n")
    (tmp_path / "docker-compose.yml").write_text(yaml.safe_dump({"services": {"postgres": {
        "image": "127.0.0.1:5000/postgres", "build": {"context": "./postgres", "args": {
            "AG_POSTGRES_VERSION": "${AG_POSTGRES_VERSION:-NOT_SET}"}}}}}))
    docker.unpushed.add("127.0.0.1:5000/postgres")
    fourteen = ag_app.images_pushed(str(tmp_path), postgres_version="14")
    assert docker.builds == [(str(tmp_path / "postgres"), "Dockerfile", {"AG_POSTGRES_VERSION": "14"})]
    docker.unpushed.add("127.0.0.1:5000/postgres")
    fifteen = ag_app.images_pushed(str(tmp_path), postgres_version="15")
    assert fourteen["changes"] != fifteen["changes"]  # another content tag


def test_a_push_the_registry_reads_back_otherwise_fails_naming_it(ag_app, docker, monkeypatch):
    docker.unpushed.add("127.0.0.1:5000/nginx")
    push = docker.image_build_push
    monkeypatch.setattr(docker, "image_build_push",
                        lambda *args: {tag: "sha256:other" for tag in push(*args)})
    ag_app.__salt__["ag_app.image_build_push"].side_effect = docker.image_build_push
    ret = ag_app.images_pushed(str(CHECKOUT))
    assert ret["result"] is False
    assert ret["comment"].startswith("pushed, but the registry reads back otherwise: "
                                     "127.0.0.1:5000/nginx:")


# --- stack_deployed -------------------------------------------------------------------------


def test_first_deploy_then_the_same_content_deploys_nothing(ag_app, docker):
    first = deploy(ag_app)
    assert first["result"] is True and first["comment"] == "stack ag-stack deployed"
    assert first["changes"]["content"]["old"] is None
    [files] = docker.deploys
    assert files[0] == "docker-compose.yml" and files[1].endswith("ag-stack.override.yml")
    again = deploy(ag_app)
    assert again == {"name": "ag-stack", "result": True, "changes": {},
                     "comment": "stack ag-stack runs this content already"}
    assert len(docker.deploys) == 1


def test_a_revision_record_the_checkout_no_longer_matches_is_a_change_test_mode_reports(ag_app, docker):
    """The stack's content unchanged, but its revision record stale (the checkout is no git
    repository now): the deploy's check must see it, so test mode says so."""
    deploy(ag_app)
    record = os.path.join(ag_app.DEPLOYED_DIR, "ag-stack.revision")
    with open(record, "w") as fh:
        fh.write("0" * 40 + "\n")
    ag_app.test(True)
    ret = deploy(ag_app)
    assert ret["result"] is None and ret["changes"] == {"revision": {"old": "0" * 40, "new": None}}
    assert os.path.exists(record)
    ag_app.test(False)
    assert deploy(ag_app)["changes"] == {"revision": {"old": "0" * 40, "new": None}}
    assert not os.path.exists(record) and deploy(ag_app)["changes"] == {} and len(docker.deploys) == 1


def test_other_content_is_deployed_and_reported_old_and_new(ag_app, docker):
    before = deploy(ag_app)["changes"]["content"]["new"]
    ret = deploy(ag_app, workers=8)
    assert ret["changes"] == {"content": {"old": before, "new": ret["changes"]["content"]["new"]}}
    assert ret["changes"]["content"]["new"] != before and len(docker.deploys) == 2


def test_test_mode_reports_other_content_and_deploys_nothing(ag_app, docker):
    deploy(ag_app)
    ag_app.test(True)
    ret = deploy(ag_app, workers=8)
    assert ret["result"] is None and ret["comment"] == "stack ag-stack would be deployed"
    assert set(ret["changes"]) == {"content"} and len(docker.deploys) == 1
    assert deploy(ag_app)["changes"] == {}  # the same content: nothing to report


def test_a_missing_service_is_deployed_again_with_the_same_content(ag_app, docker):
    content = deploy(ag_app)["changes"]["content"]["new"]
    docker.services -= {"nginx", "redis"}
    ret = deploy(ag_app)
    assert ret["changes"] == {"content": {"old": content, "new": content},
                              "services": {"new": ["nginx", "redis"]}}
    assert len(docker.deploys) == 2


def test_a_service_the_deploy_did_not_create_fails_it_and_the_next_run_deploys_again(
        ag_app, docker):
    docker.not_created = {"redis"}
    ret = deploy(ag_app)
    assert ret["result"] is False
    assert ret["comment"] == "stack ag-stack was deployed but reads back without redis"
    docker.not_created = set()
    assert deploy(ag_app)["comment"] == "stack ag-stack deployed"


def test_an_unpushed_image_is_reported_in_test_mode(ag_app, docker):
    # the images step has not run yet in a plan: it would push before the deploy
    docker.unpushed.add("127.0.0.1:5000/nginx")
    ag_app.test(True)
    ret = deploy(ag_app)
    assert ret["result"] is None and "content" in ret["changes"]
    assert docker.deploys == []


def test_an_unpushed_image_fails_the_deploy_naming_it(ag_app, docker):
    docker.unpushed.add("127.0.0.1:5000/nginx")
    ret = deploy(ag_app)
    assert ret["result"] is False and docker.deploys == []
    assert ret["comment"].startswith("the registry lacks 127.0.0.1:5000/nginx:")
    assert "ag_app.images_pushed" in ret["comment"]


def test_a_new_release_s_migrations_run_with_its_image_before_the_stack_rolls(ag_app, docker):
    deploy(ag_app)
    assert [entry[0] for entry in docker.log] == ["deploy"]  # the first deploy: ag.migrate's
    old = docker.django
    docker.release = "r2"
    ret = deploy(ag_app)
    paused, (job, service, name, image, cmd), rolled = docker.log[1:]
    # every celery worker, the graders among them, stops first and is resumed by the deploy
    assert paused[0] == "paused" and set(paused[1]) == {
        f"ag-stack_{w}" for w in WORKERS} and "ag-stack_grader" in paused[1]
    assert paused[2] == 300 + ag_app.PAUSE_MARGIN  # their stop grace period, and a margin
    assert (job, service, name, rolled) == ("job", "ag-stack_django", "ag-stack_migrate", ("deploy",))
    assert image == docker.django != old and cmd == ["python3", "manage.py", "migrate", "--noinput"]
    assert ret["result"] is True and ret["changes"]["migrations"] == {"new": ["core.0042_y"]}
    assert ret["changes"]["paused"] == {"new": list(paused[1])}
    assert deploy(ag_app)["changes"] == {} and len(docker.log) == 4


def test_test_mode_says_the_migrations_would_run_first_and_runs_nothing(ag_app, docker):
    deploy(ag_app)
    docker.release = "r2"
    ag_app.test(True)
    ret = deploy(ag_app)
    assert ret["result"] is None and "before any service rolls" in ret["changes"]["migrations"]["new"]
    assert [entry[0] for entry in docker.log] == ["deploy"]


@pytest.mark.parametrize(("running", "wanted", "refused"), [
    ("postgres:9.5", "14", True), ("postgres:13@sha256:ab", "14", True),
    ("postgres:9.5", "9.5", False), ("postgres:13", "13.4", False),
    ("postgres:latest", "14", False),  # no major version to compare
])
def test_a_new_major_postgres_is_refused_with_the_dump_and_restore_steps(
        ag_app, docker, running, wanted, refused):
    deploy(ag_app)
    docker.postgres = running
    ret = deploy(ag_app, postgres_version=wanted)
    if refused:
        assert ret["result"] is False and len(docker.deploys) == 1, ret
        assert f"to {wanted}" in ret["comment"] and "salt-run ag.backup" in ret["comment"]
        assert "docker volume rm ag-stack_pgdata" in ret["comment"]
        assert "salt-run ag.restore" in ret["comment"]
    else:
        assert ret["result"] is True and len(docker.deploys) == 2, ret


def test_a_built_postgres_s_major_is_recorded_and_a_new_one_refused(ag_app, docker, tmp_path):
    """2025.08 builds postgres (its version a build arg), so the running image, named by
    digest, says no version: the deploy records the major it gave and refuses another."""
    for context in ("postgres", "server"):
        (tmp_path / context).mkdir()
        (tmp_path / context / "Dockerfile").write_text("FROM scratch\n")
    (tmp_path / "docker-compose.yml").write_text(yaml.safe_dump({"services": {
        "django": {"image": "127.0.0.1:5000/django", "build": "./server"},
        "postgres": {"image": "127.0.0.1:5000/postgres", "build": {
            "context": "./postgres", "args": {"AG_POSTGRES_VERSION": "${AG_POSTGRES_VERSION}"}}}}}))
    docker.services = {"django", "postgres"}

    def deploy_built(version):
        return ag_app.stack_deployed("ag-stack", str(tmp_path), ["docker-compose.yml"], 4, {},
                                     version)

    assert deploy_built("14")["result"] is True
    docker.postgres = "127.0.0.1:5000/postgres@sha256:" + "0" * 64
    assert deploy_built("14.2")["result"] is True  # the same major
    refused = deploy_built("15")
    assert refused["result"] is False and "from major version 14 to 15" in refused["comment"]


def test_workers_that_do_not_stop_are_resumed_and_nothing_is_migrated(ag_app, docker):
    deploy(ag_app)
    docker.release, docker.workers_hang = "r2", True
    ret = deploy(ag_app)
    assert ret["result"] is False and "still run a task after 360 s" in ret["comment"]
    (paused, resumed) = docker.log[1:]
    assert resumed == ("resumed", paused[1]) and len(docker.deploys) == 1


def test_failed_migrations_of_a_new_release_leave_the_old_one_serving(ag_app, docker):
    deploy(ag_app)
    old = docker.django
    docker.release = "r2"
    docker.job = {"retcode": 1, "node": "nuc2", "output": "django.db.utils.ProgrammingError: x"}
    ret = deploy(ag_app)
    assert ret["result"] is False and docker.django == old and len(docker.deploys) == 1
    assert "exit 1" in ret["comment"] and "ProgrammingError" in ret["comment"]
    assert "still serves the old release" in ret["comment"]
    assert [entry[0] for entry in docker.log[-3:]] == ["paused", "job", "resumed"]
    docker.job["retcode"] = 0
    assert deploy(ag_app)["result"] is True and docker.django != old  # once fixed, it rolls


# --- migrated -------------------------------------------------------------------------------

MIGRATE = """Operations to perform:
  Apply all migrations: admin, auth, contenttypes, core, sessions
Running migrations:
  Applying core.0041_course_x... OK
  Applying core.0042_project_y... OK
"""
SHOWMIGRATIONS = """admin
 [X] 0001_initial
 [ ] 0003_logentry_add_action_flag_choices
core
 [X] 0040_w
 [ ] 0041_course_x
sessions
 (no migrations)
"""


def test_migrate_reports_each_migration_it_applied(ag_app, docker):
    docker.manage = output(MIGRATE)
    ret = ag_app.migrated("ag-stack_django")
    assert docker.commands == [["python3", "manage.py", "migrate", "--noinput"]]
    assert ret["result"] is True and ret["comment"] == "applied 2 migration(s) on nuc1"
    assert ret["changes"] == {"migrations": {"new": ["core.0041_course_x", "core.0042_project_y"]}}


def test_test_mode_reports_the_unapplied_migrations_as_migrate_names_them(ag_app, docker):
    docker.manage = output(SHOWMIGRATIONS)
    ag_app.test(True)
    ret = ag_app.migrated("ag-stack_django")
    assert docker.commands == [["python3", "manage.py", "showmigrations"]]
    assert ret["result"] is None and ret["comment"] == "2 migration(s) would be applied on nuc1"
    assert ret["changes"] == {"migrations": {"new": [
        "admin.0003_logentry_add_action_flag_choices", "core.0041_course_x"]}}


@pytest.mark.parametrize("test, stdout", [
    (False, "Operations to perform:\n  Apply all migrations: core\nRunning migrations:\n"
            "  No migrations to apply.\n"),
    (True, "core\n [X] 0040_w\n [X] 0041_course_x\n"),
])
def test_nothing_to_migrate_changes_nothing(ag_app, docker, test, stdout):
    docker.manage = output(stdout)
    ag_app.test(test)
    ret = ag_app.migrated("ag-stack_django")
    assert ret["result"] is True and ret["changes"] == {}
    assert ret["comment"] == "no migrations to apply on nuc1"


def test_a_failed_migrate_fails_with_the_output_tail(ag_app, docker):
    docker.manage = output("Running migrations:\n", retcode=1,
                           stderr="django.db.utils.OperationalError: could not connect")
    ret = ag_app.migrated("ag-stack_django")
    assert ret["result"] is False
    assert ret["comment"].startswith("manage.py migrate in ag-stack_django on nuc1 failed (exit 1):")
    assert ret["comment"].endswith("OperationalError: could not connect")


def test_an_engine_error_fails_the_state_as_a_sentence_naming_the_node(ag_app):
    def unreachable(service, cmd):
        raise CommandExecutionError("exec in a task of ag-stack_django failed: Cannot connect "
                                    "to the Docker daemon at unix:///var/run/docker.sock")
    ag_app.__salt__["ag_app.local_task_exec"] = unreachable
    ret = ag_app.migrated("ag-stack_django")
    assert ret == {"name": "ag-stack_django", "result": False, "changes": {},
                   "comment": "on nuc1: exec in a task of ag-stack_django failed: Cannot connect "
                              "to the Docker daemon at unix:///var/run/docker.sock"}


def test_no_django_task_on_this_node_is_nothing_to_do(ag_app, docker):
    ret = ag_app.migrated("ag-stack_django")
    assert ret["result"] is True and ret["comment"] == "no task of ag-stack_django runs on nuc1"


# --- bootstrapped ---------------------------------------------------------------------------


def bootstrap(ag_app):
    return ag_app.bootstrapped("ag-stack_django", admins=["ada"], course="EECS 280")


def test_the_bootstrap_reports_what_its_marker_line_says_it_did(ag_app, docker):
    docker.manage = output('some warning\nAG-BOOTSTRAP ["superuser ada", "course EECS 280"]\n')
    ret = bootstrap(ag_app)
    assert ret["result"] is True
    assert ret["changes"] == {"bootstrap": {"new": ["superuser ada", "course EECS 280"]}}
    assert ret["comment"] == "bootstrap on nuc1: superuser ada, course EECS 280"
    [cmd] = docker.commands
    assert cmd[:4] == ["python3", "manage.py", "shell", "-c"] and "DRY = False" in cmd[4]


def test_test_mode_runs_the_bootstrap_dry_and_reports(ag_app, docker):
    docker.manage = output('AG-BOOTSTRAP ["admin ada of EECS 280"]\n')
    ag_app.test(True)
    ret = bootstrap(ag_app)
    assert ret["result"] is None and ret["changes"] == {"bootstrap": {"new": ["admin ada of EECS 280"]}}
    assert "DRY = True" in docker.commands[0][4]


def test_an_empty_marker_is_a_bootstrap_already_present(ag_app, docker):
    docker.manage = output("AG-BOOTSTRAP []\n")
    ret = bootstrap(ag_app)
    assert ret == {"name": "ag-stack_django", "result": True, "changes": {},
                   "comment": "bootstrap present on nuc1"}


@pytest.mark.parametrize("result", [
    output("", retcode=1, stderr="NameError: name 'Course' is not defined"),
    output("nothing printed\n"),  # exit 0 but no marker: the script did not finish
])
def test_a_failure_or_a_missing_marker_fails_with_the_output_tail(ag_app, docker, result):
    docker.manage = result
    ret = bootstrap(ag_app)
    assert ret["result"] is False and ret["changes"] == {}
    assert ret["comment"].startswith(f"the bootstrap in ag-stack_django on nuc1 failed "
                                     f"(exit {result['retcode']}):\n")
    assert (result["stdout"] + result["stderr"]).strip() in ret["comment"]


def test_no_bootstrap_in_the_pillar_runs_nothing(ag_app, docker):
    ret = ag_app.bootstrapped("ag-stack_django")
    assert ret["comment"] == "no bootstrap in the pillar" and docker.commands == []


# --- tls_loaded -----------------------------------------------------------------------------

def test_a_renewed_certificate_is_reloaded_by_the_nginx_task_here_once(ag_app, docker, tmp_path):
    cert, key = tmp_path / "site.cert", tmp_path / "site.key"
    cert.write_text("certificate 1")
    key.write_text("the key")
    files = [str(cert), str(key)]
    docker.manage = output("")
    assert ag_app.tls_loaded("ag-stack_nginx", files)["changes"] == {}  # noted: nginx starts on it
    assert ag_app.tls_loaded("ag-stack_nginx", files)["changes"] == {} and docker.commands == []
    cert.write_text("certificate 2")  # renewed
    ag_app.test(True)
    planned = ag_app.tls_loaded("ag-stack_nginx", files)
    assert planned["result"] is None and "would reload" in planned["comment"]
    assert docker.commands == []
    ag_app.test(False)
    done = ag_app.tls_loaded("ag-stack_nginx", files)
    assert done["result"] is True and set(done["changes"]["tls"]) == {"old", "new"}
    assert docker.commands == [["nginx", "-s", "reload"]]
    assert "certificate" not in str(done) and "the key" not in str(done)
    assert ag_app.tls_loaded("ag-stack_nginx", files)["changes"] == {}


def test_a_renewal_with_no_nginx_here_is_noted_for_its_next_start(ag_app, docker, tmp_path):
    cert = tmp_path / "site.cert"
    cert.write_text("certificate 1")
    ag_app.tls_loaded("ag-stack_nginx", [str(cert)])
    cert.write_text("certificate 2")
    docker.nginx_here = False
    assert ag_app.tls_loaded("ag-stack_nginx", [str(cert)])["changes"] == {}
    docker.nginx_here = True
    assert ag_app.tls_loaded("ag-stack_nginx", [str(cert)])["changes"] == {}
    assert docker.commands == []


def test_a_reload_that_fails_names_the_node_and_keeps_the_old_digest(ag_app, docker, tmp_path):
    cert = tmp_path / "site.cert"
    cert.write_text("certificate 1")
    ag_app.tls_loaded("ag-stack_nginx", [str(cert)])
    cert.write_text("certificate 2")
    docker.manage = output("", retcode=1, stderr="nginx: [emerg] cannot load certificate")
    failed = ag_app.tls_loaded("ag-stack_nginx", [str(cert)])
    assert failed["result"] is False and "on nuc1" in failed["comment"]
    assert "cannot load certificate" in failed["comment"]
    docker.manage = output("")
    assert ag_app.tls_loaded("ag-stack_nginx", [str(cert)])["changes"]  # tried again


def test_a_compose_file_the_checkout_lacks_is_named_and_nothing_is_deployed(ag_app, docker):
    ret = ag_app.stack_deployed("ag-stack", str(CHECKOUT), ["docker-compose.yml", "site.yml"], 4,
                                CONCURRENCY)
    assert ret["result"] is False and docker.deploys == []
    assert ret["comment"].startswith(f"no site.yml in the checkout {CHECKOUT} on nuc1")
    assert "extra_compose_files" in ret["comment"]


# --- database_password -----------------------------------------------------------------------

GENERATED = "generated-Pa55'word"


def password_file(tmp_path):
    path = tmp_path / "db_password"
    path.write_text(GENERATED + "\n")
    return str(path)


def test_an_adopted_database_takes_the_generated_password_once(ag_app, docker, tmp_path):
    """An install made before the product (upstream's 'postgres'): test mode says so and sets
    nothing; the run sets it; the next finds nothing to do. The password is in no return."""
    ag_app.test(True)
    planned = ag_app.database_password("ag-stack_postgres", password_file(tmp_path))
    assert planned["result"] is None and planned["changes"] and docker.db_password == "postgres"
    ag_app.test(False)
    done = ag_app.database_password("ag-stack_postgres", password_file(tmp_path))
    assert done["result"] is True and done["changes"] and docker.db_password == GENERATED
    again = ag_app.database_password("ag-stack_postgres", password_file(tmp_path))
    assert again["result"] is True and again["changes"] == {}
    assert [e[:2] for e in docker.log if e[0] == "password set"] == [("password set", "ag-stack_postgres")]
    assert not [r for r in (planned, done, again) if "Pa55" in str(r)]


def test_no_database_task_here_or_no_password_yet_is_nothing_to_do(ag_app, docker, tmp_path):
    docker.db_password = None
    ret = ag_app.database_password("ag-stack_postgres", password_file(tmp_path))
    assert ret["result"] is True and ret["changes"] == {} and "no task" in ret["comment"]
    docker.db_password = "postgres"
    ret = ag_app.database_password("ag-stack_postgres", str(tmp_path / "not made yet"))
    assert ret["result"] is True and ret["changes"] == {} and docker.db_password == "postgres"


def test_a_database_that_still_refuses_the_password_fails_naming_it(ag_app, docker, tmp_path):
    docker.db_refuses_change = True
    ret = ag_app.database_password("ag-stack_postgres", password_file(tmp_path))
    assert ret["result"] is False and "still refuses" in ret["comment"] and "nuc1" in ret["comment"]
