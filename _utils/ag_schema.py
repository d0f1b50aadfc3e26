"""The one description of the autograder pillar: every key of every section with its type, its
range or choices, its default and what it means. ag_cluster.validate checks a pillar against
it; `tools/schema_files.py` writes pillar/pillar.example and salt/*/defaults.yaml from it (a
unit test keeps them up to date). Plain Python without Salt.

A key's `errors(where, value)` returns sentences naming the key (`where`, e.g.
autograder:cluster:nodes:nuc2:labels[1]); it never raises, whatever the value.
"""

import difflib
import inspect
import ipaddress
import posixpath
import re

SEE = "see pillar.example"

# The deployment guide's node labels, the only ones this project sets or removes.
LABELS = (
    "registry", "webserver", "django_app", "database", "cache", "rabbitmq_broker",
    "small_tasks", "grader", "tiny_grader", "fast_grader", "tiny_fast_grader",
    "deferred_grader", "tiny_deferred_grader", "rerun_grader", "tiny_rerun_grader",
    "image_builder", "custom_image_registry",
)
# grader flavours that must not share a node
ONE_PER_NODE_LABELS = ("grader", "tiny_grader", "deferred_grader", "tiny_deferred_grader")
# labels whose data stays on the node they were on: moving them needs allow_label_moves
DATA_LABELS = ("database", "registry")
ROLES = ("worker", "manager")
# a pillar node's swarm availability: drain stops its tasks (they move to other nodes)
AVAILABILITIES = ("active", "drain")
# system trees a checkout (an NFS export, written by the deploy) must never be in
SYSTEM_DIRS = ("/bin", "/boot", "/dev", "/etc", "/lib", "/proc", "/run", "/sbin", "/sys", "/tmp",
               "/usr", "/var/lib/docker")
MAX_WORKERS = 64
DAY = 86400
# a value shown in a message is cut here: a pillar may hold anything, of any size
SHOWN = 80


def shown(value) -> str:
    try:
        text = repr(value)
    except RecursionError:  # nested deeper than Python's stack: say what it is
        return f"a deeply nested {type(value).__name__}"
    return text if len(text) <= SHOWN else text[:SHOWN] + "..."


def did_you_mean(value, known) -> str:
    guess = difflib.get_close_matches(str(value), [str(k) for k in known], n=1)
    return f"did you mean {guess[0]!r}? " if guess else ""


def unknown_keys(where: str, data: dict, known) -> list:
    return [f"{where}: unknown key {shown(key)} ({did_you_mean(key, known)}known keys: "
            f"{', '.join(known)}; {SEE})" for key in data if key not in known]


class Key:
    """One pillar key. `what` says what it holds (for messages); None is its absence: an
    error when `required` (the hint says what to give), else fine when `null_ok` (by default:
    when the default is None). `advanced`: a parameter most sites never set."""

    what = "a value"

    def __init__(self, doc, default=None, *, required=None, null_ok=None, example=None,
                 advanced=False):
        self.doc = inspect.cleandoc(doc)
        self.default = default
        self.required = required
        self.null_ok = (default is None and not required) if null_ok is None else null_ok
        self.example = default if example is None else example
        self.advanced = advanced

    def errors(self, where: str, value) -> list:
        if value is None:
            if self.required:
                return [f"{where} is missing; {self.required}"]
            return [] if self.null_ok else [f"{where} must be {self.what}, not None"]
        return self.problems(where, value)

    def problems(self, where: str, value) -> list:
        """The errors of a value that is not None."""
        return [] if self.ok(value) else [f"{where} must be {self.what}, not {shown(value)}"]

    def ok(self, value) -> bool:
        return True

    def entry_errors(self, where: str, name: str, value) -> list:
        """The errors of entry `name` of a Mapping at `where`."""
        return self.errors(f"{where}:{name}", value)


class Bool(Key):
    what = "true or false"

    def ok(self, value) -> bool:
        return isinstance(value, bool)


class Int(Key):
    def __init__(self, doc, default=None, *, low, high, unit="a number", **kw):
        super().__init__(doc, default, **kw)
        self.low, self.high = low, high
        self.what = f"{unit} {low}..{high}"

    def ok(self, value) -> bool:
        return isinstance(value, int) and not isinstance(value, bool) and self.low <= value <= self.high


