"""Shared fixtures. Tiers: tests/unit (no daemons), tests/functional (Salt loaders, one node),
tests/integration (the bed's master + minions + swarm). Integration tests marked `vm` run on
tier 2; the others on tier 1. Tests run in that order, so the bed switches tier once."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bed import config, host  # noqa: E402
from bed.__main__ import tier_module  # noqa: E402

TIER_ORDER = ("unit", "functional", "integration")


def pytest_collection_modifyitems(items):
    def rank(item):
        parts = Path(str(item.fspath)).relative_to(REPO / "tests").parts
        tier = TIER_ORDER.index(parts[0]) if parts[0] in TIER_ORDER else len(TIER_ORDER)
        return (tier, item.get_closest_marker("vm") is not None)

    items.sort(key=rank)  # stable: keeps file order inside a tier


class Bed:
    """The running test bed, as the tests see it: the ./testbed CLI plus the master's CLI."""

    def __init__(self, tier: str, nodes):
        self.tier = tier
        self.nodes = list(nodes)

    def cli(self, *args, check=True, timeout=900) -> subprocess.CompletedProcess:
        res = subprocess.run([str(REPO / "testbed"), *args], capture_output=True, text=True,
                             timeout=timeout)
        if check and res.returncode != 0:
            raise AssertionError(f"./testbed {' '.join(args)} failed:\n{res.stdout}\n{res.stderr}")
        return res

    def exec(self, node: str, *cmd, check=True) -> subprocess.CompletedProcess:
        res = tier_module(self.tier).node_exec(node, list(cmd))
        if check and res.returncode != 0:
            raise AssertionError(f"{node}: {' '.join(cmd)} failed:\n{res.stdout}\n{res.stderr}")
        return res

    def addr(self, node: str) -> str:
        return config.node_addr(self.tier, config.node_index(node))

    def salt_raw(self, tool: str, *args, timeout=900) -> subprocess.CompletedProcess:
        return subprocess.run(host.salt_cmd(tool, *args), capture_output=True, text=True,
                              timeout=timeout)

    def salt(self, *args, timeout=900):
        """`salt --out=json --static ARGS` → parsed returns by minion id."""
        res = self.salt_raw("salt", "--out=json", "--static", *args, timeout=timeout)
        try:
            return json.loads(res.stdout)
        except ValueError as exc:
            raise AssertionError(f"salt {args} gave no JSON:\n{res.stdout}\n{res.stderr}") from exc

    def salt_run(self, *args, timeout=900):
        res = self.salt_raw("salt-run", "--out=json", *args, timeout=timeout)
        try:
            return json.loads(res.stdout)
        except ValueError as exc:
            raise AssertionError(f"salt-run {args} gave no JSON:\n{res.stdout}\n{res.stderr}") from exc

    @property
    def pillar_file(self) -> Path:
        return config.PILLAR_DIR / "bed.sls"

    def read_pillar(self) -> dict:
        return yaml.safe_load(self.pillar_file.read_text())

    def write_pillar(self, data: dict) -> None:
        self.pillar_file.write_text(yaml.safe_dump(data, sort_keys=False))
        self.salt("*", "saltutil.refresh_pillar", "wait=True")


def _bed(tier: str, count: int = 3) -> Bed:
    state = json.loads(config.STATE_FILE.read_text()) if config.STATE_FILE.exists() else {}
    if state.get("tier") not in (None, tier) and state.get("nodes"):
        subprocess.run([str(REPO / "testbed"), "down"], check=True)
    subprocess.run([str(REPO / "testbed"), "up", "--nodes", str(count)]
                   + (["--vm"] if tier == "vm" else []), check=True)
    nodes = json.loads(config.STATE_FILE.read_text())["nodes"]
    return Bed(tier, nodes)


@pytest.fixture(scope="session")
def netns_bed() -> Bed:
    """Tier 1 with 3 namespace nodes, up (started if needed)."""
    return _bed("netns")


@pytest.fixture(scope="session")
def vm_bed() -> Bed:
    """Tier 2 with 3 qemu guests, up (started if needed; tier 1 goes down first)."""
    return _bed("vm")
