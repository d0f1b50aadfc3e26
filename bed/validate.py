"""`./testbed validate PILLAR_DIR`: render a pillar directory the way the salt-master would
(salt-call --local with that pillar root, no master, no nodes) and check the autograder key
against the project's cluster rules (_utils/ag_cluster.py). For a pillar repository's CI."""

import importlib.util
import json
import subprocess
import tempfile
from pathlib import Path

import yaml

from . import config


def cluster_rules():
    spec = importlib.util.spec_from_file_location("ag_cluster", config.REPO / "_utils/ag_cluster.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def render(pillar_dir: Path, minion_id: str) -> dict:
    """The pillar minion `minion_id` gets from `pillar_dir` (its top.sls and SLS files)."""
    with tempfile.TemporaryDirectory(prefix="ag-validate-") as tmp:
        (Path(tmp) / "minion").write_text(yaml.safe_dump({
            "id": minion_id,
            "root_dir": tmp,
            "file_client": "local",
            "file_roots": {"base": [tmp]},
            "pillar_roots": {"base": [str(pillar_dir.resolve())]},
            "log_file": f"{tmp}/minion.log",
            "pillar_raise_on_missing": False,
        }))
        res = subprocess.run(
            [str(config.SALT_BIN / "salt-call"), "-c", tmp, "--local", "--out=json",
             "--log-level=error", "--retcode-passthrough", "pillar.items", "unmask=True"],
            capture_output=True, text=True, timeout=120,
        )
    try:
        pillar = json.loads(res.stdout)["local"]
        if pillar.get("_errors"):  # salt says only "see the log": the log is on stderr
            pillar["_errors"].append(res.stderr.split("Traceback")[0].strip())
        return pillar
    except (ValueError, KeyError) as exc:
        raise RuntimeError(f"rendering the pillar in {pillar_dir} failed:\n{res.stdout}{res.stderr}") from exc


def validate(pillar_dir: Path, minion_id: str) -> list:
    """Every error of the pillar `minion_id` gets from `pillar_dir` (empty: valid)."""
    if not (pillar_dir / "top.sls").is_file():
        return [f"{pillar_dir} has no top.sls; give the pillar directory itself"]
    pillar = render(pillar_dir, minion_id)
    if pillar.get("_errors"):
        return [f"pillar rendering: {e}" for e in pillar["_errors"]]
    return cluster_rules().validate(pillar.get("autograder"))
