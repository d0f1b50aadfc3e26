"""The guide's tweaks edit upstream's files in place: exact lines, idempotent, test=True honest,
and re-applied after an upstream update restored the original line."""

import shutil
from pathlib import Path

import pytest

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
    assert changed(first) == set(first)
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

    second = minion.apply("ag.tweaks")
    assert changed(second) == set() and all(r["result"] is True for r in second.values()), second


def test_test_mode_reports_and_changes_nothing(local_minion, checkout):
    before = {p: p.read_bytes() for p in checkout.rglob("*") if p.is_file()}
    ret = local_minion(tweaks_pillar(checkout)).apply("ag.tweaks", test=True)
    assert {r["result"] for r in ret.values()} == {None}
    assert {p: p.read_bytes() for p in checkout.rglob("*") if p.is_file()} == before


def test_upstream_update_is_tweaked_again(local_minion, checkout):
    minion = local_minion(tweaks_pillar(checkout))
    minion.apply("ag.tweaks")
    shutil.copy(STANDIN / "ag-website-vue/src/constants.ts", checkout / "ag-website-vue/src/constants.ts")
    again = minion.apply("ag.tweaks")
    assert changed(again) == {"ag-tweaks-sysadmin-contact", "ag-tweaks-max-command-timeout"}