def port(doc, default=None, **kw) -> Int:
    return Int(doc, default, low=1, high=65535, unit="a port number", **kw)


def seconds(doc, default=None, **kw) -> Int:
    return Int(doc, default, low=1, high=DAY, unit="a number of seconds", **kw)


class Text(Key):
    """A one-line string; with `pattern`, one that matches it whole (`like`: an example)."""

    def __init__(self, doc, default=None, *, pattern=None, like=None, **kw):
        super().__init__(doc, default, **kw)
        self.pattern = re.compile(pattern) if pattern else None
        self.what = f"a string like {like}" if like else "a non-empty line of text"

    def ok(self, value) -> bool:
        return (isinstance(value, str) and value != "" and value.isprintable()
                and (self.pattern is None or self.pattern.fullmatch(value) is not None))


# a move of a data label, as allow_label_moves approves it: 'database: nuc1 -> nuc2'
NODES_JOINED = r"[^\s:]+( and [^\s:]+)*"
MOVE = rf"({'|'.join(DATA_LABELS)}): {NODES_JOINED} -> {NODES_JOINED}"
# names Docker and iptables accept (stacks, volumes, services, networks)
NAME = r"[A-Za-z0-9][A-Za-z0-9_.-]*"
DOMAIN_LABEL = r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"


class Domain(Text):
    what = "a domain name like autograder.example.edu"

    def ok(self, value) -> bool:
        return (isinstance(value, str) and len(value) <= 253
                and re.fullmatch(rf"({DOMAIN_LABEL}\.)*{DOMAIN_LABEL}", value) is not None)


class Version(Key):
    """A version like 14 or 9.5, written as a number or a string."""

    what = "a version like 14"

    def ok(self, value) -> bool:
        return (isinstance(value, (int, float, str)) and not isinstance(value, bool)
                and re.fullmatch(r"[0-9]{1,4}(\.[0-9]{1,4})?", str(value)) is not None)


class Choice(Key):
    def __init__(self, doc, default=None, *, choices, **kw):
        super().__init__(doc, default, **kw)
        self.choices = choices
        self.what = (f"{', '.join(choices[:-1])} or {choices[-1]}" if len(choices) < 4
                     else f"one of {', '.join(choices)}")

    def problems(self, where, value) -> list:
        if isinstance(value, str) and value in self.choices:
            return []
        hint = did_you_mean(value, self.choices) if isinstance(value, str) else ""
        return [f"{where} must be {self.what}, not {shown(value)}" + (f"; {hint}" if hint else "")]


class Address(Key):
    what = "an IP address"

    def ok(self, value) -> bool:
        try:
            ipaddress.ip_address(value if isinstance(value, str) else None)
        except ValueError:
            return False
        return True


class Network(Key):
    def __init__(self, doc, default=None, *, like, **kw):
        super().__init__(doc, default, **kw)
        self.what = f"a network like {like}"

    def ok(self, value) -> bool:
        try:
            ipaddress.ip_network(value if isinstance(value, str) else None, strict=True)
        except (TypeError, ValueError):
            return False
        return True


class Path(Key):
    """An absolute, plain path; `under`: inside that tree; `own_dir`: not a system tree."""

    def __init__(self, doc, default=None, *, under="/", own_dir=False, **kw):
        super().__init__(doc, default, **kw)
        self.under, self.own_dir = under, own_dir
        self.what = (f"a file under {under}" if under != "/" else
                     f"an absolute path like {self.example}" if self.example else "an absolute path")

    def problems(self, where, path) -> list:
        if not (isinstance(path, str) and path.startswith(self.under) and path.isprintable()):
            return [f"{where} must be {self.what}, not {shown(path)}"]
        if path != "/" and posixpath.normpath(path) != path.rstrip("/"):
            return [f"{where} {shown(path)} must be a plain path (no '..', '.' or '//')"]
        if self.own_dir and (path.rstrip("/") == "" or any(
                path == d or path.startswith(d + "/") for d in SYSTEM_DIRS)):
            return [f"{where} {shown(path)} is a system directory; use a directory of its own "
                    "such as /srv/autograder-full-stack"]
        return []


class RelativePath(Key):
    what = "a path inside the checkout (relative, no '..')"

    def ok(self, value) -> bool:
        return (isinstance(value, str) and value != "" and value.isprintable()
                and not posixpath.isabs(value) and ".." not in value.split("/"))


