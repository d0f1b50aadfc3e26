"""The bed's copies of the releases whose website pins a package the npm registry lost: only
that lock entry's integrity changes, in one commit on the pinned website commit and one on the
full-stack release moving only its submodule link, the same commits every time."""

import json
import subprocess

import pytest

from bed import npm_rebuilt

LOCK_V1 = """{
  "name": "ag-website-vue",
  "lockfileVersion": 1,
  "dependencies": {
    "ag-client-typescript": {
      "version": "2.4.4",
      "resolved": "https://registry.example/ag-client-typescript/-/ag-client-typescript-2.4.4.tgz",
      "integrity": "sha512-OLD==",
      "requires": {
        "axios": "^0.18.1"
      }
    },
    "axios": {
      "version": "0.18.1",
      "integrity": "sha512-AXIOS=="
    },
    "other": {
      "version": "1.0.0",
      "requires": {
        "ag-client-typescript": "2.4.4"
      }
    }
  }
}
"""

LOCK_V2 = """{
  "lockfileVersion": 2,
  "packages": {
    "node_modules/ag-client-typescript": {
      "version": "2.4.4",
      "resolved": "https://registry.example/ag-client-typescript/-/ag-client-typescript-2.4.4.tgz",
      "integrity": "sha512-OLD=="
    }
  },
  "dependencies": {
    "ag-client-typescript": {
      "version": "2.4.4",
      "resolved": "https://registry.example/ag-client-typescript/-/ag-client-typescript-2.4.4.tgz",
      "integrity": "sha512-OLD=="
    }
  }
}
"""


def test_only_that_entry_s_integrity_changes():
    new = npm_rebuilt.lock_with_integrity(LOCK_V1, "ag-client-typescript", "2.4.4", "sha512-NEW")
    assert new == LOCK_V1.replace("sha512-OLD==", "sha512-NEW")
    assert json.loads(new)["dependencies"]["axios"]["integrity"] == "sha512-AXIOS=="


def test_both_entries_of_a_v2_lock_change():
    new = npm_rebuilt.lock_with_integrity(LOCK_V2, "ag-client-typescript", "2.4.4", "sha512-NEW")
    assert new == LOCK_V2.replace("sha512-OLD==", "sha512-NEW")


@pytest.mark.parametrize("name, version", [("ag-client-typescript", "2.4.5"), ("axio", "0.18.1")])
def test_a_lock_without_that_entry_is_refused(name, version):
    with pytest.raises(ValueError, match="no entry"):
        npm_rebuilt.lock_with_integrity(LOCK_V1, name, version, "sha512-NEW")


def test_integrity_is_npm_s_sha512():
    assert npm_rebuilt.integrity(b"") == (
        "sha512-z4PhNX7vuL3xVChQ1m2AB9Yg5AULVxXcg/SpIdNs6c5H0NE8XYXysP+DGNKHfuwvY7kxvUdBeoGlODJ6+SfaPg==")


def git(*args, cwd=None, git_dir=None) -> str:
    pre = ["--git-dir", str(git_dir)] if git_dir else []
    return subprocess.run(["git", "-c", "protocol.file.allow=always", "-c", "user.name=t",
                           "-c", "user.email=t@localhost", *pre, *args],
                          cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


@pytest.fixture
def served(tmp_path, monkeypatch):
    """ag-website-vue and autograder-full-stack, bare and side by side, the stack's tag
    2022.01.v1 pinning the website's commit with LOCK_V1 (an upstream-like pair)."""
    work, out = tmp_path / "work", tmp_path / "served"
    site = work / "ag-website-vue"
    site.mkdir(parents=True)
    git("init", "-q", "-b", "master", cwd=site)
    (site / "package-lock.json").write_text(LOCK_V1)
    (site / "Dockerfile-website-prod").write_text("FROM nginx:1.13\n")
    git("add", "-A", cwd=site)
    git("commit", "-q", "-m", "website", cwd=site)
    git("tag", "2022.01.v1", cwd=site)
    stack = work / "autograder-full-stack"
    stack.mkdir()
    git("init", "-q", "-b", "master", cwd=stack)
    git("submodule", "add", "-q", str(site), "ag-website-vue", cwd=stack)
    git("commit", "-q", "-m", "stack", cwd=stack)
    git("tag", "2022.01.v1", cwd=stack)
    for repo in (site, stack):
        git("clone", "-q", "--bare", str(repo), str(out / f"{repo.name}.git"))
    monkeypatch.setattr(npm_rebuilt, "record", lambda name, version: {"integrity": "sha512-NEW"})
    return out


def test_the_bed_s_tags_differ_from_the_release_only_in_that_entry(served):
    tags = npm_rebuilt.bed_tags(served)
    assert list(tags) == ["2022.01.v1-agbed"]  # 2021.05.v4 is not in these repositories
    stack, site = served / "autograder-full-stack.git", served / "ag-website-vue.git"
    assert git("diff", "--stat", "2022.01.v1", "2022.01.v1-agbed", git_dir=stack) \
        .startswith("ag-website-vue |")
    assert git("rev-parse", "2022.01.v1-agbed^", git_dir=stack) == \
        git("rev-parse", "2022.01.v1", git_dir=stack)
    diff = npm_rebuilt.lock_entry_diff(served, "2022.01.v1")
    assert [line for line in diff.splitlines() if line[:1] in "+-" and line[:3] not in "+++---"] \
        == ['-      "integrity": "sha512-OLD==",', '+      "integrity": "sha512-NEW",']
    site_tag = git("rev-parse", "2022.01.v1-agbed", git_dir=site)
    assert git("rev-parse", "2022.01.v1-agbed:ag-website-vue", git_dir=stack) == site_tag
    assert git("log", "-1", "--format=%an %s", site_tag, git_dir=site).startswith(
        "agbed test bed agbed: package-lock.json's integrity of ag-client-typescript 2.4.4")
    # made again (a restart of the git daemon): the same commits
    assert npm_rebuilt.bed_tags(served) == tags
    assert git("rev-parse", "2022.01.v1-agbed", git_dir=site) == site_tag


def test_a_clone_of_the_bed_s_tag_checks_out_the_changed_lock(served, tmp_path):
    npm_rebuilt.bed_tags(served)
    checkout = tmp_path / "checkout"
    git("clone", "-q", "--branch", "2022.01.v1-agbed",
        str(served / "autograder-full-stack.git"), str(checkout))
    git("config", "submodule.ag-website-vue.url", str(served / "ag-website-vue.git"), cwd=checkout)
    git("submodule", "update", "-q", "--init", cwd=checkout)
    lock = (checkout / "ag-website-vue/package-lock.json").read_text()
    assert lock == LOCK_V1.replace("sha512-OLD==", "sha512-NEW")
    git("diff", "--exit-code", "HEAD", cwd=checkout / "ag-website-vue")


def test_without_both_repositories_nothing_is_made(tmp_path):
    assert npm_rebuilt.bed_tags(tmp_path) == {}
