"""The bed's git daemon serves the real releases' bundles as bare repositories side by side,
so autograder-full-stack's relative submodule URLs resolve among them."""

import subprocess

import pytest

from bed import config, releases


def git(*args, cwd=None) -> str:
    return subprocess.run(["git", "-c", "protocol.file.allow=always", "-c", "user.name=t",
                           "-c", "user.email=t@localhost", *args],
                          cwd=cwd, check=True, capture_output=True, text=True).stdout


@pytest.fixture
def bundles(tmp_path, monkeypatch):
    """autograder-server.bundle and an autograder-full-stack.bundle whose tag 1.0 pins it as
    a submodule by a relative URL, as upstream's .gitmodules does."""
    work, out = tmp_path / "work", tmp_path / "bundles"
    out.mkdir()
    server = work / "autograder-server"
    server.mkdir(parents=True)
    git("init", "-q", "-b", "master", cwd=server)
    (server / "manage.py").write_text("v1\n")
    git("add", "-A", cwd=server)
    git("commit", "-q", "-m", "server", cwd=server)
    git("bundle", "create", "-q", str(out / "autograder-server.bundle"), "--all", cwd=server)
    stack = work / "autograder-full-stack"
    stack.mkdir()
    git("init", "-q", "-b", "master", cwd=stack)
    git("submodule", "add", "-q", str(server), "autograder-server", cwd=stack)
    # relative to the superproject's own URL, as upstream's
    git("config", "-f", ".gitmodules", "submodule.autograder-server.url",
        "../autograder-server.git", cwd=stack)
    git("add", "-A", cwd=stack)
    git("commit", "-q", "-m", "stack", cwd=stack)
    git("tag", "1.0", cwd=stack)
    git("bundle", "create", "-q", str(out / "autograder-full-stack.bundle"), "--all", cwd=stack)
    monkeypatch.setattr(config, "UPSTREAM_BUNDLES", out)
    return out, server


def test_a_release_checks_out_with_its_submodules(bundles, tmp_path):
    served = tmp_path / "served"
    repos = releases.bare_repos(served)
    assert [r.name for r in repos] == ["autograder-full-stack.git", "autograder-server.git"]
    checkout = tmp_path / "checkout"
    git("clone", "-q", "--branch", "1.0", str(served / "autograder-full-stack.git"), str(checkout))
    git("submodule", "update", "-q", "--init", "--recursive", cwd=checkout)
    assert (checkout / "autograder-server/manage.py").read_text() == "v1\n"


def test_a_changed_bundle_is_served_again(bundles, tmp_path):
    out, server = bundles
    served = tmp_path / "served"
    releases.bare_repos(served)
    (server / "manage.py").write_text("v2\n")
    git("commit", "-q", "-am", "server v2", cwd=server)
    git("bundle", "create", "-q", str(out / "autograder-server.bundle"), "--all", cwd=server)
    releases.bare_repos(served)
    assert git("--git-dir", str(served / "autograder-server.git"), "show", "master:manage.py") == "v2\n"


def test_no_bundles_serve_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr(config, "UPSTREAM_BUNDLES", tmp_path / "absent")
    assert releases.bare_repos(tmp_path / "served") == []


def test_show_reads_a_file_of_a_release(bundles, tmp_path, monkeypatch):
    monkeypatch.setattr(releases, "CACHE", tmp_path / "cache")
    assert releases.show("autograder-server", "master", "manage.py") == "v1\n"
    with pytest.raises(RuntimeError, match="no autograder-sandbox.bundle"):
        releases.show("autograder-sandbox", "3.1.2", "Dockerfile")