class List(Key):
    def __init__(self, doc, default=None, *, of: Key, **kw):
        super().__init__(doc, default, **kw)
        self.item = of
        self.what = f"a list, each {of.what}"

    def problems(self, where, value) -> list:
        if not isinstance(value, list):
            return [f"{where} must be {self.what}, not {shown(value)}"]
        return [e for i, item in enumerate(value) for e in self.item.errors(f"{where}[{i}]", item)]


class Section(Key):
    """A mapping with these keys (a dict of Key), each optional unless required."""

    what = "a mapping"

    def __init__(self, doc, keys: dict, **kw):
        super().__init__(doc, None, null_ok=not kw.get("required"), **kw)
        self.keys = keys
        self.default = {name: key.default for name, key in keys.items() if not key.required}
        if self.example is None:
            self.example = {name: key.example for name, key in keys.items()}

    def problems(self, where, value) -> list:
        if not isinstance(value, dict):
            return [f"{where} must be a mapping with the keys {', '.join(self.keys)}, "
                    f"not {shown(value)}"]
        errors = unknown_keys(where, value, self.keys)
        for name, key in self.keys.items():
            if name in value:
                errors += key.errors(f"{where}:{name}", value[name])
            elif key.required:
                errors.append(f"{where}:{name} is missing; {key.required}")
        return errors


class Mapping(Key):
    """A mapping of names the site chooses (`names`: what they are) to values of one Key
    (None: anything)."""

    def __init__(self, doc, default=None, *, names, values=None, **kw):
        super().__init__(doc, default, **kw)
        self.names, self.values = names, values
        self.what = f"a mapping of {names}"

    def problems(self, where, value) -> list:
        if not isinstance(value, dict):
            return [f"{where} must be {self.what}, not {shown(value)}"]
        if not value and self.required:
            return [f"{where} is empty; {self.required}"]
        errors = []
        for name, entry in value.items():
            if not isinstance(name, str):
                errors.append(f"{where}:{shown(name)}: the key must be {self.names} (a string)")
            elif self.values:
                errors += self.values.entry_errors(where, name, entry)
        return errors


def label_errors(where: str, node_id: str, labels) -> list:
    """The errors of node `node_id`'s label list at `where`: each label one of the guide's,
    once, and at most one grader flavour of ONE_PER_NODE_LABELS."""
    if labels is None:
        return []
    if not isinstance(labels, list):
        return [f"{where}: labels of node {node_id} must be a list of label names, "
                f"not {shown(labels)}"]
    errors, seen = [], []
    for i, label in enumerate(labels):
        if label not in LABELS:
            hint = did_you_mean(label, LABELS) if isinstance(label, str) else ""
            errors.append(f"node {node_id}: label {shown(label)} ({where}[{i}]) is not one of "
                          f"the deployment guide's labels ({hint}{', '.join(LABELS)})")
        elif label in seen:
            errors.append(f"node {node_id}: label {label} is listed twice ({where}[{i}])")
        seen.append(label)
    graders = [label for label in ONE_PER_NODE_LABELS if label in seen]
    if len(graders) > 1:
        errors.append(f"node {node_id}: labels {' and '.join(graders)} on one node; at most "
                      f"one of {', '.join(ONE_PER_NODE_LABELS)} per node ({where})")
    return errors


class Node(Section):
    """A node entry of autograder:cluster:nodes: its label errors name the node as well."""

    def entry_errors(self, where, node_id, node) -> list:
        where = f"{where}:{node_id}"
        if not isinstance(node, dict):
            return self.errors(where, node)
        others = {key: value for key, value in node.items() if key != "labels"}
        return self.errors(where, others) + label_errors(f"{where}:labels", node_id,
                                                         node.get("labels"))


