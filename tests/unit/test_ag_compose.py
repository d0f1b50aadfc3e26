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
    assert "command" not in services.get("tiny_grader", {})  # unchanged from upstream
    assert set(n for n, s in services.items() if "command" in s) == {"django", "grader",
                                                                      "rerun_grader"}


SECRET_FILES = {"autograder/settings/secrets/secret_key": "a" * 64,
                "autograder/settings/secrets/private-keys-v1.d/F00D.key": "b" * 64,
                "autograder/settings/oauth2_secrets.json": "c" * 64}


def test_each_secret_file_is_given_at_its_path_to_every_server_built_service_only(compose):
    """Files, not the dir: the secrets dir stays writable in the container (gpg's home)."""
    out = ag_compose.override(compose, 4, UPSTREAM_CONCURRENCY, SECRET_FILES)
    given = {n for n, s in out["services"].items() if "secrets" in s}
    from_server = {n for n, s in compose["services"].items()  # upstream: build may be a str
                   if isinstance(s.get("build"), dict)
                   and s["build"]["context"] == "./autograder-server"}
    assert given == from_server
    assert {"django", "grader", "celerybeat"} <= given and "nginx" not in given
    targets = {g["target"]: g["source"] for g in out["services"]["django"]["secrets"]}
    assert set(targets) == {f"/usr/src/app/{path}" for path in SECRET_FILES}
    assert {out["secrets"][source]["file"] for source in targets.values()} == {
        f"./autograder-server/{path}" for path in SECRET_FILES}
    assert not any("volumes" in s for s in out["services"].values())


def test_no_secret_file_no_secrets():
    out = ag_compose.override({"services": {"django": {"build": "./autograder-server"}}}, 4, {})
    assert out == {"services": {}}


def test_postgres_reads_the_password_secret_and_gets_the_version_only_when_given(compose):
    plain = ag_compose.override(compose, 4, UPSTREAM_CONCURRENCY, SECRET_FILES)
    assert "postgres" not in plain["services"]
    files = {**SECRET_FILES, ag_compose.DB_PASSWORD: "d" * 64}
    out = ag_compose.override(compose, 4, UPSTREAM_CONCURRENCY, files, postgres_version="14")
    postgres = out["services"]["postgres"]
    # upstream's 'postgres' is blanked in the compose file (ag.tweaks), not here
    assert postgres["environment"] == {"POSTGRES_PASSWORD_FILE": "/run/secrets/db_password"}
    assert postgres["image"] == "postgres:14"
    (given,) = postgres["secrets"]
    assert given["target"] == "db_password"
    assert out["secrets"][given["source"]] == {
        "file": "./autograder-server/autograder/settings/secrets/db_password"}


def server_checkout(tmp_path, compose):
    (tmp_path / "docker-compose.yml").write_text(yaml.safe_dump(compose))
    secrets = tmp_path / "autograder-server/autograder/settings/secrets"
    secrets.mkdir(parents=True)
    return secrets


def test_checkout_override_names_the_secret_files_never_their_values(tmp_path, compose):
    secrets = server_checkout(tmp_path, compose)
    assert "postgres" not in ag_compose.checkout_override(tmp_path, 4, UPSTREAM_CONCURRENCY)["services"]
    (secrets / "db_password").write_text("password-value\n")
    (secrets / "private-keys-v1.d").mkdir()
    (secrets / "private-keys-v1.d/F00D.key").write_text("key-value\n")
    for runtime in ("random_seed", "trustdb.gpg", "pubring.kbx~", "pubring.kbx.lock",
                    ".#lk0x0000.nuc1.7"):  # what gpg leaves in its home as it runs
        (secrets / runtime).write_text("runtime\n")
    out = ag_compose.checkout_override(tmp_path, 4, UPSTREAM_CONCURRENCY)
    text = yaml.safe_dump(out)
    assert "password-value" not in text and "key-value" not in text
    assert out["services"]["postgres"]["environment"]["POSTGRES_PASSWORD_FILE"] == \
        "/run/secrets/db_password"
    assert sorted(g["target"] for g in out["services"]["django"]["secrets"]) == [
        "/usr/src/app/autograder/settings/secrets/db_password",
        "/usr/src/app/autograder/settings/secrets/private-keys-v1.d/F00D.key"]


