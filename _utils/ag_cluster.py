"""The autograder pillar's rules (the cluster, the swarm, the app and its registry) and the
node-label arithmetic. Plain Python without Salt, so the states (through the loader's
`__utils__`), the master's runner, the offline `./testbed validate` and unit tests share it.

Every check returns sentences a sysadmin acts on; an empty list means the pillar is valid.
"""

import difflib
import ipaddress
import posixpath
import re

# The deployment guide's node labels, the only ones this project sets or removes.
LABELS = (
    "registry", "webserver", "django_app", "database", "cache", "rabbitmq_broker",
    "small_tasks", "grader", "tiny_grader", "fast_grader", "tiny_fast_grader",
    "deferred_grader", "tiny_deferred_grader", "rerun_grader", "tiny_rerun_grader",
    "image_builder", "custom_image_registry",
)
# labels of services with exactly one replica: on exactly one node
SINGLE_NODE_LABELS = ("database", "registry", "cache", "rabbitmq_broker", "custom_image_registry")
# grader flavours that must not share a node
ONE_PER_NODE_LABELS = ("grader", "tiny_grader", "deferred_grader", "tiny_deferred_grader")
# labels whose data stays on the node they were on: moving them needs allow_label_moves
DATA_LABELS = ("database", "registry")
ROLES = ("worker", "manager")
LABEL_VALUE = "true"
# a pillar node's swarm availability: drain stops its tasks (they move to other nodes)
AVAILABILITIES = ("active", "drain")
# task states after which a task no longer runs on its node
TASK_ENDED_STATES = ("complete", "shutdown", "failed", "rejected", "orphaned", "remove")

CLUSTER_KEYS = ("manager", "nodes", "allow_label_moves")
NODE_KEYS = ("address", "labels", "role", "availability")
SWARM_KEYS = ("default_addr_pool", "default_addr_pool_mask_length", "network", "drain_timeout")
NETWORK_KEYS = ("name", "attachable", "subnet")

TOP_KEYS = ("cluster", "docker", "limits", "swarm", "nfs", "app", "registry", "firewall")
# autograder:app (salt/ag/defaults.yaml holds their defaults; a unit test keeps the two equal)
APP_KEYS = (
    "checkout", "git_url", "revision", "stack_name", "site_domain", "tls_certificate", "tls_key",
    "oauth", "email", "sysadmin_contact", "client_max_body_size", "max_subprocess_timeout",
    "gunicorn_workers", "celery_concurrency", "postgres_version", "converge_timeout",
    "web_on_webserver_only", "extra_compose_files", "bootstrap",
)
CELERY_SERVICES = (
    "celery_small_tasks", "celery_project_downloads", "celerybeat", "grader", "tiny_grader",
    "fast_grader", "tiny_fast_grader", "deferred_grader", "tiny_deferred_grader", "rerun_grader",
    "tiny_rerun_grader", "image_builder",
)
REGISTRY_KEYS = ("name", "image", "port", "publish_mode", "volume")
FIREWALL_KEYS = ("managed", "cluster_only_ports", "chain")
# system trees a checkout (an NFS export, written by the deploy) must never be in
SYSTEM_DIRS = ("/bin", "/boot", "/dev", "/etc", "/lib", "/proc", "/run", "/sbin", "/sys", "/tmp",
               "/usr", "/var/lib/docker")