NODE = Node("""
    every swarm member, by minion id (required). To take a node out, delete it here and
    apply swarm.labels on the manager: a member that was one of these nodes (its minion
    published it to the mine, or it carries one of the 17 labels below) is drained, kept
    until no task runs on it (swarm:drain_timeout), stripped of those labels and, once
    Down, removed from the swarm (docker node rm); while it is up it stays a drained,
    unlabelled member until you run `docker swarm leave` on it and re-apply. A member with
    the hostname or address of a listed node whose minion has not published its swarm node
    yet (e.g. after a mine flush) is left alone. Other members are never touched.
    """, {
    "address": Address("""
        address this node advertises to the swarm and is reached at for NFS (required)
        """, required="give the address this node advertises to the swarm"),
    "labels": List("""
        swarm node labels, each set to "true" on this node (default: none). Only the 17
        labels of the deployment guide are allowed; database, registry, cache,
        rabbitmq_broker and custom_image_registry on exactly one node each; webserver,
        django_app and small_tasks on at least one active node; at most one of grader,
        tiny_grader, deferred_grader, tiny_deferred_grader per node. Labels outside these 17
        that an admin sets on a node are left alone. After an edit (a label moved):
          salt-run ag.validate && salt <manager> state.apply swarm.labels
        """, [], of=Choice("a label", choices=LABELS), null_ok=True),
    "role": Choice("""
        role in the swarm: worker (default) or manager. The `manager` above is always one.
        """, "worker", choices=ROLES, null_ok=True),
    "availability": Choice("""
        swarm availability: active (default) or drain (no task runs on it; its tasks move
        to other nodes before any label of it changes; it keeps its labels). Not allowed on
        a node carrying database, registry, cache, rabbitmq_broker or
        custom_image_registry, whose service would stop. A node drained by hand (docker
        node update --availability) is set back to what this says.
        """, "active", choices=AVAILABILITIES, null_ok=True),
})

CLUSTER = Section("the cluster: which machines, who manages, which labels where", {
    "manager": Text("""
        minion id of the swarm manager (required; must be one of `nodes`)
        """, required="name the minion id of the swarm manager", example="nuc1"),
    "nodes": Mapping(NODE.doc, names="minion ids to node entries", values=NODE,
                     required="list every swarm node by minion id", example={
        "nuc1": {"address": "198.18.0.11",
                 "labels": ["registry", "database", "cache", "rabbitmq_broker",
                            "custom_image_registry", "webserver", "django_app", "small_tasks"],
                 "role": "worker", "availability": "active"},
        "nuc2": {"address": "198.18.0.12", "labels": ["grader", "fast_grader", "image_builder"]},
        "nuc3": {"address": "198.18.0.13", "labels": ["deferred_grader", "rerun_grader"]},
    }),
    "allow_label_moves": List("""
        one-shot approvals of moves of the labels whose data lives on their node (database,
        registry), each naming the move as 'LABEL: FROM -> TO' (several nodes joined with
        ' and '), e.g. 'database: nuc1 -> nuc2'. An approval lets that move alone happen;
        once it is done, ag.validate (and so the next deploy) asks you to remove it, so it
        never approves a later move. Default: none, and such a move is refused.
        """, [], of=Text("a move", pattern=MOVE, like="'database: nuc1 -> nuc2'"),
        null_ok=True),
}, required=f"describe the manager and the nodes ({SEE})")


def packages(doc, default, **kw) -> List:
    return List(doc, default, of=Text("a package name", pattern=r"[a-z0-9][a-z0-9+.-]+",
                                      like="docker.io"), **kw)


