"""A masterless minion for the functional tier: this repo's state tree and extensions, a
pillar given by the test, Salt's real loaders, one process per call."""

import json
import subprocess

import pytest
import yaml

from bed import config


class LocalMinion:
    def __init__(self, root, pillar: dict, grains=None, minion_id="nuc1", **options):
        self.root = root
        (root / "pillar").mkdir(parents=True, exist_ok=True)
        (root / "pillar/top.sls").write_text("base:\n  '*': [site]\n")
        (root / "pillar/site.sls").write_text(yaml.safe_dump({"autograder": pillar}))
        conf = {
            "id": minion_id, "root_dir": str(root / "root"), "file_client": "local",
            "file_roots": {"base": [str(config.REPO / "salt"), str(config.REPO)]},
            "pillar_roots": {"base": [str(root / "pillar")]},
            "module_dirs": [str(config.REPO / "_modules")],
            "states_dirs": [str(config.REPO / "_states")],
            "utils_dirs": [str(config.REPO / "_utils")],
            "grains": grains or {},
            **options,
        }
        (root / "minion").write_text(yaml.safe_dump(conf))

    def call(self, *args):
        """`salt-call --local ARGS` → its JSON return (the value under "local")."""
        res = subprocess.run(
            [str(config.SALT_BIN / "salt-call"), "-c", str(self.root), "--local", "--out=json",
             *args], capture_output=True, text=True,
        )
        try:
            return json.loads(res.stdout)["local"]
        except (ValueError, KeyError) as exc:
            raise AssertionError(f"salt-call {args}: {res.stdout}\n{res.stderr}") from exc

    def apply(self, sls, test=False) -> dict:
        """state.apply → {state id: {result, changes, comment}}."""
        ret = self.call("state.apply", sls, f"test={test}")
        assert isinstance(ret, dict), ret
        return {v["__id__"]: v for v in ret.values()}


@pytest.fixture
def local_minion(tmp_path):
    return lambda pillar, **kw: LocalMinion(tmp_path, pillar, **kw)
