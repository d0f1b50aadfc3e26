"""ag.secrets on a checkout: upstream's secrets and a database password made once, the site's
OAuth and e-mail secrets from its files, all in files the services mount (none in _prod.env);
nothing secret in the state returns, test=True included; re-runs change nothing; a missing
secrets file is named with the node."""

import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

STANDIN = Path(__file__).resolve().parents[1] / "standin/autograder-full-stack"
OAUTH_JSON = '{"web": {"client_secret": "oauth-client-secret-value"}}'
EMAIL_PASSWORD = "email-password-value"


@pytest.fixture
def site(tmp_path):
    checkout = tmp_path / "autograder-full-stack"
    shutil.copytree(STANDIN, checkout)
    (tmp_path / "oauth.json").write_text(OAUTH_JSON)
    (tmp_path / "email-password").write_text(EMAIL_PASSWORD + "\n")
    return tmp_path, checkout


def pillar(tmp_path, checkout, **oauth):
    return {"app": {"checkout": str(checkout),
                    "oauth": {"secrets_file": str(tmp_path / "oauth.json"), **oauth},
                    "email": {"password_file": str(tmp_path / "email-password")}}}


def upstream_secrets(checkout):
    """What generate_secrets.py makes in the django image (tier 1 runs it there): here with
    the image's packages (the stand-in's django and gnupg) on its path."""
    server = checkout / "autograder-server"
    subprocess.run([sys.executable, "generate_secrets.py"], cwd=server, check=True,
                   env={**os.environ, "PYTHONPATH": str(server / "standin")})


def test_secrets_made_once_and_never_shown(local_minion, site):
    tmp_path, checkout = site
    upstream_secrets(checkout)
    minion = local_minion(pillar(tmp_path, checkout))
    planned = minion.apply("ag.secrets", test=True)
    assert {r["result"] for r in planned.values()} <= {None, True}, planned
    # upstream's kept as they are; the password said, not made
    assert planned["ag-secrets-generated"]["changes"] == {"generated": ["db_password"]}
    assert not (checkout / "autograder-server/autograder/settings/secrets/db_password").exists()
    first = minion.apply("ag.secrets")
    assert all(r["result"] is True for r in first.values()), first
    server = checkout / "autograder-server"
    secrets = server / "autograder/settings/secrets"
    password = (secrets / "db_password").read_text().strip()
    assert len(password) >= 32 and stat.S_IMODE(secrets.stat().st_mode) == 0o700
    # files the services mount, never the env_file every service spec inlines (the settings
    # read them, ag.tweaks)
    env = (server / "_prod.env").read_text()
    assert password not in env and EMAIL_PASSWORD not in env
    email = secrets / "email_host_password"
    assert email.read_text() == EMAIL_PASSWORD + "\n" and stat.S_IMODE(email.stat().st_mode) == 0o600
    assert stat.S_IMODE((secrets / "db_password").stat().st_mode) == 0o600
    oauth = server / "autograder/settings/oauth2_secrets.json"
    assert oauth.read_text() == OAUTH_JSON and stat.S_IMODE(oauth.stat().st_mode) == 0o600
    shown = json.dumps([planned, first])
    secret_key = (secrets / "secret_key").read_text().strip()
    for secret in (password, EMAIL_PASSWORD, "oauth-client-secret-value", secret_key):
        assert secret not in shown

    second = minion.apply("ag.secrets")
    assert {sid for sid, r in second.items() if r["changes"]} == set(), second
    assert all(r["result"] is True for r in minion.apply("ag.secrets", test=True).values())
    (tmp_path / "email-password").write_text("a-new-email-password\n")
    changed = minion.apply("ag.secrets")
    assert {sid for sid, r in changed.items() if r["changes"]} == {"ag-secrets-email-password"}
    assert "a-new-email-password" not in json.dumps(changed)
    assert (secrets / "db_password").read_text().strip() == password


def test_missing_oauth_file_names_path_and_node(local_minion, site):
    tmp_path, checkout = site
    (tmp_path / "oauth.json").unlink()
    ret = local_minion(pillar(tmp_path, checkout)).apply("ag.secrets")
    failed = [r["comment"] for r in ret.values() if r["result"] is False]
    assert any(f"names {tmp_path / 'oauth.json'}, which is not on nuc1" in c for c in failed), ret
