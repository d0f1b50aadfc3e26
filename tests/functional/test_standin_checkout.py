"""The stand-in autograder-full-stack checkout (tests/standin) outside any container: its
compose file matches upstream's facts, generate_secrets.py keeps what exists, and manage.py
migrate / shell against the bed's postgres stand-in leave persistent, idempotent results."""

import json
import os
import re
import socket
import subprocess
import sys
import urllib.error
import urllib.request

import pytest
import yaml

from bed import images
from tests import standin

LABELS = {  # service: (placement label, mode)
    "nginx": ("webserver", "replicated"), "website": ("webserver", "replicated"),
    "django": ("django_app", "replicated"), "postgres": ("database", "replicated"),
    "redis": ("cache", "replicated"), "rabbitmq": ("rabbitmq_broker", "replicated"),
    "celery_small_tasks": ("small_tasks", "replicated"),
    "celery_project_downloads": ("small_tasks", "replicated"),
    "celerybeat": ("small_tasks", "replicated"),
    "sandboximageregistry": ("custom_image_registry", "replicated"),
    **{g: (g, "global") for g in (
        "grader", "tiny_grader", "fast_grader", "tiny_fast_grader", "deferred_grader",
        "tiny_deferred_grader", "rerun_grader", "tiny_rerun_grader", "image_builder")},
}
CONCURRENCY = {"celery_small_tasks": 4, "celery_project_downloads": 2, "celerybeat": 1,
               "grader": 2, "tiny_grader": 1, "fast_grader": 2, "tiny_fast_grader": 1,
               "deferred_grader": 2, "tiny_deferred_grader": 1, "rerun_grader": 2,
               "tiny_rerun_grader": 1, "image_builder": 1}


@pytest.fixture
def checkout(tmp_path):
    return standin.write(tmp_path / "autograder-full-stack")


def test_compose_file_is_upstreams_shape(checkout):
    compose = yaml.safe_load((checkout / "docker-compose.yml").read_text())
    services = compose["services"]
    assert set(services) == set(LABELS)
    for name, (label, mode) in LABELS.items():
        deploy = services[name]["deploy"]
        assert deploy["placement"]["constraints"] == [f"node.labels.{label} == true"]
        assert deploy.get("mode", "replicated") == mode
    for name, c in CONCURRENCY.items():
        assert re.findall(r" -c (\d+)", services[name]["command"]) == [str(c)], name
    assert services["django"]["command"].startswith("gunicorn --workers=4 ")
    assert services["postgres"]["image"] == "postgres:9.5"
    assert services["grader"]["image"] == services["tiny_rerun_grader"]["image"] \
        == "127.0.0.1:5000/grader"
    assert compose["networks"] == {"default": {"external": {"name": "ag-swarm-network"}}}
    for name, svc in services.items():  # what the bed preloads, or what a deploy builds
        assert svc["image"].startswith("127.0.0.1:5000/") or any(
            svc["image"] in img.tags for img in images.in_group("bed")), name
        if "build" in svc:
            build = svc["build"] if isinstance(svc["build"], dict) else {"context": svc["build"]}
            dockerfile = checkout / build["context"] / build.get("dockerfile", "Dockerfile")
            assert "FROM agbed/" in dockerfile.read_text(), name
    conf = (checkout / "nginx/production/conf.d/default.conf").read_text()
    assert conf.count("client_max_body_size 30M;") == 2
    assert "MAX_SUBPROCESS_TIMEOUT = 90" in (
        checkout / "autograder-server/autograder/core/constants.py").read_text()
    consts = (checkout / "ag-website-vue/src/constants.ts").read_text()
    assert "SYSADMIN_CONTACT = 'your instructor or system administrator'" in consts
    assert "MAX_COMMAND_TIMEOUT = 90" in consts


def test_written_as_a_git_checkout(tmp_path):
    root = standin.write(tmp_path / "afs", git=True)
    (root / "autograder-server/autograder/settings/secrets").mkdir()
    (root / "autograder-server/autograder/settings/secrets/secret_key").write_text("x")
    status = subprocess.run(["git", "-C", str(root), "status", "--porcelain"],
                            capture_output=True, text=True, check=True).stdout
    assert status == ""  # committed, and the secrets dir is ignored as upstream ignores it
    assert (root / ".gitmodules").read_text().count("branch = release-2024.08.x") == 2

    def head():
        return subprocess.run(["git", "-C", str(root), "rev-parse", "master"],
                              capture_output=True, text=True, check=True).stdout

    first = head()
    standin.write(root, git=True)
    assert head() == first  # nothing changed: no new revision to deploy