DOCKER = Section("Docker engine on every node (salt/docker)", {
    "source": Choice("""
        where Docker comes from: docker-ce (Docker's apt repository, default; Ubuntu 22.04,
        24.04 and Debian 12: key /etc/apt/keyrings/docker.asc, deb822 source
        /etc/apt/sources.list.d/docker.sources), distro (the distribution's docker.io, plus
        docker-compose-v2 on Ubuntu; for offline sites), external (installed by someone else;
        daemon.json and the service are still managed)
        """, "docker-ce", choices=("docker-ce", "distro", "external")),
    "hold": Bool("""
        true: Docker's packages are held (apt-mark hold), so an unattended upgrade never
        restarts dockerd and every grader with it; upgrade them by setting false (which
        releases every hold of them, the site's own included) and deploying. null: leave
        the packages' hold as it is. Sources docker-ce and distro only
        """),
    "users": List("""
        users added to the docker group (default: none)
        """, [], of=Text("a user name", pattern=r"[A-Za-z_][A-Za-z0-9_.-]*\$?", like="alice")),
    "log_max_size": Text("""
        json-file log limits, written to daemon.json log-opts
        """, "100m", pattern=r"[0-9]+(\.[0-9]+)? ?[kKmMgGtTpP]?[iI]?[bB]?", like="100m"),
    "log_max_file": Int("", 5, low=1, high=1000),
    "daemon": Mapping("""
        more daemon.json keys this project should own, e.g. {max-concurrent-uploads: 2}
        (merged into /etc/docker/daemon.json with log-driver json-file, the log-opts above and
        default-ulimits nofile from limits; keys the admin set and this project does not own
        are never removed; dockerd restarts only when the file's content changes).
        live-restore is refused, here and in the admin's file: swarm forbids it.
        """, {}, names="daemon.json keys to their values"),
    "config_file": Path("""
        dockerd's configuration file
        """, "/etc/docker/daemon.json", advanced=True),
    "service": Text("""
        dockerd's service
        """, "docker", pattern=NAME, like="docker", advanced=True),
    "repo": Section("""
        Docker's apt repository (source docker-ce); the key's checksum pins what is trusted
        """, {
        "url": Text("", "https://download.docker.com/linux", pattern=r"https?://\S+",
                    like="https://download.docker.com/linux"),
        "key_file": Path("", "/etc/apt/keyrings/docker.asc"),
        "key_hash": Text("", "sha256=1500c1f56fa9e26b9b8f42452a553675796ade0807cdce11975eb98170b3a570",
                         pattern=r"sha(256|512)=[0-9a-f]+", like="sha256=<hex digest>"),
        "sources_file": Path("", "/etc/apt/sources.list.d/docker.sources"),
        "legacy_sources_file": Path("""
            the one-line source the deployment guide's apt-key recipe wrote: apt refuses two
            sources for one URI with different keys, so it goes
            """, "/etc/apt/sources.list.d/docker.list"),
        "component": Text("", "stable", pattern=r"[a-z]+", like="stable"),
    }, advanced=True),
    "pkgs": Section("""
        the packages of each source (Ubuntu adds docker-compose-v2 to distro's)
        """, {
        "docker-ce": packages("", ["docker-ce", "docker-ce-cli", "containerd.io",
                                   "docker-buildx-plugin", "docker-compose-plugin"]),
        "distro": packages("", ["docker.io"]),
        "external": packages("", []),
    }, advanced=True),
    "recommends": Section("""
        with apt's Recommends? Docker's packages as its install guide installs them; the distro's
        docker.io without: its needrestart would restart dockerd, and every grading task with it,
        after an upgrade, and criu, perl or binutils are not needed (the checkout installs git)
        """, {
        "docker-ce": Bool("", True),
        "distro": Bool("", False),
    }, advanced=True),
})

LIMITS = Section("open-file limit (salt/limits)", {
    "nofile": Int("""
        nofile soft and hard, for logins (/etc/security/limits.d/90-autograder-nofile.conf),
        dockerd and containerd (LimitNOFILE drop-ins, where systemd runs) and every container
        (daemon.json default-ulimits)
        """, 1000000, low=1024, high=2**31 - 1),
    "conf_file": Path("""
        pam_limits file for logins ('*' does not cover root, so root gets its own lines)
        """, "/etc/security/limits.d/90-autograder-nofile.conf", advanced=True),
    "systemd_units": List("""
        services whose LimitNOFILE a systemd drop-in sets (limits.conf never reaches services)
        """, ["docker", "containerd"], of=Text("a unit", pattern=NAME, like="docker"),
        advanced=True),
    "dropin_name": Text("", "90-autograder-nofile.conf", pattern=NAME,
                        like="90-autograder-nofile.conf", advanced=True),
})