def test_a_rotated_secret_is_a_new_secret_given_to_exactly_the_services_that_read_it(
        tmp_path, compose):
    secrets = server_checkout(tmp_path, compose)
    (secrets / "email_host_password").write_text("first-password\n")

    def given():
        out = ag_compose.checkout_override(tmp_path, 4, UPSTREAM_CONCURRENCY)
        assert "first-password" not in yaml.safe_dump(out) and "second" not in yaml.safe_dump(out)
        return {name: s.get("secrets") for name, s in out["services"].items()}, set(out["secrets"])

    first, first_secrets = given()
    assert (first, first_secrets) == given(), "the same content, the same secret"
    (secrets / "email_host_password").write_text("second-password\n")
    second, second_secrets = given()
    changed = {name for name in second if second[name] != first.get(name)}
    contexts = {name: s["build"]["context"] if isinstance(s.get("build"), dict) else s.get("build")
                for name, s in compose["services"].items()}
    assert changed == {name for name, context in contexts.items()
                       if str(context).endswith("autograder-server")}
    assert "django" in changed and "nginx" not in changed and "postgres" not in changed
    assert len(second_secrets - first_secrets) == 1  # swarm secrets never change: a new one


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


def test_a_key_set_twice_in_a_mapping_is_found_on_its_earlier_line():
    text = ("services:\n  postgres:\n    image: 127.0.0.1:5000/postgres\n    restart: always\n"
            "    image: postgres:9.5\n  redis:\n    image: redis:latest\n")
    assert ag_compose.shadowed_lines(text) == [2]
    assert ag_compose.shadowed_lines("a:\n  b: 1\n  c: 2\n") == []


def test_a_key_set_twice_over_several_lines_is_refused_naming_its_lines():
    with pytest.raises(ValueError, match="line 2: 'deploy' is set again at line 4"):
        ag_compose.shadowed_lines("web:\n  deploy:\n    replicas: 1\n  deploy: {}\n")


# 2025.08's postgres, as its release notes and PRs describe it: built from a Dockerfile whose
# FROM takes the version from a build arg with a sentinel default
BUILT_POSTGRES = {"version": "3.7", "services": {"postgres": {
    "image": "127.0.0.1:5000/postgres",
    "build": {"context": "./postgres", "args": {
        "AG_POSTGRES_VERSION": "${AG_POSTGRES_VERSION:-AG_POSTGRES_VERSION_NOT_SET}"}}}}}


def test_build_args_pass_through_with_the_postgres_version_as_its_build_arg():
    variables = ag_compose.build_variables(14)
    ((key, images),) = ag_compose.builds(BUILT_POSTGRES, variables).items()
    assert key == ("postgres", "Dockerfile", (("AG_POSTGRES_VERSION", "14"),))
    assert images == ["127.0.0.1:5000/postgres"]
    ((unset, _),) = ag_compose.builds(BUILT_POSTGRES).items()
    assert unset[2] == (("AG_POSTGRES_VERSION", "AG_POSTGRES_VERSION_NOT_SET"),)
    # the override leaves a built postgres's image alone: the version went into the build
    override = ag_compose.override(BUILT_POSTGRES, 4, {}, postgres_version=14)
    assert "image" not in override["services"].get("postgres", {})


@pytest.mark.parametrize(("value", "variables", "expected"), [
    ("${V}", {}, ""), ("${V:-d}", {"V": ""}, "d"), ("${V-d}", {"V": ""}, ""),
    ("${V-d}", {}, "d"), ("x${V}y", {"V": "1"}, "x1y"), ("plain", {"V": "1"}, "plain")])
def test_build_arg_values_are_interpolated_as_compose_does(value, variables, expected):
    assert ag_compose.interpolated(value, variables) == expected


def test_build_args_in_list_form_and_without_a_value_take_the_variable():
    build = {"context": ".", "args": ["A=1", "AG_POSTGRES_VERSION"]}
    assert ag_compose.build_args(build, {"AG_POSTGRES_VERSION": "14"}) == (
        ("A", "1"), ("AG_POSTGRES_VERSION", "14"))


def test_build_args_change_the_content_hash_and_no_args_keep_the_old_one(tmp_path):
    (tmp_path / "Dockerfile").write_text("ARG AG_POSTGRES_VERSION\nFROM postgres:${AG_POSTGRES_VERSION}\n")
    plain = ag_compose.context_hash(str(tmp_path), "Dockerfile")
    assert ag_compose.context_hash(str(tmp_path), "Dockerfile", ()) == plain
    fourteen = ag_compose.context_hash(str(tmp_path), "Dockerfile", (("AG_POSTGRES_VERSION", "14"),))
    fifteen = ag_compose.context_hash(str(tmp_path), "Dockerfile", (("AG_POSTGRES_VERSION", "15"),))
    assert len({plain, fourteen, fifteen}) == 3
