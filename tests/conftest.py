"""Shared fixtures. Tiers: tests/unit (no daemons), tests/functional (Salt loaders, one node),
tests/integration (the bed's master + minions + swarm). Integration tests marked `vm` run on
tier 2; the others on tier 1. Tests run in that order, so the bed switches tier once."""

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bed import config, host, vm  # noqa: E402
from bed.__main__ import tier_module  # noqa: E402
from bed.util import wait_for  # noqa: E402

TIER_ORDER = ("unit", "functional", "integration")


def pytest_configure(config):
    """Log records of the modules under test go to pytest's capture, shown with a failing test;
    Salt's deferred stderr handler would keep them and write them out after pytest closed it."""
    import salt._logging

    salt._logging.shutdown_temp_handler()


def pytest_collection_modifyitems(items):
    def rank(item):
        parts = Path(str(item.fspath)).relative_to(REPO / "tests").parts
        tier = TIER_ORDER.index(parts[0]) if parts[0] in TIER_ORDER else len(TIER_ORDER)
        return (tier, item.get_closest_marker("vm") is not None)

    items.sort(key=rank)  # stable: keeps file order inside a tier


def pytest_collection_finish(session):
    """The other tier 2 tests start from guests without the stack (the first highstate forms
    the swarm, the probes publish the stack's ports), and vm_stack deploys the stack on fresh
    ones: they cannot share a session's guests."""
    kinds = {item.get_closest_marker("vm_stack") is not None
             for item in session.items if item.get_closest_marker("vm")}
    if kinds == {True, False}:
        raise pytest.UsageError('run the vm_stack tests in a session of their own: -m vm_stack, '
                                'and the other tier 2 tests with -m "vm and not vm_stack"')


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

    def leave_swarm(self, node: str) -> None:
        """`node` out of any swarm, as its engine says: a leave not taken (a busy engine, a
        join still being retried) once kept a tier 2 worker in the swarm after its tests."""
        def left():
            self.exec(node, "docker", "swarm", "leave", "--force", check=False)
            return self.exec(node, "docker", "info", "-f", "{{.Swarm.LocalNodeState}}",
                             check=False).stdout.strip() == "inactive"
        wait_for(left, 120, f"{node} to leave its swarm", interval=3)

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


def _node_names(count: int) -> list:
    """The names of a bed of `count` nodes, as `up --nodes COUNT` brings them up."""
    return [config.node_name(i) for i in range(1, count + 1)]


def _bed(tier: str, count: int = 3, fresh: bool = False) -> Bed:
    """The bed on `tier`, up; `fresh`: whatever ran before goes down first, its disks wiped."""
    state = json.loads(config.STATE_FILE.read_text()) if config.STATE_FILE.exists() else {}
    wanted = _node_names(count)
    if fresh:
        subprocess.run([str(REPO / "testbed"), "down", "--wipe"], check=True)
    elif state.get("nodes") and (state.get("tier") != tier or state["nodes"] != wanted):
        # another tier, or a node a killed run added (`up` keeps running nodes): the tests
        # expect exactly `count` nodes
        subprocess.run([str(REPO / "testbed"), "down"], check=True)
    subprocess.run([str(REPO / "testbed"), "up", "--nodes", str(count)]
                   + (["--vm"] if tier == "vm" else []), check=True)
    nodes = json.loads(config.STATE_FILE.read_text())["nodes"]
    return Bed(tier, nodes)


@pytest.fixture(scope="session")
def netns_bed() -> Bed:
    """Tier 1 with 3 namespace nodes, up (started if needed)."""
    return _bed("netns")


