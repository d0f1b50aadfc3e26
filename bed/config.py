"""Where the test bed lives and which addresses it uses.

Every address the bed hands out is inside 198.18.0.0/15: nodes and the host's bridge in
198.18.0.0/24, Docker's bridge and swarm pools in 198.19.0.0/16. Nothing else is routed.
"""

import os
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
ROOT = Path(os.environ.get("AG_BED_ROOT", "/var/tmp/agbed"))
VENV = ROOT / "venv"
CACHE_DIR = ROOT / "cache"  # slow artefacts kept across up/down: base images, VM image
# the PATH of every image the bed makes (Docker's default)
PATH_ENV = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# git bundles of the real autograder.io releases (autograder-full-stack and the repositories
# its releases use), which the bed serves as a site's clone finds them upstream
UPSTREAM_BUNDLES = Path(os.environ.get("AG_UPSTREAM_BUNDLES", REPO.parent / "shared/upstream"))

# Several beds can run side by side (parallel work, tests of the bed itself): bed K has its
# own directory, bridge, namespace names and subnet 198.18.K.0/24. Default: bed 0.
BED_ID = int(os.environ.get("AG_BED_ID", "0"))
BED_DIR = ROOT / f"bed{BED_ID}"
STATE_FILE = BED_DIR / "state.json"
NAME_PREFIX = f"ag{BED_ID}"

BRIDGE = f"agbr{BED_ID}"
SUBNET = f"198.18.{BED_ID}"
BRIDGE_ADDR = f"{SUBNET}.254"
PREFIX_LEN = 24
# names under BED_DOMAIN resolve to the bed's own bridge address (bed/upstream.py's DNS), in
# every bed: images cached for all beds name the bed's services by them
BED_DOMAIN = "agbed.test"
PYPI_PORT = 3141
APT_PORT = 3142
PYPI_INDEX = f"http://pypi.{BED_DOMAIN}:{PYPI_PORT}/simple/"
NPM_PORT = 4873
# the bed's npm proxy (bed/npm_proxy.py), https with a certificate of the bed's CA
NPM_REGISTRY = f"https://npm.{BED_DOMAIN}:{NPM_PORT}/"
# Tier 1 (namespace) nodes are nucN at .(10+N); tier 2 (VM) guests at .(100+N), so a stale
# neighbour cache entry from one tier never points at the other.
TIER_BASE = {"netns": 10, "vm": 100}
MAX_NODES = 12

# Docker inside every node: docker0 gets 198.19.<10+N>.1/24; local and swarm pools below.
DOCKER_LOCAL_POOL = "198.19.128.0/17"
SWARM_ADDR_POOL = "198.19.64.0/18"

MASTER_DIR = BED_DIR / "master"
PILLAR_DIR = BED_DIR / "pillar"
NODES_DIR = BED_DIR / "nodes"
NS_HANDLES = Path(f"/run/agbed{BED_ID}")  # bind-mounted mount/uts namespace handles (tier 1)

SALT_BIN = VENV / "bin"


def node_name(index: int) -> str:
    return f"nuc{index}"


def node_index(name: str) -> int:
    if not name.startswith("nuc") or not name[3:].isdigit():
        raise ValueError(f"not a test-bed node name: {name!r} (expected nuc1..nuc{MAX_NODES})")
    return int(name[3:])


def node_addr(tier: str, index: int) -> str:
    return f"{SUBNET}.{TIER_BASE[tier] + index}"


def docker_bip(index: int) -> str:
    return f"198.19.{10 + index}.1/24"


# the site's domain (app:site_domain's default) and its TLS files under /etc, where upstream's
# nginx conf names them
SITE_DOMAIN = "autograder.io"
SITE_TLS_FILES = ("ssl/certs/autograder.io.cert", "ssl/private/autograder.io.key.pem")

# Tier 1's stand-in for the ingress mesh (bed/mesh.py): published port -> label of its node
MESH_PORTS = {5000: "registry", 5001: "custom_image_registry"}


def mesh_pidfile(port: int) -> str:
    return f"/run/mesh-{port}.pid"