SWARM = Section("the swarm (salt/swarm)", {
    "default_addr_pool": List("""
        address pools for swarm overlay networks, and their subnet size (empty: Docker's own)
        """, [], of=Network("a pool", like="198.19.64.0/18"), null_ok=True),
    "default_addr_pool_mask_length": Int("", 24, low=8, high=30),
    "dispatcher_heartbeat": seconds("""
        seconds between the heartbeats each node sends the managers; a node silent for
        three of them is marked Down and its tasks start elsewhere. Docker's 5 suits real
        machines; raise it where a busy manager misses its own heartbeats and restarts every
        task it runs (seen on the test bed's emulated guests)
        """, 5),
    "drain_timeout": seconds("""
        seconds swarm.labels waits for the tasks of a drained node (availability drain, or a
        node taken out) to stop before it changes the node's labels, and ag.roll before it
        restarts a node's dockerd; past it the state or the roll fails naming the node, and
        changes nothing more
        """, 300),
    "network": Section("""
        the stack's external overlay network
        """, {
        "name": Text("", "ag-swarm-network", pattern=NAME, like="ag-swarm-network"),
        "attachable": Bool("", False),
        "encrypted": Bool("""
            true: the overlay's traffic between nodes is encrypted (IPsec, Docker's
            --opt encrypted; costs CPU on every node). A network in use cannot change: set it
            before the first deploy, or remove the stack and the network to change it
            """, False),
        "subnet": Network("""
            optional subnet for the network (default: taken from the pools above)
            """, like="198.19.192.0/24"),
    }),
})

NFS = Section("NFS share of the autograder-full-stack checkout (salt/nfs)", {
    "managed": Bool("""
        false where the checkout is already on shared storage (nothing NFS is managed)
        """, True),
    "server": Text("""
        minion id of the NFS server (default: the cluster manager)
        """),
    "mount_options": List("""
        mount options of the clients (fstab type nfs; a live mount whose source or options
        differ is remounted, one that is right never); vers=4.2 keeps NFS on port 2049 alone,
        without it a client may fall back to v3 and its rpcbind/mountd ports
        """, ["rw", "hard", "vers=4.2", "_netdev"],
        of=Text("a mount option", pattern=r"[^\s,]+", like="hard")),
    "server_wait": seconds("""
        seconds a client waits for the server to answer before it fails (a first highstate
        sets both up at once)
        """, 300),
    "export_options": List("""
        export options on the server; the export goes to the other nodes' addresses only
        """, ["rw", "sync", "no_root_squash", "no_subtree_check"],
        of=Text("an export option", pattern=r"[^\s,]+", like="sync")),
    "exports_file": Path("""
        a file of its own in exports.d: /etc/exports stays the admin's
        """, "/etc/exports.d/autograder.exports", advanced=True),
    "server_pkgs": packages("", ["nfs-kernel-server"], advanced=True),
    "server_service": Text("""
        the unit itself: systemd refuses to enable its alias nfs-kernel-server
        """, "nfs-server", pattern=NAME, like="nfs-server", advanced=True),
    "client_pkgs": packages("", ["nfs-common"], advanced=True),
    "checkout": Path("""
        the export's path when autograder:app:checkout is not set (its default)
        """, "/srv/autograder-full-stack", own_dir=True, advanced=True),
})

FIREWALL = Section("who may connect to the cluster's internal services (salt/firewall)", {
    "managed": Bool("""
        the registries are published on every node through the ingress mesh, the NFS export
        listens on the server node, and the swarm's control and data ports on every node
        (2377/tcp, 7946/tcp+udp, 4789/udp: the overlay's VXLAN, unauthenticated, into the
        network where rabbitmq and redis listen without passwords); true: new connections to
        them from any address but the cluster nodes' are dropped, in IPv4 and IPv6 (iptables
        and ip6tables raw table, chain below; where systemd runs,
        ag-cluster-only-firewall.service builds the rules again at boot, before Docker). The
        nodes themselves pull from 127.0.0.1:5000, which never passes the filter. A node new
        to the pillar is let in by the others when it asks the manager for its join token.
        """, True),
    "cluster_only_ports": List("""
        ports open to the cluster's nodes only (the registry, sandboximageregistry); the NFS
        server node adds 2049 when nfs:managed, every node the swarm's ports
        """, [5000, 5001], of=port("a port")),
    "chain": Text("""
        iptables chain (raw table, before Docker's ingress DNAT) holding the allowed sources
        """, "AG-CLUSTER-ONLY", pattern=r"[A-Za-z][A-Za-z0-9_-]{0,28}",
        like="AG-CLUSTER-ONLY (letters, digits, - and _, at most 29)"),
})

CELERY_CONCURRENCY = {
    "celery_small_tasks": 4, "celery_project_downloads": 2, "celerybeat": 1, "grader": 2,
    "tiny_grader": 1, "fast_grader": 2, "tiny_fast_grader": 1, "deferred_grader": 2,
    "tiny_deferred_grader": 1, "rerun_grader": 2, "tiny_rerun_grader": 1, "image_builder": 1,
}


