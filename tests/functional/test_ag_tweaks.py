"""The guide's tweaks edit upstream's files in place: exact lines, idempotent, test=True honest,
and re-applied after an upstream update restored the original line."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

STANDIN = Path(__file__).resolve().parents[1] / "standin/autograder-full-stack"


@pytest.fixture
def checkout(tmp_path):
    dest = tmp_path / "autograder-full-stack"
    shutil.copytree(STANDIN, dest)
    return dest


def tweaks_pillar(checkout):
    return {"app": {"checkout": str(checkout), "site_domain": "grading.example.edu",
                    "sysadmin_contact": "help@example.edu", "client_max_body_size": "64M",
                    "max_subprocess_timeout": 120, "tls_certificate": "/etc/ssl/certs/grading.pem",
                    "tls_key": "/etc/ssl/private/grading.key", "oauth": {"provider": "azure"},
                    "email": {"from_addr": "ag@example.edu", "host": "smtp.example.edu", "port": 587}}}


def changed(ret):
    return {sid for sid, r in ret.items() if r["changes"]}


def test_tweaks_edit_exact_lines_once(local_minion, checkout):
    minion = local_minion(tweaks_pillar(checkout))
    first = minion.apply("ag.tweaks")
    assert all(r["result"] is True for r in first.values()), first
    backups = {sid for sid in first if "-no-backup-of-" in sid}
    sdk = {sid for sid in first if sid.startswith("docker-sdk-")}  # the minion has it
    assert changed(first) == set(first) - backups - sdk
    assert not [p for p in checkout.rglob("*.bak")], "a backup copy left in the checkout"
    env = (checkout / "autograder-server/_prod.env").read_text()
    assert "ALLOWED_HOSTS=grading.example.edu\n" in env and "SITE_DOMAIN=grading.example.edu\n" in env
    assert "\nOAUTH2_PROVIDER=azure\n" in env and "\nEMAIL_FROM_ADDR=ag@example.edu\n" in env
    assert "\nEMAIL_HOST=smtp.example.edu\n" in env and "\nEMAIL_PORT=587\n" in env
    assert "# EMAIL_HOST_USER=" in env  # not given: upstream's line stays
    nginx = (checkout / "nginx/production/conf.d/default.conf").read_text()
    assert nginx.count("server_name grading.example.edu;") == 2
    assert nginx.count("client_max_body_size 64M;") == 2
    assert "return 301 https://grading.example.edu$request_uri;" in nginx
    assert "autograder.io" not in nginx
    assert "ssl_certificate /etc/ssl/certs/grading.pem;" in nginx
    assert "ssl_certificate_key /etc/ssl/private/grading.key;" in nginx
    ts = (checkout / "ag-website-vue/src/constants.ts").read_text()
    assert "export const SYSADMIN_CONTACT = 'help@example.edu';" in ts
    assert "export const MAX_COMMAND_TIMEOUT = 120;" in ts
    py = (checkout / "autograder-server/autograder/core/constants.py").read_text()
    assert "\nMAX_SUBPROCESS_TIMEOUT = 120\n" in py
    ignore = (checkout / "autograder-server/.dockerignore").read_text().splitlines()
    assert "autograder/settings/secrets" in ignore and "autograder/settings/oauth2_secrets.json" in ignore
    # no password in the env_file every service spec inlines; upstream's default is gone
    assert "\nAG_DB_PASSWORD=\n" in env and "AG_DB_PASSWORD=postgres" not in env
    # the compose file: only the guide's "UPDATE THIS" postgres password, emptied, and
    # upstream's first `image:` of postgres and redis, set again below it, made a comment
    # (today's docker refuses a key twice; PyYAML, like older docker, reads the later one)
    upstream = yaml.safe_load((STANDIN / "docker-compose.yml").read_text())
    upstream["services"]["postgres"]["environment"] = {"POSTGRES_PASSWORD": ""}
    compose = (checkout / "docker-compose.yml").read_text()
    assert yaml.safe_load(compose) == upstream
    assert compose.count("# ag.tweaks: set again below") == 2
    assert "    # ag.tweaks: set again below (docker refuses a key twice; the later one counts): " \
           "image: 127.0.0.1:5000/postgres\n" in compose
    assert len(compose.splitlines()) == len((STANDIN / "docker-compose.yml").read_text().splitlines())
    settings = (checkout / "autograder-server/autograder/settings/production.py").read_text()
    assert settings.startswith("from .base import *")  # upstream's lines stay, the block follows
    assert settings.count("# BEGIN ag.deploy: passwords from the secrets dir") == 1

    second = minion.apply("ag.tweaks")
    assert changed(second) == set() and all(r["result"] is True for r in second.values()), second


def test_test_mode_reports_and_changes_nothing(local_minion, checkout):
    before = {p: p.read_bytes() for p in checkout.rglob("*") if p.is_file()}
    ret = local_minion(tweaks_pillar(checkout)).apply("ag.tweaks", test=True)
    edits = {sid: r for sid, r in ret.items()
             if "-no-backup-of-" not in sid and not sid.startswith("docker-sdk-")}
    assert {r["result"] for r in edits.values()} == {None}
    assert all(r["result"] is True and not r["changes"] for sid, r in ret.items()
               if sid not in edits)  # no backup copy to remove
    assert {p: p.read_bytes() for p in checkout.rglob("*") if p.is_file()} == before


def test_upstream_update_is_tweaked_again(local_minion, checkout):
    minion = local_minion(tweaks_pillar(checkout))
    minion.apply("ag.tweaks")
    for path in ("ag-website-vue/src/constants.ts", "autograder-server/autograder/settings/production.py",
                 "autograder-server/_prod.env"):
        shutil.copy(STANDIN / path, checkout / path)
    again = minion.apply("ag.tweaks")
    assert changed(again) == {"ag-tweaks-sysadmin-contact", "ag-tweaks-max-command-timeout",
                              "ag-tweaks-settings-secrets-from-files", "ag-tweaks-env-no-db-password",
                              "ag-tweaks-site-domain-env", "ag-tweaks-oauth-provider",
                              "ag-tweaks-email-from-addr", "ag-tweaks-email-host",
                              "ag-tweaks-email-port"}
    assert changed(minion.apply("ag.tweaks")) == set()


def test_backup_copies_an_earlier_version_left_are_removed(local_minion, checkout):
    """They hold the lines as they were before the edit, an old database password included,
    inside a build context."""
    left = checkout / "autograder-server/_prod.env.bak"
    left.write_text("AG_DB_PASSWORD=a-real-old-password\n")
    ret = local_minion(tweaks_pillar(checkout)).apply("ag.tweaks")
    assert ret["ag-tweaks-no-backup-of-autograder-server-_prod.env"]["changes"], ret
    assert not left.exists()


def settings_of(checkout, env):
    """DATABASES' password and EMAIL_HOST_PASSWORD as the production settings of `checkout`
    resolve them under `env` (upstream's _prod.env parsed, as env_file gives it)."""
    code = ("import json; from django.conf import settings; print(json.dumps("
            "[settings.DATABASES['default']['PASSWORD'], settings.EMAIL_HOST_PASSWORD]))")
    server = checkout / "autograder-server"
    res = subprocess.run([sys.executable, "manage.py", "shell", "-c", code], cwd=server,
                         env={**os.environ, **env}, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout.splitlines()[-1])


def env_file(path):
    lines = [line for line in path.read_text().splitlines() if line and not line.startswith("#")]
    return dict(line.split("=", 1) for line in lines)


def test_settings_read_the_passwords_from_the_secrets_dir_when_there(local_minion, checkout):
    pillar = tweaks_pillar(checkout)
    pillar["app"]["email"]["password_file"] = "/nonexistent/only-enables-the-scrub"
    env = checkout / "autograder-server/_prod.env"
    env.write_text(env.read_text().replace("# EMAIL_HOST_PASSWORD=", "EMAIL_HOST_PASSWORD=old-mail-pw"))
    ret = local_minion(pillar).apply("ag.tweaks")
    assert all(r["result"] is True for r in ret.values()), ret
    assert "old-mail-pw" not in json.dumps(ret)  # the scrubbed line is never shown
    assert "EMAIL_HOST_PASSWORD=old-mail-pw" not in env.read_text()
    assert "\n# EMAIL_HOST_PASSWORD=\n" in env.read_text()
    secrets = checkout / "autograder-server/autograder/settings/secrets"
    secrets.mkdir()
    for name in ("secret_key", "gpg_key_id_file", "gpg_key_password"):
        (secrets / name).write_text("x")
    # the image (no secrets dir mounted yet): upstream's environment rules, now blank
    assert settings_of(checkout, env_file(env)) == ["", ""]
    (secrets / "db_password").write_text("db-pw-from-file\n")
    (secrets / "email_host_password").write_text("mail-pw-from-file\n")
    assert settings_of(checkout, env_file(env)) == ["db-pw-from-file", "mail-pw-from-file"]
