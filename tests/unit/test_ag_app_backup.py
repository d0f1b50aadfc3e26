"""ag_app's backup of the checkout's data directories without Docker: packed readable by root
only, unpacked over the checkout with the live files kept, the oldest pruned, and an archive
with a member outside the checkout refused before anything is written."""

import io
import os
import tarfile

import pytest
from salt.exceptions import CommandExecutionError

from tests.extensions import load

ag_app = load("_modules/ag_app.py", "ag_app")
DIRS = ["server/media_root", "server/secrets"]


def checkout(root, secret="old key", password="old password"):
    for path, text in ((f"{DIRS[0]}/c1/s1/hello.py", "print(1)"), (f"{DIRS[1]}/secret_key", secret),
                       (f"{DIRS[1]}/db_password", password)):
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(text)


def test_files_round_trip_keeping_the_live_password_and_pruning_the_oldest(tmp_path):
    site, backups = tmp_path / "site", tmp_path / "backups"
    checkout(site)
    for name in ("20260101-000000", "20260102-000000"):
        packed = ag_app.backup_files(f"{backups}/{name}/files.tar.gz", str(site), DIRS, keep=1)
    assert packed["pruned"] == ["20260101-000000"] and os.listdir(backups) == ["20260102-000000"]
    assert oct(os.stat(backups).st_mode & 0o777) == "0o700"
    assert oct(os.stat(packed["file"]).st_mode & 0o777) == "0o600"

    wiped = tmp_path / "wiped"
    checkout(wiped, secret="new key", password="live password")
    (wiped / DIRS[0] / "c1/s1/hello.py").unlink()
    (wiped / DIRS[1] / "private-keys-v1.d").mkdir()
    (wiped / DIRS[1] / "private-keys-v1.d/NEW.key").write_text("made since")
    (wiped / DIRS[0] / "c1/s2.py").write_text("kept: media_root is not mirrored")
    count = ag_app.restore_files(packed["file"], str(wiped), ["server/secrets/db_password"],
                                 [DIRS[1]])
    assert count == 2
    assert not (wiped / DIRS[1] / "private-keys-v1.d/NEW.key").exists()
    assert (wiped / DIRS[0] / "c1/s2.py").exists()
    assert (wiped / DIRS[0] / "c1/s1/hello.py").read_text() == "print(1)"
    assert (wiped / DIRS[1] / "secret_key").read_text() == "old key"
    assert (wiped / DIRS[1] / "db_password").read_text() == "live password"


@pytest.mark.parametrize("member", ["../outside", "/etc/passwd", "server/link"])
def test_an_archive_reaching_outside_the_checkout_is_refused(tmp_path, member):
    src = tmp_path / "evil.tar.gz"
    with tarfile.open(src, "w:gz") as tar:
        info = tarfile.TarInfo(member)
        if member.endswith("link"):
            info.type, info.linkname = tarfile.SYMTYPE, "/etc"
        tar.addfile(info, io.BytesIO(b""))
    with pytest.raises(CommandExecutionError, match="not a plain file or directory"):
        ag_app.restore_files(str(src), str(tmp_path / "site"))
    assert not (tmp_path / "outside").exists()


def test_a_refused_archive_writes_nothing_even_before_its_bad_member(tmp_path):
    src = tmp_path / "mixed.tar.gz"
    with tarfile.open(src, "w:gz") as tar:
        tar.addfile(tarfile.TarInfo("server/fine.txt"), io.BytesIO(b""))
        tar.addfile(tarfile.TarInfo("../outside"), io.BytesIO(b""))
    with pytest.raises(CommandExecutionError):
        ag_app.restore_files(str(src), str(tmp_path / "site"))
    assert not (tmp_path / "site").exists()


def test_revisions_read_the_deploy_s_record_and_the_checkout_s_git(tmp_path, monkeypatch):
    monkeypatch.setattr(ag_app, "DEPLOYED_REVISION", str(tmp_path / "{stack}.revision"))
    monkeypatch.setattr(ag_app, "__salt__", {"git.revision": lambda path: f"head of {path}"},
                        raising=False)
    site = tmp_path / "site"
    site.mkdir()
    assert ag_app.revisions("ag-stack", str(site)) == {"deployed": None, "checkout": None}
    (site / ".git").mkdir()
    (tmp_path / "ag-stack.revision").write_text("a" * 40 + "\n")
    assert ag_app.revisions("ag-stack", str(site)) == {"deployed": "a" * 40,
                                                       "checkout": f"head of {site}"}


def test_backups_made_name_the_revision_each_recorded_oldest_first(tmp_path):
    assert ag_app.backups_made(str(tmp_path / "none yet")) == {}
    for name, revision in (("20260102-000000-before-upgrade", "a" * 40),
                           ("20260101-000000", None)):
        (tmp_path / name).mkdir()
        if revision:
            (tmp_path / name / ag_app.REVISION_PART).write_text(revision + "\n")
    (tmp_path / "stray-file").write_text("not a backup")
    assert ag_app.backups_made(str(tmp_path)) == {"20260101-000000": None,
                                                  "20260102-000000-before-upgrade": "a" * 40}
