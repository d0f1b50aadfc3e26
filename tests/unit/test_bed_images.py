"""bed/images.py without a dockerd: the docker-save tarballs it writes are self-consistent,
and a node is sent only the images it lacks."""

import hashlib
import io
import json
import subprocess
import tarfile

import pytest

from bed import images


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setattr(images, "IMAGES_DIR", tmp_path)
    monkeypatch.setattr(images, "LOCK_FILE", tmp_path / ".lock")
    return tmp_path


def test_saved_image_is_consistent(cache):
    images._build(images.BY_NAME["busybox"], "k1")
    images._build(images.BY_NAME["registry"], "k2")  # on busybox: two layers, saved thin
    with tarfile.open(images.tarball("busybox")) as saved:
        base_layer = json.load(saved.extractfile("manifest.json"))[0]["Layers"][0]
    with tarfile.open(images.tarball("registry")) as saved:
        manifest = json.load(saved.extractfile("manifest.json"))
        assert manifest[0]["RepoTags"] == ["agbed/registry:2", "registry:2"]
        config_bytes = saved.extractfile(manifest[0]["Config"]).read()
        own = saved.extractfile(manifest[0]["Layers"][1]).read()
        assert manifest[0]["Layers"][0] == base_layer
        assert base_layer not in saved.getnames()
    config = json.loads(config_bytes)
    assert config["rootfs"]["diff_ids"] == [
        "sha256:" + base_layer.split("/")[0], "sha256:" + hashlib.sha256(own).hexdigest()]
    assert "bin/registry" in tarfile.open(fileobj=io.BytesIO(own)).getnames()
    assert images.meta("registry")["id"] == "sha256:" + hashlib.sha256(config_bytes).hexdigest()
    assert images.meta("registry")["key"] == "k2"


def fake_cache(group):
    """Every image of the group "built": its id is its name, its tarball holds its name."""
    images.group_dir(group).mkdir(exist_ok=True)
    for img in images.in_group(group):
        images._meta_path(img.name).write_text(json.dumps({"id": f"sha256:{img.name}"}))
        images.tarball(img.name).write_bytes(img.name.encode())


def test_load_into_sends_only_missing_images(cache):
    fake_cache("bed")
    have = {tag: f"sha256:{img.name}" for img in images.in_group("bed") for tag in img.tags}
    have["postgres:14"] = "sha256:something-else"  # a stale tag counts as missing
    del have["agbed/busybox:latest"]
    loaded = []

    def node_exec(node, argv, **kw):
        if argv[:3] == ["docker", "image", "ls"]:
            out = "".join(f"{t} {i}\n" for t, i in have.items())
            return subprocess.CompletedProcess(argv, 0, out, "")
        loaded.append((node, kw["stdin"].read()))
        return subprocess.CompletedProcess(argv, 0, "", "")

    assert images.load_into(node_exec, "nuc2") == ["busybox", "postgres14"]
    assert loaded == [("nuc2", b"busybox"), ("nuc2", b"postgres14")]
    loaded.clear()
    assert images.load_into(node_exec, "nuc3", names=["registry"]) == ["busybox"]


def test_groups_share_tags_but_not_their_cache(cache):
    fake_cache("bed")
    fake_cache("real")
    assert images.tarball("real-postgres").parent == cache / "real"
    have = {tag: f"sha256:{img.name}" for img in images.in_group("bed") for tag in img.tags}

    def node_exec(node, argv, **kw):
        out = "".join(f"{t} {i}\n" for t, i in have.items())
        return subprocess.CompletedProcess(argv, 0, out, "")

    assert images.missing(node_exec, "nuc1") == []
    # the stand-ins hold postgres:13 and redis:latest: the real ones are missing there
    assert images.missing(node_exec, "nuc1", group="real") == [
        img.name for img in images.in_group("real")]


def test_a_group_is_built_and_pruned_on_its_own(cache, monkeypatch):
    built = []
    monkeypatch.setattr(images, "_build", lambda img, key: built.append(img.name))
    monkeypatch.setattr(images, "_key", lambda img: img.name)
    fake_cache("bed")
    (cache / "gone.tar").write_bytes(b"")  # an image this code no longer makes
    images.build_all("bed")
    assert built == [img.name for img in images.in_group("bed")]  # the fake metas lack keys
    assert not (cache / "gone.tar").exists()
    assert not images.group_dir("real").exists()  # another group's cache is left alone