def workers(doc, default) -> Int:
    return Int(doc, default, low=1, high=MAX_WORKERS)


APP = Section("the application (salt/ag, salt-run state.orchestrate ag.deploy)", {
    "checkout": Path("""
        absolute path of the autograder-full-stack checkout, the same on every node (the NFS
        export and mount point when nfs:managed)
        """, "/srv/autograder-full-stack", own_dir=True),
    "git_url": Text("""
        clone it there when it is missing (null: the checkout must already be there)
        """),
    "revision": Text("""
        the release (a tag, e.g. 2022.01.v1), branch or commit to check out; changing it
        upgrades: upstream's files that ag.tweaks edits are reset, updated, and edited again
        """, "master", pattern=r"\S+", like="master"),
    "stack_name": Text("""
        docker stack name
        """, "ag-stack", pattern=NAME, like="ag-stack"),
    "site_domain": Domain("""
        the site's domain: ALLOWED_HOSTS and SITE_DOMAIN in autograder-server/_prod.env,
        server_name and the https redirect in nginx/production/conf.d/default.conf
        """, "autograder.io"),
    "tls_certificate": Path("""
        the site's TLS certificate and key: files on every node labelled webserver, under
        /etc/ssl (nginx mounts it); written into the production nginx conf, checked present by
        the deploy, never read or shown
        """, "/etc/ssl/certs/autograder.io.cert", under="/etc/ssl/"),
    "tls_key": Path("", "/etc/ssl/private/autograder.io.key.pem", under="/etc/ssl/"),
    "oauth": Section("""
        the sign-in provider: OAUTH2_PROVIDER in _prod.env, google or azure
        """, {
        "provider": Choice("", "google", choices=("google", "azure")),
        "secrets_file": Path("""
            the client secrets JSON (a file on the NFS server node, never in pillar), copied to
            autograder-server/autograder/settings/oauth2_secrets.json (mode 0600, given to
            the services, never built into an image); null: put it there yourself
            """),
    }),
    "email": Section("""
        the e-mail settings in _prod.env (null: upstream's lines stay commented out)
        """, {
        "from_addr": Text("EMAIL_FROM_ADDR, e.g. autograder@example.edu",
                          pattern=r"[^@\s]+@[^@\s]+", like="autograder@example.edu"),
        "host": Text("""
            EMAIL_HOST: a server that offers STARTTLS (the release's production settings set
            EMAIL_USE_TLS; without it no receipt is sent, and the app only logs why)
            """, pattern=r"\S+", like="smtp.example.edu"),
        "port": port("EMAIL_PORT (upstream: 25)"),
        "user": Text("EMAIL_HOST_USER"),
        "password_file": Path("""
            a file on the NFS server node holding EMAIL_HOST_PASSWORD (never in pillar), copied
            to autograder/settings/secrets/email_host_password (mode 0600, a swarm secret read
            by the settings); an EMAIL_HOST_PASSWORD line in _prod.env is commented out (it would be in
            every service spec)
            """),
    }),
    "sysadmin_contact": Text("""
        SYSADMIN_CONTACT in ag-website-vue/src/constants.ts (no quotes)
        """, "your instructor or system administrator"),
    "client_max_body_size": Text("""
        client_max_body_size of both server blocks of the production nginx conf
        """, "30M", pattern=r"[0-9]+[kKmMgG]?", like="30M"),
    "max_subprocess_timeout": seconds("""
        MAX_SUBPROCESS_TIMEOUT (server constants.py) and MAX_COMMAND_TIMEOUT (frontend), seconds
        """, 90),
    "gunicorn_workers": workers("""
        gunicorn --workers of the django service
        """, 4),
    "celery_concurrency": Section("""
        celery -c of each celery service; upstream docker-compose.yml's values (the guide's
        prose shows 1 for fast/deferred/rerun, the compose file ships 2: the file wins)
        """, {service: workers("", n) for service, n in CELERY_CONCURRENCY.items()}),
    "postgres_version": Version("""
        the postgres service's image version, e.g. 14 (null: what the compose file says; upstream
        2024.08 ships 9.5, which its docs call unsupported); for a release that builds postgres
        (2025.08 on), its AG_POSTGRES_VERSION build arg. A new major version does not start
        on the data an older one made: ag.deploy refuses to change the major version of a
        running database and names the steps (salt-run ag.backup, remove the service and its
        volume, deploy, salt-run ag.restore)
        """),
    "converge_timeout": seconds("""
        the deploy waits for every service to run its desired tasks as long as the stack gets
        further (a service converges, a task is pulled, started, running); it stops after this
        many seconds without progress, or at once when every service left keeps failing
        """, 600),
    "worker_stop_grace_period": seconds("""
        how long a celery worker (a grader among them) gets to finish the task it runs when
        its service rolls (an upgrade, a rotated secret) or its node is drained (ag.roll):
        celery's warm shutdown, after which Docker kills it. Keep swarm:drain_timeout at
        least this long. Docker's own is 10 s, which cuts a grading run short
        """, 300),
    "web_on_webserver_only": Bool("""
        the guide: only the web server needs inbound traffic. true: nginx's 80/443 are
        published on the node running it (labelled webserver) only; false: on every node
        through the ingress mesh, as upstream's compose file has it
        """, True),
    "extra_compose_files": List("""
        more compose files deployed after upstream's docker-compose.yml and the override the
        deploy computes (/var/lib/ag-deploy/ on the manager), relative to the
        checkout (e.g. a site's own override)
        """, [], of=RelativePath("a compose file")),
    "bootstrap": Section("""
        created once by the deploy, what exists is left alone: these usernames become
        superusers and admins of the course named `course` (null: no course)
        """, {
        "admins": List("", [], of=Text("a username")),
        "course": Text(""),
    }),
})

