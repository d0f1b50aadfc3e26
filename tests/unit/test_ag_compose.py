"""The compose override rewrites only worker counts and mounts secrets instead of baking them."""

import sys
from pathlib import Path

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "_utils"))
import ag_compose  # noqa: E402

UPSTREAM = Path(__file__).resolve().parents[1] / "standin/autograder-full-stack/docker-compose.yml"
UPSTREAM_CONCURRENCY = {"celery_small_tasks": 4, "celery_project_downloads": 2, "celerybeat": 1,
                        "grader": 2, "tiny_grader": 1, "fast_grader": 2, "tiny_fast_grader": 1,
                        "deferred_grader": 2, "tiny_deferred_grader": 1, "rerun_grader": 2,
                        "tiny_rerun_grader": 1, "image_builder": 1}


@pytest.fixture(scope="module")
def compose():
    return yaml.safe_load(UPSTREAM.read_text())


def test_upstream_values_change_no_command(compose):
    out = ag_compose.override(compose, 4, UPSTREAM_CONCURRENCY)
    assert not [name for name, svc in out["services"].items() if "command" in svc]


def test_web_ports_open_on_the_webserver_node_only_unless_turned_off(compose):
    out = ag_compose.override(compose, 4, UPSTREAM_CONCURRENCY)["services"]
    assert out["nginx"]["ports"] == [
        {"target": 80, "published": 80, "protocol": "tcp", "mode": "host"},
        {"target": 443, "published": 443, "protocol": "tcp", "mode": "host"}]
    assert [name for name, svc in out.items() if "ports" in svc] == ["nginx"]
    off = ag_compose.override(compose, 4, UPSTREAM_CONCURRENCY, web_on_webserver_only=False)
    assert "nginx" not in off["services"]


def test_workers_and_concurrency_rewritten_in_place(compose):
    out = ag_compose.override(compose, 9, {**UPSTREAM_CONCURRENCY, "grader": 6, "rerun_grader": 1})
    services = out["services"]
    assert services["django"]["command"] == compose["services"]["django"]["command"].replace(
        "--workers=4", "--workers=9")
    assert services["grader"]["command"].endswith("--loglevel=info -c 6")
    assert services["rerun_grader"]["command"].endswith(" -c 1")
    assert "command" not in services["tiny_grader"]  # unchanged from upstream
    assert set(n for n, s in services.items() if "command" in s) == {"django", "grader",
                                                                      "rerun_grader"}


def test_secrets_mounted_into_every_server_built_service_only(compose):
    out = ag_compose.override(compose, 4, UPSTREAM_CONCURRENCY)
    mounted = {n for n, s in out["services"].items() if "volumes" in s}
    from_server = {n for n, s in compose["services"].items()  # upstream: build may be a str
                   if isinstance(s.get("build"), dict)
                   and s["build"]["context"] == "./autograder-server"}
    assert mounted == from_server
    assert {"django", "grader", "celerybeat"} <= mounted and "nginx" not in mounted
    assert out["services"]["django"]["volumes"] == [
        "./autograder-server/autograder/settings/secrets:"
        "/usr/src/app/autograder/settings/secrets:ro",
        "./autograder-server/autograder/settings/oauth2_secrets.json:"
        "/usr/src/app/autograder/settings/oauth2_secrets.json:ro",
    ]


def test_missing_secret_files_are_not_mounted(compose):
    out = ag_compose.override(compose, 4, UPSTREAM_CONCURRENCY,
                              secret_paths=("autograder/settings/secrets",))
    assert len(out["services"]["django"]["volumes"]) == 1


def test_postgres_reads_the_password_file_and_gets_the_version_only_when_given(compose):
    plain = ag_compose.override(compose, 4, UPSTREAM_CONCURRENCY)
    assert "postgres" not in plain["services"]
    out = ag_compose.override(compose, 4, UPSTREAM_CONCURRENCY,
                              db_password_file=ag_compose.DB_PASSWORD_FILE, postgres_version="14")
    assert out["services"]["postgres"] == {
        # upstream's 'postgres' is blanked in the compose file (ag.tweaks), not here
        "environment": {"POSTGRES_PASSWORD_FILE": "/run/secrets/db_password"},
        "volumes": ["./autograder-server/autograder/settings/secrets/db_password:"
                    "/run/secrets/db_password:ro"],
        "image": "postgres:14"}