MAX_WORKERS = 64
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
DOMAIN = re.compile(r"^(?=.{1,253}$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)*"
                    r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")
SIZE = re.compile(r"^[0-9]+[kKmMgG]?$")
VERSION = re.compile(r"^[0-9]+(\.[0-9]+)?$")

SEE = "see pillar.example"


def _is_cidr(value) -> bool:
    try:
        ipaddress.ip_network(value, strict=True)
    except (TypeError, ValueError):
        return False
    return isinstance(value, str)


def _unknown_keys(where: str, data: dict, known) -> list:
    errors = []
    for key in data:
        if key not in known:
            guess = difflib.get_close_matches(str(key), known, n=1)
            hint = f"did you mean {guess[0]!r}? " if guess else ""
            errors.append(f"{where}: unknown key {key!r} ({hint}known keys: {', '.join(known)}; "
                          f"{SEE})")
    return errors


def _mapping_shape(where: str, value, known) -> list:
    """An optional mapping's shape: absent (None) is fine, anything but a mapping is one error,
    a mapping's unknown keys are named. Its values are the caller's to check."""
    if value is None:
        return []
    if not isinstance(value, dict):
        return [f"{where} must be a mapping, not {value!r}"]
    return _unknown_keys(where, value, known)


def _is_int(value, low, high) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def _check_checkout(where, path) -> list:
    if not isinstance(path, str) or not posixpath.isabs(path):
        return [f"{where} must be an absolute path like /srv/autograder-full-stack, not {path!r}"]
    if path != "/" and posixpath.normpath(path) != path.rstrip("/"):
        return [f"{where} {path!r} must be a plain path (no '..', '.' or '//')"]
    if path.rstrip("/") == "" or any(path == d or path.startswith(d + "/") for d in SYSTEM_DIRS):
        return [f"{where} {path!r} is a system directory; use a directory of its own such as "
                "/srv/autograder-full-stack"]
    return []


def _check_app(app) -> list:
    where = "autograder:app"
    errors = _mapping_shape(where, app, APP_KEYS)
    if not isinstance(app, dict):
        return errors
    if "checkout" in app:
        errors += _check_checkout(f"{where}:checkout", app["checkout"])
    for key, pattern, example in (("stack_name", NAME, "ag-stack"),
                                  ("site_domain", DOMAIN, "autograder.example.edu"),
                                  ("client_max_body_size", SIZE, "30M")):
        value = app.get(key)
        if key in app and not (isinstance(value, str) and pattern.match(value)):
            errors.append(f"{where}:{key} must look like {example}, not {value!r}")
    version = app.get("postgres_version")
    if version is not None and not VERSION.match(str(version)):
        errors.append(f"{where}:postgres_version must be a version like 14, not {version!r}")
    if "gunicorn_workers" in app and not _is_int(app["gunicorn_workers"], 1, MAX_WORKERS):
        errors.append(f"{where}:gunicorn_workers must be a number 1..{MAX_WORKERS}, "
                      f"not {app['gunicorn_workers']!r}")
    for key in ("max_subprocess_timeout", "converge_timeout"):
        if key in app and not _is_int(app[key], 1, 86400):
            errors.append(f"{where}:{key} must be a number of seconds 1..86400, not {app[key]!r}")
    if not isinstance(app.get("web_on_webserver_only", True), bool):
        errors.append(f"{where}:web_on_webserver_only must be true or false, "
                      f"not {app['web_on_webserver_only']!r}")
    concurrency = app.get("celery_concurrency")
    if concurrency is not None:
        if not isinstance(concurrency, dict):
            errors.append(f"{where}:celery_concurrency must map celery services to numbers")
        else:
            errors += _unknown_keys(f"{where}:celery_concurrency", concurrency, CELERY_SERVICES)
            errors += [f"{where}:celery_concurrency:{svc} must be a number 1..{MAX_WORKERS}, "
                       f"not {n!r}" for svc, n in concurrency.items()
                       if svc in CELERY_SERVICES and not _is_int(n, 1, MAX_WORKERS)]
    for key in ("tls_certificate", "tls_key"):
        if key in app and not (isinstance(app[key], str) and app[key].startswith("/etc/ssl/")):
            errors.append(f"{where}:{key} must be a file under /etc/ssl/ (nginx mounts it), "
                          f"not {app[key]!r}")
    oauth = app.get("oauth")
    errors += _mapping_shape(f"{where}:oauth", oauth, ("provider", "secrets_file"))
    if isinstance(oauth, dict) and oauth.get("provider", "google") not in ("google", "azure"):
        errors.append(f"{where}:oauth:provider must be google or azure, not {oauth['provider']!r}")
    email = app.get("email")
    errors += _mapping_shape(f"{where}:email", email,
                             ("from_addr", "host", "port", "user", "password_file"))
    port = email.get("port") if isinstance(email, dict) else None
    if port is not None and not _is_int(port, 1, 65535):
        errors.append(f"{where}:email:port must be a port number, not {port!r}")
    extra = app.get("extra_compose_files")
    if extra is not None and not (isinstance(extra, list) and all(
            isinstance(f, str) and f and not posixpath.isabs(f) and ".." not in f.split("/")
            for f in extra)):
        errors.append(f"{where}:extra_compose_files must list paths inside the checkout, "
                      f"not {extra!r}")
    bootstrap = app.get("bootstrap")
    errors += _mapping_shape(f"{where}:bootstrap", bootstrap, ("admins", "course"))
    admins = bootstrap.get("admins") if isinstance(bootstrap, dict) else None
    if admins is not None and not (isinstance(admins, list)
                                   and all(isinstance(a, str) and a for a in admins)):
        errors.append(f"{where}:bootstrap:admins must be a list of usernames, not {admins!r}")
    return errors


def _check_registry(registry) -> list:
    where = "autograder:registry"
    errors = _mapping_shape(where, registry, REGISTRY_KEYS)
    if not isinstance(registry, dict):
        return errors
    if "port" in registry and not _is_int(registry["port"], 1, 65535):
        errors.append(f"{where}:port must be a port number, not {registry['port']!r}")
    if registry.get("publish_mode", "ingress") not in ("ingress", "host"):
        errors.append(f"{where}:publish_mode must be ingress or host, "
                      f"not {registry['publish_mode']!r}")
    return errors


def _check_firewall(firewall) -> list:
    where = "autograder:firewall"
    errors = _mapping_shape(where, firewall, FIREWALL_KEYS)
    if not isinstance(firewall, dict):
        return errors
    if not isinstance(firewall.get("managed", True), bool):
        errors.append(f"{where}:managed must be true or false, not {firewall['managed']!r}")
    ports = firewall.get("cluster_only_ports", [])
    if not isinstance(ports, list) or not all(_is_int(p, 1, 65535) for p in ports):
        errors.append(f"{where}:cluster_only_ports must be a list of port numbers, not {ports!r}")
    chain = firewall.get("chain", "AG-CLUSTER-ONLY")
    if not (isinstance(chain, str) and re.fullmatch(r"[A-Za-z][A-Za-z0-9_-]{0,28}", chain)):
        errors.append(f"{where}:chain must be an iptables chain name (letters, digits, - and _, "
                      f"at most 29), not {chain!r}")
    return errors


def node_labels(node: dict) -> list:
    """A node entry's labels (default: none)."""
    return list(node.get("labels") or [])


def node_role(node_id: str, cluster: dict) -> str:
    """A node's swarm role: the cluster manager is always a manager; else its role (worker)."""
    if node_id == cluster.get("manager"):
        return "manager"
    return cluster["nodes"][node_id].get("role") or "worker"


def node_availability(node: dict) -> str:
    """A node entry's swarm availability (default: active)."""
    return node.get("availability") or "active"


def _check_node(node_id, node) -> list:
    where = f"autograder:cluster:nodes:{node_id}"
    if not isinstance(node_id, str):
        return [f"{where}: the node key must be a minion id (a string), not {node_id!r}"]
    if not isinstance(node, dict):
        return [f"{where}: must be a mapping with address, labels and role, not {node!r}"]
    errors = _unknown_keys(where, node, NODE_KEYS)
    address = node.get("address")
    if address is None:
        errors.append(f"{where}: address is missing; give the address node {node_id} "
                      "advertises to the swarm")
    else:
        try:
            ipaddress.ip_address(address if isinstance(address, str) else None)
        except ValueError:
            errors.append(f"{where}: address {address!r} of node {node_id} is not an IP address")
    labels = node.get("labels")
    if labels is not None and not isinstance(labels, list):
        errors.append(f"{where}: labels of node {node_id} must be a list of label names, "
                      f"not {labels!r}")
    else:
        seen = set()
        for label in labels or []:
            if label not in LABELS:
                errors.append(f"node {node_id}: label {label!r} is not one of the deployment "
                              f"guide's labels ({', '.join(LABELS)})")
            elif label in seen:
                errors.append(f"node {node_id}: label {label} is listed twice")
            seen.add(label)
        graders = [label for label in ONE_PER_NODE_LABELS if label in seen]
        if len(graders) > 1:
            errors.append(f"node {node_id}: labels {' and '.join(graders)} on one node; at most "
                          f"one of {', '.join(ONE_PER_NODE_LABELS)} per node")
    role = node.get("role")
    if role is not None and role not in ROLES:
        errors.append(f"{where}: role {role!r} of node {node_id} must be worker or manager")
    availability = node.get("availability")
    if availability is not None and availability not in AVAILABILITIES:
        errors.append(f"{where}: availability {availability!r} of node {node_id} must be "
                      f"{' or '.join(AVAILABILITIES)}")
    elif availability == "drain" and isinstance(labels, list):
        # a drained node runs no task: a one-node service labelled there would run nowhere
        for label in (label for label in labels if label in SINGLE_NODE_LABELS):
            errors.append(f"node {node_id}: availability drain, but it carries {label}, whose "
                          "service runs on that node only and would stop; move the label to "
                          "another node first")
    return errors


def _check_cluster(cluster) -> list:
    where = "autograder:cluster"
    if cluster is None:
        return [f"{where} is missing; describe the manager and the nodes ({SEE})"]
    if not isinstance(cluster, dict):
        return [f"{where} must be a mapping with manager and nodes, not {cluster!r}"]
    errors = _unknown_keys(where, cluster, CLUSTER_KEYS)
    nodes = cluster.get("nodes")
    if not nodes:
        errors.append(f"{where}:nodes is missing or empty; list every swarm node by minion id")
        nodes = {}
    elif not isinstance(nodes, dict):
        errors.append(f"{where}:nodes must map minion ids to node entries, not {nodes!r}")
        nodes = {}
    for node_id, node in nodes.items():
        errors += _check_node(node_id, node)
    manager = cluster.get("manager")
    if manager is None:
        errors.append(f"{where}:manager is missing; name the minion id of the swarm manager")
    elif manager not in nodes:
        errors.append(f"{where}:manager {manager!r} is not one of the nodes "
                      f"({', '.join(map(str, nodes)) or 'none'}); add it to {where}:nodes")
    addresses = {}
    for node_id, node in nodes.items():
        if isinstance(node, dict) and isinstance(node.get("address"), str):
            addresses.setdefault(node["address"], []).append(str(node_id))
    for address, owners in addresses.items():
        if len(owners) > 1:
            errors.append(f"nodes {' and '.join(owners)} share the address {address}; "
                          "every node needs its own")
    moves = cluster.get("allow_label_moves")
    if moves is not None and not (isinstance(moves, list)
                                  and all(m in DATA_LABELS for m in moves)):
        errors.append(f"{where}:allow_label_moves must be a list of {' or '.join(DATA_LABELS)}, "
                      f"not {moves!r}")
    return errors


def _check_single_labels(nodes: dict) -> list:
    holders = label_holders({n: node_labels(v) for n, v in nodes.items() if isinstance(v, dict)
                             and isinstance(v.get("labels") or [], list)})
    errors = []
    for label in SINGLE_NODE_LABELS:
        owners = holders.get(label, [])
        if not owners:
            errors.append(f"label {label} is on no node; put it on exactly one node")
        elif len(owners) > 1:
            errors.append(f"label {label} is on nodes {' and '.join(owners)}; it must be on "
                          "exactly one node")
    return errors


def _check_swarm(swarm) -> list:
    where = "autograder:swarm"
    errors = _mapping_shape(where, swarm, SWARM_KEYS)
    if not isinstance(swarm, dict):
        return errors
    pools = swarm.get("default_addr_pool")
    if pools is not None and not (isinstance(pools, list) and all(map(_is_cidr, pools))):
        errors.append(f"{where}:default_addr_pool must be a list of networks like "
                      f"198.19.64.0/18, not {pools!r}")
    if "drain_timeout" in swarm and not _is_int(swarm["drain_timeout"], 1, 86400):
        errors.append(f"{where}:drain_timeout must be a number of seconds 1..86400, "
                      f"not {swarm['drain_timeout']!r}")
    mask = swarm.get("default_addr_pool_mask_length")
    if mask is not None and (isinstance(mask, bool) or not isinstance(mask, int)
                             or not 8 <= mask <= 30):
        errors.append(f"{where}:default_addr_pool_mask_length must be a number 8..30, "
                      f"not {mask!r}")
    network = swarm.get("network")
    errors += _mapping_shape(f"{where}:network", network, NETWORK_KEYS)
    if not isinstance(network, dict):
        return errors
    name = network.get("name")
    if name is not None and not (isinstance(name, str) and name):
        errors.append(f"{where}:network:name must be a network name, not {name!r}")
    attachable = network.get("attachable")
    if attachable is not None and not isinstance(attachable, bool):
        errors.append(f"{where}:network:attachable must be true or false, not {attachable!r}")
    subnet = network.get("subnet")
    if subnet is not None and not _is_cidr(subnet):
        errors.append(f"{where}:network:subnet must be a network like 198.19.192.0/24, "
                      f"not {subnet!r}")
    return errors


def move_errors(cluster: dict, current_holders: dict) -> list:
    """Refused moves of data labels: `current_holders` maps a label to the nodes carrying it
    in the swarm now (minion ids, or a description of a swarm node no minion claims)."""
    allowed = cluster.get("allow_label_moves") or []
    wanted = label_holders({n: node_labels(v) for n, v in cluster["nodes"].items()})
    errors = []
    for label in DATA_LABELS:
        now = current_holders.get(label, [])
        new = wanted.get(label, [])
        if now and new and not set(new) <= set(now) and label not in allowed:
            errors.append(
                f"label {label} would move from {' and '.join(now)} to {' and '.join(new)}, "
                f"but its data lives on {' and '.join(now)}; move the data first, then add "
                f"{label} to autograder:cluster:allow_label_moves"
            )
    return errors


def validate(autograder, known_minions=None, current_holders=None) -> list:
    """Every error of the `autograder` pillar value (empty: valid). `known_minions`: minion ids
    that exist (accepted keys); `current_holders`: see move_errors."""
    if not isinstance(autograder, dict):
        return [f"pillar key autograder is missing or not a mapping ({SEE})"]
    cluster = autograder.get("cluster")
    errors = (_unknown_keys("autograder", autograder, TOP_KEYS) + _check_cluster(cluster)
              + _check_swarm(autograder.get("swarm")) + _check_app(autograder.get("app"))
              + _check_registry(autograder.get("registry"))
              + _check_firewall(autograder.get("firewall")))
    nodes = cluster.get("nodes") if isinstance(cluster, dict) else None
    if not isinstance(nodes, dict):
        return errors
    errors += _check_single_labels(nodes)
    if known_minions is not None:
        errors += [f"node {node_id} is in autograder:cluster:nodes but no accepted minion has "
                   "that id; fix the id or accept its key (salt-key -a)"
                   for node_id in nodes if node_id not in known_minions]
    if current_holders and not errors:
        errors += move_errors(cluster, current_holders)
    return errors


def label_holders(labels_by_node: dict) -> dict:
    """{node: labels} → {label: sorted nodes carrying it}, managed labels only. `labels` may
    be a list of names or a swarm label mapping (only value "true" counts)."""
    holders = {}
    for node, labels in labels_by_node.items():
        carried = ([k for k, v in labels.items() if v == LABEL_VALUE]
                   if isinstance(labels, dict) else labels)
        for label in carried:
            if label in LABELS:
                holders.setdefault(label, []).append(str(node))
    return {label: sorted(nodes) for label, nodes in holders.items()}


def managed_labels(labels: dict) -> list:
    """The labels of a swarm node's label mapping that this project manages."""
    return sorted(label for label in labels if label in LABELS)


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
    """The tasks (from ag_docker.tasks) that still run, or are about to, on their node."""
    return [t for t in tasks if t.get("state") not in TASK_ENDED_STATES]