REGISTRY = Section("the guide's registry service for the stack's images (salt/ag/registry.sls)", {
    "name": Text("", "registry", pattern=NAME, like="registry"),
    "image": Text("""
        preloaded or pullable on the node labelled registry
        """, "registry:2", pattern=r"\S+", like="registry:2"),
    "port": port("", 5000),
    "publish_mode": Choice("""
        ingress: the routing mesh serves the port on every node, as the guide has it; host: only
        the registry node publishes it (something else must forward it on the others, as the
        test bed does where the kernel has no IPVS)
        """, "ingress", choices=("ingress", "host")),
    "volume": Text("""
        named volume holding the pushed images
        """, "ag-registry", pattern=NAME, like="ag-registry"),
})

BACKUP = Section("the site's data kept by salt-run ag.backup, brought back by ag.restore", {
    "dir": Path("""
        where each backup goes, in a directory named by its time (YYYYmmdd-HHMMSS), on the
        node labelled database: the database dump (postgres.sql) and media_root (every
        submission) with the secrets dir (the GPG key that signs the receipts, the secret
        key) as files.tar.gz. Readable by root only: the files hold secrets. Copy it off the
        cluster as the site does its other backups
        """, "/srv/autograder-backups", own_dir=True),
    "keep": Int("""
        backups kept; each backup removes the oldest beyond this
        """, 7, low=1, high=1000, unit="a count"),
    "schedule": Text("""
        when the node labelled database makes a backup by itself (its minion's scheduler
        runs ag_app.backup, as salt-run ag.backup does; the highstate and ag.deploy put it
        there and take it off a node that lost the label): a cron expression, minute hour
        day month weekday, e.g. '30 3 * * *' for 03:30 every day; null: only by hand
        """, pattern=r"[0-9*/,-]+( [0-9*/,-]+){4}", like="'30 3 * * *'"),
})

# the whole pillar key, in pillar.example's order
AUTOGRADER = Section("", {
    "cluster": CLUSTER, "docker": DOCKER, "limits": LIMITS, "swarm": SWARM, "nfs": NFS,
    "firewall": FIREWALL, "app": APP, "registry": REGISTRY, "backup": BACKUP,
})


def with_defaults(section: str, value) -> dict:
    """`value`, the autograder pillar's `section` (valid, or None), with each key it lacks or
    leaves null at its default, inner sections too: what the runner reads, as map.jinja
    merges them."""
    return _merged(AUTOGRADER.keys[section], value)


def _merged(section: Section, value) -> dict:
    value = value or {}
    return {name: (_merged(key, value.get(name)) if isinstance(key, Section)
                   else value[name] if value.get(name) is not None else key.default)
            for name, key in section.keys.items()}