def test_checkout_override_names_the_generated_password_file_never_its_value(tmp_path, compose):
    (tmp_path / "docker-compose.yml").write_text(yaml.safe_dump(compose))
    assert "postgres" not in ag_compose.checkout_override(tmp_path, 4, UPSTREAM_CONCURRENCY)["services"]
    password = tmp_path / ag_compose.DB_PASSWORD_FILE
    password.parent.mkdir(parents=True)
    password.write_text("generated-once\n")
    out = ag_compose.checkout_override(tmp_path, 4, UPSTREAM_CONCURRENCY)
    assert "generated-once" not in yaml.safe_dump(out)
    assert out["services"]["postgres"]["environment"]["POSTGRES_PASSWORD_FILE"] == \
        "/run/secrets/db_password"
    assert "./autograder-server/autograder/settings/secrets:/usr/src/app/autograder/settings/secrets:ro" \
        in out["services"]["django"]["volumes"]


def test_a_rotated_secret_relabels_exactly_the_services_that_mount_the_secrets(tmp_path, compose):
    (tmp_path / "docker-compose.yml").write_text(yaml.safe_dump(compose))
    secrets = tmp_path / "autograder-server/autograder/settings/secrets"
    secrets.mkdir(parents=True)
    (secrets / "email_host_password").write_text("first-password\n")

    def labels():
        out = ag_compose.checkout_override(tmp_path, 4, UPSTREAM_CONCURRENCY)
        assert "first-password" not in yaml.safe_dump(out) and "second" not in yaml.safe_dump(out)
        return {name: s.get("labels", {}).get(ag_compose.SECRETS_LABEL)
                for name, s in out["services"].items()}

    first = labels()
    assert first == labels(), "the same secrets, the same label"
    (secrets / "email_host_password").write_text("second-password\n")
    second = labels()
    relabelled = {name for name in second if second[name] != first.get(name)}
    contexts = {name: s["build"]["context"] if isinstance(s.get("build"), dict) else s.get("build")
                for name, s in compose["services"].items()}
    assert relabelled == {name for name, context in contexts.items()
                          if str(context).endswith("autograder-server")}
    assert "django" in relabelled and "nginx" not in relabelled and "postgres" not in relabelled


def test_the_override_and_the_pins_follow_the_compose_file_s_version_or_its_lack(compose):
    # stack deploy refuses files of different versions ("version mismatched"); newer
    # upstream releases write the Compose spec's form, without a version
    unversioned = {k: v for k, v in compose.items() if k != "version"}
    for upstream, version in ((compose, {"version": compose["version"]}), (unversioned, {})):
        out = ag_compose.override(upstream, 4, UPSTREAM_CONCURRENCY)
        pins = ag_compose.pinned(upstream, {"127.0.0.1:5000/nginx": "sha256:abc"})
        assert {k: v for k, v in out.items() if k != "services"} == version
        assert {k: v for k, v in pins.items() if k != "services"} == version


def test_every_celery_worker_and_nothing_else_gets_the_stop_grace_period(compose):
    out = ag_compose.override(compose, 4, UPSTREAM_CONCURRENCY, worker_stop_grace_period=300)
    graced = {name for name, s in out["services"].items() if "stop_grace_period" in s}
    workers = {name for name, s in compose["services"].items()
               if "celery" in str(s.get("command")) and " worker " in f" {s.get('command')} "}
    assert graced == workers and {"grader", "celery_small_tasks"} <= graced
    assert "django" not in graced and "nginx" not in graced
    assert {out["services"][name]["stop_grace_period"] for name in graced} == {"300s"}
    assert not any("stop_grace_period" in s for s in ag_compose.override(
        compose, 4, UPSTREAM_CONCURRENCY)["services"].values())