class PassedGuests:
    """The tier 2 guests of the last session in which every tier 2 test but vm_stack passed
    (those guests carry no stack, as the others expect): their disks,
    kept powered off (bed/vm.py), and machine ids. Each session starts from them, so one that
    fails or is killed spoils nothing for the next."""

    ids_file = vm.PASSED_DIR / "machine-ids.json"

    @classmethod
    def restore(cls, count: int):
        """Their machine ids, with their disks back in place of the live ones; None if none
        were kept or they were not `count` guests."""
        if not cls.ids_file.exists():
            return None
        ids = json.loads(cls.ids_file.read_text())
        if sorted(ids) != _node_names(count):
            return None
        subprocess.run([str(REPO / "testbed"), "down"], check=True)
        return ids if vm.restore_passed_disks(ids) else None

    @classmethod
    def record(cls, bed) -> None:
        """Keep the guests' disks, unless a guest is still in a swarm (a worker's leave on the
        way out did not take) or cannot tell: the next session's first highstate would find
        the swarm half there and form nothing, so it starts from fresh guests instead."""
        # no docker there (a session of the bed tests alone): in no swarm either
        seen = {node: bed.exec(node, "sh", "-c", "docker info --format '{{.Swarm.LocalNodeState}}' "
                                                 "2>/dev/null || echo inactive; cat /etc/machine-id",
                               check=False).stdout.split()
                for node in bed.nodes}
        swarm = {node: lines[0] if len(lines) == 2 else "unknown" for node, lines in seen.items()}
        if any(state != "inactive" for state in swarm.values()):
            print(f"\ntier 2 guests not kept: still in a swarm or unreadable ({swarm})",
                  file=sys.stderr)
            cls.ids_file.unlink(missing_ok=True)  # nor the ones kept before: fresh next time
            return
        ids = {node: lines[1] for node, lines in seen.items()}
        subprocess.run([str(REPO / "testbed"), "down"], check=True)
        vm.keep_passed_disks(bed.nodes)
        cls.ids_file.write_text(json.dumps(ids))


# for work on the tier 2 tests: run them on the guests as they are, neither kept nor fresh ones
GUESTS_AS_THEY_ARE = os.environ.get("AG_TIER2_GUESTS") == "as-they-are"


# Tier 2 proves what tier 1 cannot (systemd, kernel NFS, the IPVS mesh, packages installed for
# real), each between two guests; a third would make every step a third slower (emulated
# guests on two cores). The whole stack's deploy (vm_stack) spreads its labels over three.
TIER2_GUESTS, VM_STACK_GUESTS = 2, 3


def _deploys_the_stack(session) -> bool:
    return any(item.get_closest_marker("vm_stack") for item in session.items)


@pytest.fixture(scope="session")
def vm_bed(request) -> Bed:
    """Tier 2's qemu guests: those of the last passing session, or else fresh ones (bare
    Debian 12; .fresh)."""
    count = VM_STACK_GUESTS if _deploys_the_stack(request.session) else TIER2_GUESTS
    passed = None if GUESTS_AS_THEY_ARE else PassedGuests.restore(count)
    fresh = passed is None and not GUESTS_AS_THEY_ARE
    bed = _bed("vm", count, fresh=fresh)
    bed.count, bed.fresh, bed.passed_machine_ids = count, fresh, passed
    request.session.tier2_bed = bed
    _watch_for_lost_guests(request.session, bed)
    return bed


def _watch_for_lost_guests(session, bed) -> None:
    """A guest whose disk stopped answering fails every test after it, each only at its
    timeouts (in CI, for 50 min): interrupt the session as soon as one shows it, saying so.
    The session then exits with the status on which `./testbed test` runs tier 2 again."""
    def watch():
        while not (lost := vm.lost_guests(bed.nodes)):
            time.sleep(20)
        session.lost_guests = "; ".join(f"{name}: {line}" for name, line in lost.items())
        print("\ntier 2 lost a guest, its virtual disk stopped answering (the emulator, not the "
              f"product): {session.lost_guests}", file=sys.stderr, flush=True)
        os.kill(os.getpid(), signal.SIGINT)

    threading.Thread(target=watch, name="lost-guests", daemon=True).start()


def pytest_sessionfinish(session, exitstatus):
    if getattr(session, "lost_guests", None):
        session.exitstatus = vm.GUEST_LOST
        return
    bed = getattr(session, "tier2_bed", None)
    # the guests as they were are not checked whole; a vm_stack session's carry the stack
    if bed and exitstatus == 0 and not GUESTS_AS_THEY_ARE and not _deploys_the_stack(session):
        PassedGuests.record(bed)


MEASURED = []


@pytest.fixture(scope="session")
def measured():
    """Call with a line of what a test measured (a time, a count): CI prints them all at the end."""
    return MEASURED.append


def pytest_terminal_summary(terminalreporter):
    if MEASURED:
        terminalreporter.section("measured on the bed")
        for line in MEASURED:
            terminalreporter.write_line(line)
