"""bed/real_bases.py without building: layers carry Docker's whiteouts, the cache key follows
every input, and the sandbox installs what its release's Dockerfile does."""

import os
import re

import pytest

from bed import config, real_bases


def test_overlay_deletions_become_docker_whiteouts(tmp_path):
    upper, lower = tmp_path / "upper", tmp_path / "lower"
    (lower / "etc/emptied").mkdir(parents=True)
    (upper / "etc/emptied").mkdir(parents=True)
    (upper / "etc/new-dir").mkdir()
    os.mknod(upper / "etc/old.conf", 0o600 | 0o020000, os.makedev(0, 0))  # a deleted file
    for directory in ("etc/emptied", "etc/new-dir"):  # overlayfs marks new directories too
        os.setxattr(upper / directory, "trusted.overlay.opaque", b"y")
    (upper / "etc/new.conf").write_text("kept\n")
    real_bases._docker_whiteouts(upper, lower)
    assert sorted(p.relative_to(upper).as_posix() for p in upper.rglob("*")) == [
        "etc", "etc/.wh.old.conf", "etc/emptied", "etc/emptied/.wh..wh..opq", "etc/new-dir",
        "etc/new.conf"]


def test_the_layer_key_follows_packages_files_and_scripts(monkeypatch):
    monkeypatch.setattr(real_bases, "debian_mirror", lambda: "http://mirror.invalid/debian")
    base = real_bases.Base("x", ("x:1",), ("a",), {}, files=(("/f", "one", 0o644),))
    keys = {str(real_bases.layer_inputs(b)()) for b in (
        base,
        real_bases.Base("x", ("x:1",), ("a", "b"), {}, files=(("/f", "one", 0o644),)),
        real_bases.Base("x", ("x:1",), ("a",), {}, files=(("/f", "two", 0o644),)),
        real_bases.Base("x", ("x:1",), ("a",), {}, files=(("/f", "one", 0o755),)),
        real_bases.Base("x", ("x:1",), ("a",), {}, files=(("/f", "one", 0o644),), script="true"),
    )}
    assert len(keys) == 5
    assert str(real_bases.layer_inputs(base)()) in keys


def test_every_base_has_the_official_names_and_files_it_writes():
    names = {b.image_name for b in real_bases.BASES}
    assert len(names) == len(real_bases.BASES)
    tags = {tag for b in real_bases.BASES for tag in b.tags}
    assert {"python:3.8", "nginx:1.13", "rabbitmq:3.8", "postgres:9.5", "postgres:14",
            "redis:latest", "jameslp/autograder-sandbox:3.1.2"} <= tags
    for base in real_bases.BASES:
        for path, source, _ in base.files:
            if not isinstance(source, str) and base.name != "sandbox":
                assert source(), path  # a file in bed/real-bases
        if "Entrypoint" in base.config:
            assert any(p == real_bases.ENTRYPOINT for p, _, _ in base.files), base.name


@pytest.mark.skipif(not (config.UPSTREAM_BUNDLES / "autograder-sandbox.bundle").exists(),
                    reason="no autograder-sandbox bundle on this machine")
def test_the_sandbox_installs_what_its_dockerfile_does(tmp_path, monkeypatch):
    monkeypatch.setattr(real_bases.releases, "CACHE", tmp_path)
    repo, rev, setup_dir = real_bases.SANDBOX_RELEASE
    dockerfile = real_bases.releases.show(repo, rev, f"{setup_dir}/Dockerfile")
    installed = re.findall(r"apt-get install -y (\S+)", dockerfile)
    sandbox = next(b for b in real_bases.BASES if b.name == "sandbox")
    assert list(sandbox.packages) == installed
    assert f"WORKDIR {sandbox.config['WorkingDir']}" in dockerfile
    assert "COPY cmd_runner.py /usr/local/bin/cmd_runner.py" in dockerfile


def test_scripts_run_one_command_a_line():
    python = next(b for b in real_bases.BASES if b.name == "python")
    assert real_bases.finish_script(python).splitlines()[:3] == [
        "python3 -m venv /usr/local", "update-ca-certificates", "apt-get clean"]
    postgres = next(b for b in real_bases.BASES if b.name == "postgres")
    lines = real_bases.install_script(postgres).splitlines()
    assert lines[1].endswith(" postgresql-common") and lines[-1].endswith(" postgresql-13 gosu locales")
