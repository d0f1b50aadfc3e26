"""ag.secrets on a checkout: upstream's secrets and a database password made once, the site's
OAuth and e-mail secrets from its files; nothing secret in the state returns; re-runs change
nothing; a missing secrets file is named with the node."""

import json
import shutil
import stat
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


def test_secrets_made_once_and_never_shown(local_minion, site):
    tmp_path, checkout = site
    minion = local_minion(pillar(tmp_path, checkout))
    first = minion.apply("ag.secrets")
    assert all(r["result"] is True for r in first.values()), first
    server = checkout / "autograder-server"
    secrets = server / "autograder/settings/secrets"
    password = (secrets / "db_password").read_text().strip()
    assert len(password) >= 32 and stat.S_IMODE(secrets.stat().st_mode) == 0o700
    env = (server / "_prod.env").read_text()
    assert f"\nAG_DB_PASSWORD={password}\n" in env and "AG_DB_PASSWORD=postgres" not in env
    assert f"\nEMAIL_HOST_PASSWORD={EMAIL_PASSWORD}\n" in env
    oauth = server / "autograder/settings/oauth2_secrets.json"
    assert oauth.read_text() == OAUTH_JSON and stat.S_IMODE(oauth.stat().st_mode) == 0o600
    shown = json.dumps(first)
    secret_key = (secrets / "secret_key").read_text().strip()
    for secret in (password, EMAIL_PASSWORD, "oauth-client-secret-value", secret_key):
        assert secret not in shown

    second = minion.apply("ag.secrets")
    assert {sid for sid, r in second.items() if r["changes"]} == set(), second
    assert (secrets / "db_password").read_text().strip() == password


def test_missing_oauth_file_names_path_and_node(local_minion, site):
    tmp_path, checkout = site
    (tmp_path / "oauth.json").unlink()
    ret = local_minion(pillar(tmp_path, checkout)).apply("ag.secrets")
    failed = [r["comment"] for r in ret.values() if r["result"] is False]
    assert any(f"names {tmp_path / 'oauth.json'}, which is not on nuc1" in c for c in failed), ret