def _get(port, path, host):
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", headers={"Host": host})
    with urllib.request.urlopen(req, timeout=10) as res:
        return res.read().decode()


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def postgres(tmp_path):
    port = _free_port()
    env = {**os.environ, "PGDATA": str(tmp_path / "pgdata"), "PGPORT": str(port),
           "POSTGRES_PASSWORD": "s3cret"}
    proc = subprocess.Popen([sys.executable, str(images.STANDIN_SERVER), "postgres"], env=env,
                            stdout=subprocess.PIPE, text=True)
    assert "ready to accept connections" in proc.stdout.readline() + proc.stdout.readline()
    yield port
    proc.terminate()
    proc.wait(10)


def test_postgres_refuses_another_major_versions_data(tmp_path):
    env = {**os.environ, "PGDATA": str(tmp_path), "PGPORT": str(_free_port()),
           "POSTGRES_PASSWORD": "x", "PG_MAJOR": "9.5"}
    first = subprocess.Popen([sys.executable, str(images.STANDIN_SERVER), "postgres"], env=env,
                             stdout=subprocess.PIPE, text=True)
    assert "ready to accept connections" in first.stdout.readline() + first.stdout.readline()
    first.terminate()
    first.wait(10)
    newer = subprocess.run([sys.executable, str(images.STANDIN_SERVER), "postgres"],
                           env={**env, "PG_MAJOR": "14"}, capture_output=True, text=True,
                           timeout=10)
    assert newer.returncode != 0
    assert "initialized by PostgreSQL version 9.5" in newer.stderr


def test_postgres_takes_its_password_from_a_file_as_the_image_does(tmp_path):
    """The official image's file_env: POSTGRES_PASSWORD_FILE when POSTGRES_PASSWORD is empty
    (upstream's compose value blanked), never both."""
    (tmp_path / "db_password").write_text("from-the-file\n")
    env = {**os.environ, "PGDATA": str(tmp_path / "pgdata"), "PGPORT": str(_free_port()),
           "POSTGRES_PASSWORD": "postgres", "POSTGRES_PASSWORD_FILE": str(tmp_path / "db_password")}
    both = subprocess.run([sys.executable, str(images.STANDIN_SERVER), "postgres"], env=env,
                          capture_output=True, text=True, timeout=10)
    assert both.returncode != 0 and "are exclusive" in both.stderr
    assert not (tmp_path / "pgdata").exists()
    server = subprocess.Popen([sys.executable, str(images.STANDIN_SERVER), "postgres"],
                              env={**env, "POSTGRES_PASSWORD": ""}, stdout=subprocess.PIPE, text=True)
    try:
        assert "ready to accept connections" in server.stdout.readline() + server.stdout.readline()

        def ask(password):
            with socket.create_connection(("127.0.0.1", int(env["PGPORT"])), timeout=10) as conn:
                conn.sendall(json.dumps({"user": "postgres", "password": password,
                                         "database": "postgres", "statements": []}).encode() + b"\n")
                return json.loads(conn.makefile().readline())

        assert ask("from-the-file") == {"rows": []}
        assert "password authentication failed" in ask("postgres")["error"]
    finally:
        server.terminate()
        server.wait(10)


