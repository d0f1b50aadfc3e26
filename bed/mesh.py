"""Tier 1's stand-in for the swarm ingress routing mesh, which needs IPVS this kernel lacks.

The stack pulls from 127.0.0.1:5000 (the registry) and 127.0.0.1:5001 (the custom image
registry) on every node. On tier 1 those services publish in host mode on the node carrying
their label, and every other node gets a socat forwarder from 127.0.0.1:PORT to that node.
Which node holds a label comes from the bed's pillar; `./testbed mesh` re-syncs after an edit.
"""

import yaml

from . import config, netns
from .util import log, stop_pids

MESH_PORTS = config.MESH_PORTS
pidfile = config.mesh_pidfile


def holders() -> dict:
    """port -> minion id holding its label in the bed pillar (ports nobody holds are left out)."""
    cluster = yaml.safe_load((config.PILLAR_DIR / "bed.sls").read_text())["autograder"]["cluster"]
    found = {}
    for node, spec in cluster["nodes"].items():
        for port, label in MESH_PORTS.items():
            if label in (spec.get("labels") or []):
                found[port] = node
    return found


def sync(names) -> None:
    """On each node: a forwarder for every port whose label is elsewhere, none where it is here.
    A forwarder pointing at the wrong node is replaced."""
    targets = holders()
    for name in names:
        for port in MESH_PORTS:
            holder = targets.get(port)
            wanted = None
            if holder not in (None, name):
                wanted = config.node_addr(netns.TIER, config.node_index(holder))
            pid = netns.node_pid(name, pidfile(port))
            current = target_of(pid)
            if current == wanted:
                continue
            if pid:
                stop_pids([pid], timeout=5)
            if wanted:
                netns.node_exec(name, ["sh", "-c",
                                       f"setsid socat TCP-LISTEN:{port},bind=127.0.0.1,reuseaddr,fork "
                                       f"TCP:{wanted}:{port} </dev/null >/dev/null 2>&1 & "
                                       f"echo $! > {pidfile(port)}"], check=True)
                log(f"mesh: {name} 127.0.0.1:{port} -> {holder}")


def target_of(pid):
    """The address a running forwarder connects to, from its command line."""
    if not pid:
        return None
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        args = f.read().decode().split("\0")
    dest = next((a for a in args if a.startswith("TCP:")), "")
    return dest[4:].rsplit(":", 1)[0] or None
