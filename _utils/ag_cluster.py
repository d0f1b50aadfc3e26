"""The autograder pillar's validation (its schema, _utils/ag_schema.py, then the rules across
keys: the manager, addresses, where each service's label is) and the node-label arithmetic.
Plain Python without Salt, so the states (through the loader's `__utils__`), the master's
runner, the offline tools/validate_pillar.py and unit tests share it.

Every check returns sentences a sysadmin acts on; an empty list means the pillar is valid.
"""

import importlib.util
import os
import re

import yaml


def _beside(name: str):
    """The _utils module `name` next to this file: Salt's loader, the master's runner and
    tools/validate_pillar.py each load this file on its own, with no package to import from."""
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), f"{name}.py")
    spec = importlib.util.spec_from_file_location(f"ag_utils_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


schema = _beside("ag_schema")

# labels of services with exactly one replica: on exactly one node
SINGLE_NODE_LABELS = ("database", "registry", "cache", "rabbitmq_broker", "custom_image_registry")
# the labels that place the stack's replicated services (upstream's compose file, and ag.registry's
# registry): on no active node, a service never starts and the deploy never converges. Grader
# services are global: with their label on no node, none of them runs and the stack converges.
SERVICE_LABELS = {
    "registry": ("registry",), "webserver": ("nginx", "website"), "django_app": ("django",),
    "database": ("postgres",), "cache": ("redis",), "rabbitmq_broker": ("rabbitmq",),
    "small_tasks": ("celery_small_tasks", "celery_project_downloads", "celerybeat"),
    "custom_image_registry": ("sandboximageregistry",),
}
LABEL_VALUE = "true"
# task states after which a task no longer runs on its node
TASK_ENDED_STATES = ("complete", "shutdown", "failed", "rejected", "orphaned", "remove")


def node_labels(node: dict) -> list:
    """A node entry's labels (default, or not a list: none)."""
    labels = node.get("labels")
    return list(labels) if isinstance(labels, list) else []


def node_role(node_id: str, cluster: dict) -> str:
    """A node's swarm role: the cluster manager is always a manager; else its role (worker)."""
    if node_id == cluster.get("manager"):
        return "manager"
    return cluster["nodes"][node_id].get("role") or "worker"


def node_availability(node: dict) -> str:
    """A node entry's swarm availability (default: active)."""
    return node.get("availability") or "active"


def _well_formed_nodes(cluster) -> dict:
    """The node entries of `cluster` that are mappings under a minion id: the rules across
    nodes read only those (the schema has named every other one)."""
    nodes = cluster.get("nodes") if isinstance(cluster, dict) else None
    if not isinstance(nodes, dict):
        return {}
    return {node_id: node for node_id, node in nodes.items()
            if isinstance(node_id, str) and isinstance(node, dict)}


def _manager_errors(cluster: dict, nodes: dict) -> list:
    manager = cluster.get("manager")
    if not isinstance(manager, str) or manager in nodes:
        return []
    return [f"autograder:cluster:manager {manager!r} is not one of the nodes "
            f"({', '.join(nodes) or 'none'}); add it to autograder:cluster:nodes"]


def _shared_address_errors(nodes: dict) -> list:
    owners = {}
    for node_id, node in nodes.items():
        if isinstance(node.get("address"), str):
            owners.setdefault(node["address"], []).append(node_id)
    return [f"nodes {' and '.join(ids)} share the address {address}; every node needs its own"
            for address, ids in owners.items() if len(ids) > 1]


def _drained_single_errors(nodes: dict) -> list:
    # a drained node runs no task: a one-node service labelled there would run nowhere
    return [f"node {node_id}: availability drain, but it carries {label}, whose service runs on "
            "that node only and would stop; move the label to another node first"
            for node_id, node in nodes.items() if node_availability(node) == "drain"
            for label in node_labels(node) if label in SINGLE_NODE_LABELS]


def _placement_errors(nodes: dict) -> list:
    """Each label of SERVICE_LABELS where its services can run: a single-node label on
    exactly one node, every one on an active node."""
    holders = label_holders({node_id: node_labels(node) for node_id, node in nodes.items()})
    active = {node_id for node_id, node in nodes.items() if node_availability(node) != "drain"}
    errors = []
    for label, services in SERVICE_LABELS.items():
        owners = holders.get(label, [])
        runs = f"{' and '.join(services)} run only on a node labelled {label}"
        if not owners:
            where = "exactly one node" if label in SINGLE_NODE_LABELS else "at least one node"
            errors.append(f"label {label} is on no node; {runs}: put it on {where}")
        elif len(owners) > 1 and label in SINGLE_NODE_LABELS:
            errors.append(f"label {label} is on nodes {' and '.join(owners)}; it must be on "
                          "exactly one node")
        elif not active & set(owners) and label not in SINGLE_NODE_LABELS:
            errors.append(f"label {label} is only on drained nodes ({', '.join(owners)}); "
                          f"{runs}: put it on an active node")
    return errors


def _nfs_server_errors(nfs, nodes: dict) -> list:
    server = nfs.get("server") if isinstance(nfs, dict) else None
    if not isinstance(server, str) or server in nodes:
        return []
    return [f"autograder:nfs:server {server!r} is not one of the nodes ({', '.join(nodes)}); "
            "name the node that holds the checkout, or leave it null for the manager"]


def _cluster_rules(autograder: dict) -> list:
    """The rules across keys, on the parts the schema found well formed."""
    cluster = autograder.get("cluster")
    nodes = _well_formed_nodes(cluster)
    if not nodes:
        return []
    return (_manager_errors(cluster, nodes) + _shared_address_errors(nodes)
            + _drained_single_errors(nodes) + _placement_errors(nodes)
            + _nfs_server_errors(autograder.get("nfs"), nodes))


def _moves(cluster: dict, current_holders: dict) -> dict:
    """{data label: (the nodes carrying it now, those the pillar puts it on)} for each data
    label the pillar puts on other nodes than those carrying it in the swarm now
    (`current_holders`: a label → the nodes carrying it, minion ids, or a description of a
    swarm node no minion claims)."""
    wanted = label_holders({n: node_labels(v) for n, v in cluster["nodes"].items()})
    moves = {}
    for label in schema.DATA_LABELS:
        now, new = current_holders.get(label, []), wanted.get(label, [])
        if now and new and not set(new) <= set(now):
            moves[label] = (" and ".join(now), " and ".join(new))
    return moves


def _approval(label: str, now: str, new: str) -> str:
    """A move as allow_label_moves names it."""
    return f"{label}: {now} -> {new}"


def move_errors(cluster: dict, current_holders: dict) -> list:
    """Refused moves of data labels: those allow_label_moves does not name."""
    approved = cluster.get("allow_label_moves") or []
    return [f"label {label} would move from {now} to {new}, but its data lives on {now}; move "
            f"the data first, then approve this move once: add '{_approval(label, now, new)}' "
            "to autograder:cluster:allow_label_moves"
            for label, (now, new) in _moves(cluster, current_holders).items()
            if _approval(label, now, new) not in approved]


def done_approvals(cluster: dict, current_holders: dict) -> list:
    """An error for each approval of allow_label_moves that names no move the pillar makes
    now (done, or never what the pillar says): an approval is good for one move."""
    pending = {_approval(label, *move) for label, move in _moves(cluster, current_holders).items()}
    return [f"autograder:cluster:allow_label_moves: '{approval}' approves no move the pillar "
            "makes now (it is done, or it is not the move the pillar says); remove it: an "
            "approval is good for one move"
            for approval in cluster.get("allow_label_moves") or [] if approval not in pending]


def validate(autograder, known_minions=None, current_holders=None) -> list:
    """Every error of the `autograder` pillar value (empty: valid): its schema (ag_schema),
    then the rules across keys. `known_minions`: minion ids that exist (accepted keys);
    `current_holders`: see move_errors. Never raises, whatever the value."""
    if not isinstance(autograder, dict):
        return [f"pillar key autograder is missing or not a mapping ({schema.SEE})"]
    errors = schema.AUTOGRADER.errors("autograder", autograder) + _cluster_rules(autograder)
    nodes = _well_formed_nodes(autograder.get("cluster"))
    if known_minions is not None:
        errors += [f"node {node_id} is in autograder:cluster:nodes but no accepted minion has "
                   "that id; fix the id or accept its key (salt-key -a)"
                   for node_id in nodes if node_id not in known_minions]
    if current_holders and not errors:
        errors += move_errors(autograder["cluster"], current_holders)
    return errors


def label_holders(labels_by_node: dict) -> dict:
    """{node: labels} → {label: sorted nodes carrying it}, managed labels only. `labels` may
    be a list of names or a swarm label mapping (only value "true" counts)."""
    holders = {}
    for node, labels in labels_by_node.items():
        carried = ([k for k, v in labels.items() if v == LABEL_VALUE]
                   if isinstance(labels, dict) else labels)
        for label in carried:
            if label in schema.LABELS:
                holders.setdefault(label, []).append(str(node))
    return {label: sorted(nodes) for label, nodes in holders.items()}


def swarm_holders(swarm_nodes: dict, minion_of: dict) -> dict:
    """label_holders of the swarm's nodes ({node ID: ag_swarm.nodes entry}), each holder
    named by its minion (`minion_of`: node ID → minion id) or, when no minion claims it, as
    "swarm node ID (hostname)"."""
    return label_holders({minion_of.get(node_id, f"swarm node {node_id} ({node['hostname']})"):
                          node["labels"] for node_id, node in swarm_nodes.items()})


def managed_labels(labels: dict) -> list:
    """The labels of a swarm node's label mapping that this project manages."""
    return sorted(label for label in labels if label in schema.LABELS)


def label_changes(current: dict, wanted) -> dict:
    """What to do to a swarm node's labels: managed labels in `wanted` set to "true", managed
    labels not in `wanted` removed, labels outside the managed set left alone."""
    wanted = set(wanted)
    return {
        "set": sorted(label for label in wanted if current.get(label) != LABEL_VALUE),
        "remove": [label for label in managed_labels(current) if label not in wanted],
    }


def apply_label_changes(current: dict, changes: dict) -> dict:
    """The node's full label mapping after `changes` (from label_changes)."""
    labels = {k: v for k, v in current.items() if k not in changes["remove"]}
    labels.update({label: LABEL_VALUE for label in changes["set"]})
    return labels


def live_tasks(tasks) -> list:
    """The tasks (from ag_app.tasks) that still run, or are about to, on their node."""
    return [t for t in tasks if t.get("state") not in TASK_ENDED_STATES]


def same_host(minion_id: str, hostname) -> bool:
    """Whether a swarm node's `hostname` is the machine of `minion_id`: sites name minions by
    FQDN (nuc1.eecs.example.edu) where the engine reports the short hostname (nuc1), or the
    other way round; DNS names compare without case."""
    if not hostname:
        return False
    short, full = sorted((minion_id.lower(), hostname.lower()), key=len)
    return full == short or full.startswith(short + ".")


JINJA_TAG = re.compile(r"{[{%#]")


def pillar_file(roots, sls: str):
    """The file of pillar SLS `sls` under the first of `roots` that has it (None: in none)."""
    for root in roots:
        stem = os.path.join(root, *sls.split("."))
        for path in (os.path.join(stem, "init.sls"), stem + ".sls"):
            if os.path.isfile(path):
                return path
    return None


def yaml_errors(path: str, text: str) -> list:
    """A pillar file's YAML error as a sentence naming the file and line ([] when it parses)."""
    try:
        yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark else ""
        # context and problem without PyYAML's excerpts, which name the text, not the file
        why = "; ".join(filter(None, (getattr(exc, "context", None), getattr(exc, "problem", None))))
        return [f"{path}{line}: YAML: {why or exc}"]
    return []


RENDER_FAILED = re.compile(r"Rendering SLS '([^']+)' failed")


def render_errors(pillar_roots: dict, salt_errors) -> list:
    """The master's pillar render errors (a compiled pillar's `_errors`) as sentences: Salt's
    own, which keep the cause for the master's log (pillar_safe_render_error), and for a
    plain YAML file found in `pillar_roots` (saltenv: roots) its file and line."""
    roots = [root for env_roots in pillar_roots.values() for root in env_roots]
    sentences = []
    for error in salt_errors:
        sentences.append(f"pillar: {error}")
        match = RENDER_FAILED.match(str(error))
        path = match and pillar_file(roots, match.group(1))
        if not path:
            continue
        try:
            with open(path, encoding="utf-8") as file:
                text = file.read()
        except (OSError, UnicodeDecodeError) as exc:
            sentences.append(f"{path}: cannot be read ({exc})")
            continue
        if not JINJA_TAG.search(text):  # after Jinja, YAML's lines are the rendered text's
            sentences += yaml_errors(path, text)
    return sentences