def test_secrets_migrate_and_bootstrap(checkout, postgres):
    server = checkout / "autograder-server"

    def run(*argv, password="s3cret", stdin=None, pythonpath=None):
        env = {**os.environ, "DJANGO_SETTINGS_MODULE": "autograder.settings.production",
               "AG_DB_HOST": "127.0.0.1", "AG_DB_PORT": str(postgres),
               "AG_DB_PASSWORD": password}
        if pythonpath:
            env["PYTHONPATH"] = str(pythonpath)
        return subprocess.run([sys.executable, *argv], cwd=server, env=env, input=stdin,
                              capture_output=True, text=True)

    missing = run("manage.py", "check")
    assert missing.returncode != 0 and "run generate_secrets.py" in missing.stderr
    # as upstream's, it needs Django and python-gnupg: on a bare host it fails; in the image,
    # where they are installed (here: the stand-in's, on the path), it runs
    bare = run("generate_secrets.py")
    assert bare.returncode != 0 and "ModuleNotFoundError" in bare.stderr

    def generate():
        return run("generate_secrets.py", pythonpath=server / "standin").returncode == 0

    assert generate()
    secrets = server / "autograder/settings/secrets"

    def files():
        return {str(p.relative_to(secrets)): p.read_text() for p in secrets.rglob("*")
                if p.is_file()}

    before = files()
    assert set(before) == {"secret_key", "gpg_key_id_file", "gpg_key_password", "pubring.kbx",
                           f"private-keys-v1.d/{before['gpg_key_id_file']}.key"}
    (secrets / "gpg_key_password").unlink()  # an interrupted run: only the GPG part is redone
    assert generate()
    after = files()
    assert after["secret_key"] == before["secret_key"]
    assert after["gpg_key_id_file"] != before["gpg_key_id_file"]
    assert generate()
    assert files() == after
    # the app signs a receipt with that key and checks it (python-gnupg's stand-in)
    receipt = ("import base64\n"
               "from autograder.core.submission_email_receipts import sign_email, check_signature\n"
               "signed = sign_email('receipt 42')\n"
               "print(bool(signed), check_signature(base64.urlsafe_b64encode(signed.encode())))\n")
    signed = run("manage.py", "shell", stdin=receipt, pythonpath=server / "standin")
    assert signed.stdout.startswith("True (True, ") and "receipt 42" in signed.stdout, \
        signed.stdout + signed.stderr

    wrong = run("manage.py", "migrate", "--noinput", password="postgres")
    assert wrong.returncode != 0 and "password authentication failed" in wrong.stderr
    first = run("manage.py", "migrate", "--noinput")
    assert first.returncode == 0, first.stderr
    assert "Applying core.0001_initial... OK" in first.stdout
    second = run("manage.py", "migrate", "--noinput")
    assert "No migrations to apply." in second.stdout

    bootstrap = (
        "from django.contrib.auth.models import User\n"
        "from autograder.core.models import Course\n"
        "me = User.objects.get_or_create(username='admin@example.edu', is_superuser=True)[0]\n"
        "course, created = Course.objects.get_or_create(name='My Course')\n"
        "course.admins.add(me)\n"
        "print('created' if created else 'exists', [u.username for u in course.admins.all()])\n"
    )
    out1 = run("manage.py", "shell", stdin=bootstrap)
    out2 = run("manage.py", "shell", stdin=bootstrap)
    assert out1.stdout.strip() == "created ['admin@example.edu']", out1.stderr
    assert out2.stdout.strip() == "exists ['admin@example.edu']", out2.stderr
    port = _free_port()
    env = {**os.environ, "AG_DB_HOST": "127.0.0.1", "AG_DB_PORT": str(postgres),
           "AG_DB_PASSWORD": "s3cret", "ALLOWED_HOSTS": "ag.bed.test"}
    gunicorn = subprocess.Popen(
        [sys.executable, "standin/bin/gunicorn", "--workers=3", "autograder.wsgi:application",
         "--bind", f"127.0.0.1:{port}", "--timeout", "120"],
        cwd=server, env=env, stdout=subprocess.PIPE, text=True)
    try:
        assert "Listening at" in gunicorn.stdout.readline()
        status = json.loads(_get(port, "/api/standin/", "ag.bed.test"))
        assert status["gunicorn_workers"] == 3 and status["max_subprocess_timeout"] == 90
        assert json.loads(_get(port, "/api/courses/", "ag.bed.test")) == [
            {"pk": 1, "name": "My Course", "admins": ["admin@example.edu"]}]
        with pytest.raises(urllib.error.HTTPError, match="400"):
            _get(port, "/api/standin/", "autograder.io")  # not in ALLOWED_HOSTS
    finally:
        gunicorn.terminate()
        gunicorn.wait(10)

    dup = run("manage.py", "shell", "-c",
              "from autograder.core.models import Course\n"
              "Course.objects.validate_and_create(name='My Course')")
    assert dup.returncode != 0 and "ValidationError" in dup.stderr
