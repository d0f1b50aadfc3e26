"""The Ansible way of bench/deploy.py: bench/guide_by_ansible.yml run by the Ansible of the
bench's own venv against the bed's tier 1 nodes.

The venv (`config.ROOT / "bench-venv"`, apart from the product's) is made with `python3 -m venv`
and filled by its pip from bench/requirements.txt: the `ansible` package, which bundles
community.docker (Ansible Galaxy is not reachable here), the Docker SDK and jsondiff that its
modules import on the nodes. `make_venv()` does both where needed; pip leaves pinned packages
that are already there alone, so a second call asks no registry.
"""

import subprocess
import sys
from pathlib import Path

import yaml

from bed import config, netns

VENV = config.ROOT / "bench-venv"
REQUIREMENTS = Path(__file__).with_name("requirements.txt")
PLAYBOOK = Path(__file__).with_name("guide_by_ansible.yml")
INVENTORY = config.BED_DIR / "bench-inventory.yml"


def make_venv() -> None:
    if not (VENV / "bin/python").exists():
        subprocess.run(["python3", "-m", "venv", str(VENV)], check=True)
    subprocess.run([str(VENV / "bin/pip"), "install", "-q", "--disable-pip-version-check",
                    "-r", str(REQUIREMENTS)], check=True)


def write_inventory(nodes) -> Path:
    """The bed's nodes as an inventory. A tier 1 node is a set of namespaces, not a host with
    sshd: the collection's nsenter connection runs each task inside the namespaces of the
    node's dockerd, so a task sees the node's files, sockets and 127.0.0.1 as a task on a
    site's machine over SSH would, and the playbook stays the one a site would run. The
    modules run under the venv's Python (on the shared /var/tmp), which has what they import."""
    pids = {node: netns.node_pid(node, netns.DOCKERD_PIDFILE) for node in nodes}
    # without a pid the plugin would enter PID 1's namespaces: the host's, not a node's
    if silent := [node for node, pid in pids.items() if not pid]:
        sys.exit(f"no dockerd runs on {', '.join(silent)}: ./testbed up starts it")
    hosts = {node: {"ansible_nsenter_pid": pid} for node, pid in pids.items()}
    INVENTORY.write_text(yaml.safe_dump({"all": {"hosts": hosts, "vars": {
        "ansible_connection": "community.docker.nsenter",
        "ansible_python_interpreter": str(VENV / "bin/python"),
    }}}, sort_keys=False))
    return INVENTORY


def playbook_cmd(inventory: Path, cluster_description: Path) -> list:
    return [str(VENV / "bin/ansible-playbook"), "-i", str(inventory),
            "-e", f"cluster_description={cluster_description}", str(PLAYBOOK)]
