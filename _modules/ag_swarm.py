"""The swarm through the Docker Engine API: this node's membership (init, join, a pending join
cancelled), the swarm's nodes and its networks, and the Salt mine entries by which minions
find each other's swarm nodes and joining nodes get their join token. The ag_swarm states
decide; these functions read, create, update and remove.

Named ``ag_swarm`` so it never shadows Salt's ``swarm`` module. Every function returns plain
data (what a job return may hold). The join token never leaves the engines and the mine:
``publish_join_tokens`` (on the manager) hands it to the mine readable only by the minions
waiting to join with it, ``swarm_join`` (on the joining minion) fetches it from there
(_utils/ag_mine.py), and no function returns or logs it.
"""

try:
    import docker

    HAS_DOCKER = True
except ImportError:
    HAS_DOCKER = False

try:
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    HAS_CRYPTOGRAPHY = True
except ImportError:
    HAS_CRYPTOGRAPHY = False

import time

from salt.exceptions import CommandExecutionError

__virtualname__ = "ag_swarm"

SWARM_PORT = 2377
NANOSECONDS = 10**9  # the Engine API's unit of durations
# a new overlay network reads back without driver and subnet until the swarm's allocator has
# taken it, which a busy manager can delay by seconds
NETWORK_ALLOCATION_WAIT = 30
# the swarm node certificate: subject O = cluster ID, OU = role, CN = node ID
NODE_CERT = "swarm/certificates/swarm-node.crt"


def __virtual__():
    for util in ("ag_engine.session", "ag_mine.store", "ag_cluster.apply_label_changes"):
        if util not in __utils__:
            return False, f"ag_swarm needs _utils/{util.split('.')[0]}.py: run saltutil.sync_all"
    return __utils__["ag_engine.virtual"](__virtualname__, HAS_DOCKER)


def _engine(what, secret=None):
    return __utils__["ag_engine.session"](__context__, __salt__["config.get"], what, secret)


# --- this node's swarm ---------------------------------------------------------------------


def _cluster_id_from_certificate(root_dir: str):
    """A worker's API does not tell its cluster ID; its swarm certificate does (subject O)."""
    if not HAS_CRYPTOGRAPHY:
        return None
    try:
        with open(f"{root_dir}/{NODE_CERT}", "rb") as fh:
            cert = x509.load_pem_x509_certificate(fh.read())
    except OSError:
        return None
    orgs = cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
    return orgs[0].value if orgs else None


def swarm_info():
    """This node's swarm membership.

    Returns state (inactive, pending, active, error, locked), node_id, cluster_id, role
    (manager/worker/None), node_addr and manager_addrs.

    CLI Example: salt nuc1 ag_swarm.swarm_info
    """
    with _engine("reading docker info") as client:
        info = client.info()
    swarm = info.get("Swarm") or {}
    state = swarm.get("LocalNodeState") or "inactive"
    is_manager = bool(swarm.get("ControlAvailable"))
    cluster_id = (swarm.get("Cluster") or {}).get("ID")
    if state in ("active", "pending") and not cluster_id:
        # pending: a fresh join has no certificate yet; a member reconnecting (its dockerd
        # restarted) has its swarm's
        cluster_id = _cluster_id_from_certificate(info.get("DockerRootDir", "/var/lib/docker"))
    return {
        "state": state,
        "node_id": swarm.get("NodeID") or None,
        "cluster_id": cluster_id,
        "role": ("manager" if is_manager else "worker") if state == "active" else None,
        "node_addr": swarm.get("NodeAddr") or None,
        "manager_addrs": sorted(m["Addr"] for m in swarm.get("RemoteManagers") or []),
    }


def swarm_init(advertise_addr, default_addr_pool=None, subnet_size=None,
               listen_addr=f"0.0.0.0:{SWARM_PORT}", dispatcher_heartbeat=None):
    """Make this node the manager of a new swarm (`dispatcher_heartbeat`: seconds, Docker's
    own when None); returns swarm_info after.

    CLI Example: salt nuc1 ag_swarm.swarm_init 198.18.0.11 default_addr_pool='[198.19.64.0/18]'
    """
    spec = ({"dispatcher_heartbeat_period": dispatcher_heartbeat * NANOSECONDS}
            if dispatcher_heartbeat else {})
    with _engine("swarm init") as client:
        client.swarm.init(advertise_addr=advertise_addr, listen_addr=listen_addr,
                          default_addr_pool=default_addr_pool or None,
                          subnet_size=subnet_size if default_addr_pool else None, **spec)
    return swarm_info()


def swarm_settings():
    """The settings of the swarm this manager manages that the pillar sets:
    dispatcher_heartbeat (seconds).

    CLI Example: salt nuc1 ag_swarm.swarm_settings
    """
    with _engine("reading the swarm's settings") as client:
        spec = client.api.inspect_swarm()["Spec"]
    return {"dispatcher_heartbeat":
            (spec.get("Dispatcher") or {}).get("HeartbeatPeriod", 0) // NANOSECONDS}


def swarm_settings_update(dispatcher_heartbeat):
    """Set the swarm's dispatcher heartbeat (seconds), every other setting of its spec kept;
    returns swarm_settings after.

    CLI Example: salt nuc1 ag_swarm.swarm_settings_update dispatcher_heartbeat=20
    """
    with _engine("updating the swarm's settings") as client:
        swarm = client.api.inspect_swarm()
        spec = swarm["Spec"]
        spec.setdefault("Dispatcher", {})["HeartbeatPeriod"] = dispatcher_heartbeat * NANOSECONDS
        client.api.update_swarm(version=swarm["Version"]["Index"], swarm_spec=spec)
    return swarm_settings()


def _join_tokens():
    with _engine("reading the swarm join tokens (this node must be a manager)") as client:
        tokens = client.api.inspect_swarm()["JoinTokens"]
    return {"worker": tokens["Worker"], "manager": tokens["Manager"]}


def publish_swarm_node(info=None):
    """Put this node's swarm_info (`info` when the caller has just read it) into the Salt mine
    (entry ag_swarm_node): how the manager finds a minion's swarm node ID. Returns whether
    the master stored it.

    CLI Example: salt '*' ag_swarm.publish_swarm_node
    """
    return __utils__["ag_mine.publish_node"](__opts__, info or swarm_info())


def published_swarm_nodes(minions=None):
    """What the minions in `minions` (default: every minion of the master, also those no
    longer in the pillar) published with publish_swarm_node: {minion: swarm_info}.

    CLI Example: salt nuc1 ag_swarm.published_swarm_nodes '[nuc1, nuc2]'
    """
    return __utils__["ag_mine.published_nodes"](__salt__["mine.get"], minions)


def publish_join_tokens(waiting):
    """Put the join token of each role into the Salt mine (manager only), readable only by the
    minions that wait to join with that role: `waiting` maps minion id to role (worker or
    manager). The token of a role nobody waits for is withdrawn, so the master holds a token
    only while a node is joining. Returns whether the master did it; never the tokens.

    CLI Example: salt nuc1 ag_swarm.publish_join_tokens '{nuc4: worker}'
    """
    return __utils__["ag_mine.publish_join_tokens"](__opts__, _join_tokens() if waiting else {},
                                                    waiting)


def join_token_published(manager, role="worker"):
    """Whether `manager` published a `role` join token this minion may read (never the token).

    CLI Example: salt nuc4 ag_swarm.join_token_published nuc1
    """
    return bool(__utils__["ag_mine.join_token"](__salt__["mine.get"], manager, role))


def swarm_join(manager, manager_addr, advertise_addr, role="worker",
               listen_addr=f"0.0.0.0:{SWARM_PORT}"):
    """Join the swarm of `manager` (minion id) at `manager_addr` as `role`, with the join token
    the manager published to the mine (it never appears in arguments or returns). Returns
    swarm_info after.

    CLI Example: salt nuc2 ag_swarm.swarm_join nuc1 198.18.0.11 198.18.0.12
    """
    token = __utils__["ag_mine.join_token"](__salt__["mine.get"], manager, role)
    if not token:
        raise CommandExecutionError(
            f"the manager {manager} has published no {role} join token for {__opts__['id']} "
            f"yet; apply the swarm state on {manager} first"
        )
    with _engine(f"joining the swarm of {manager} at {manager_addr}", secret=token) as client:
        client.swarm.join(remote_addrs=[f"{manager_addr}:{SWARM_PORT}"], join_token=token,
                          listen_addr=listen_addr, advertise_addr=advertise_addr)
    return swarm_info()


def swarm_cancel_pending_join():
    """Cancel this node's join that never completed (state pending: a stale join token from
    an earlier swarm, or a manager that went away); the engine keeps retrying it forever
    otherwise. Refuses any other state: a member is never made to leave here. Returns
    swarm_info after.

    CLI Example: salt nuc2 ag_swarm.swarm_cancel_pending_join
    """
    state = swarm_info()["state"]
    if state != "pending":
        raise CommandExecutionError(f"the swarm state of {__opts__['id']} is {state}, not a "
                                    "pending join; nothing cancelled")
    with _engine("cancelling the pending swarm join") as client:
        client.swarm.leave(force=True)
    return swarm_info()


# --- the swarm's nodes (manager only) -----------------------------------------------------


def _node(attrs: dict) -> dict:
    spec = attrs.get("Spec") or {}
    status = attrs.get("Status") or {}
    return {
        "id": attrs["ID"],
        "hostname": (attrs.get("Description") or {}).get("Hostname"),
        "role": spec.get("Role"),
        "availability": spec.get("Availability"),
        "state": status.get("State"),
        "addr": status.get("Addr"),
        "labels": spec.get("Labels") or {},
        "version": (attrs.get("Version") or {}).get("Index"),
        "spec": spec,
    }


def nodes():
    """Every node of the swarm with role, availability, state, address, labels, and the spec
    version an update needs (one API call; manager only).

    CLI Example: salt nuc1 ag_swarm.nodes
    """
    with _engine("listing the swarm nodes (this node must be a manager)") as client:
        return [_node(attrs) for attrs in client.api.nodes()]


def label_holders(cluster):
    """{label: sorted holders} of the managed labels in the swarm this node manages, each
    holder named by its minion id (else "swarm node ID (hostname)"); {} when this node
    manages no swarm. `cluster`: autograder:cluster. What ag.validate checks a move of a data
    label against before a deploy changes anything.

    CLI Example: salt nuc1 ag_swarm.label_holders "$(salt-call --out=json pillar.get autograder:cluster)"
    """
    me = swarm_info()
    if me["role"] != "manager":
        return {}
    swarm_nodes = {node["id"]: node for node in nodes()}
    minion_of = __utils__["ag_mine.minions_by_node_id"](
        published_swarm_nodes(), cluster["nodes"], me["cluster_id"], swarm_nodes)
    return __utils__["ag_cluster.swarm_holders"](swarm_nodes, minion_of)


def node_update(node_id, availability=None, set_labels=(), remove_labels=(), version=None,
                spec=None):
    """Set a swarm node's `availability` (active, pause or drain; drain makes the swarm stop
    every task on the node and start the replicated ones elsewhere), its labels in
    `set_labels` to "true" and remove those in `remove_labels`, in one update on top of its
    spec; every other label and setting stays as it is. `version` and `spec` from nodes() save
    the first inspect; when the node changed since (update out of sequence), it is read again
    and the same changes are made on what it holds now. Returns the node as read after.

    CLI Example: salt nuc1 ag_swarm.node_update 3x9v... availability=drain set_labels='[database]'
    """
    if availability not in (None, "active", "pause", "drain"):
        raise CommandExecutionError(f"availability {availability!r} of swarm node {node_id} "
                                    "must be active, pause or drain")
    changes = {"set": list(set_labels), "remove": list(remove_labels)}
    # taken now: update runs inside ag_engine's call, where this module's dunders do not resolve
    apply_label_changes = __utils__["ag_cluster.apply_label_changes"]

    def update(api, fresh):
        current = (_node(api.inspect_node(node_id)) if fresh or version is None or spec is None
                   else {"version": version, "spec": spec})
        wanted = dict(current["spec"])
        if availability:
            wanted["Availability"] = availability
        if changes["set"] or changes["remove"]:
            wanted["Labels"] = apply_label_changes(current["spec"].get("Labels") or {}, changes)
        api.update_node(node_id, current["version"], wanted)
        return _node(api.inspect_node(node_id))

    what = " and ".join(part for part in (
        availability and f"setting swarm node {node_id} to {availability}",
        (changes["set"] or changes["remove"]) and f"updating the labels of swarm node {node_id}",
    ) if part) or f"updating swarm node {node_id}"
    with _engine(what) as client:
        return __utils__["ag_engine.versioned_update"](what, lambda fresh: update(client.api, fresh))


def node_remove(node_id):
    """Remove a Down node from the swarm (docker node rm, never forced: the engine refuses a
    node that is still up, and a manager, which must be demoted first). Returns True.

    CLI Example: salt nuc1 ag_swarm.node_remove 3x9v...
    """
    with _engine(f"removing swarm node {node_id}") as client:
        client.api.remove_node(node_id, force=False)
    return True


# --- networks -----------------------------------------------------------------------------


def _network(attrs: dict) -> dict:
    configs = (attrs.get("IPAM") or {}).get("Config") or []
    return {
        "id": attrs["Id"],
        "name": attrs["Name"],
        "driver": attrs.get("Driver"),
        "scope": attrs.get("Scope"),
        "attachable": bool(attrs.get("Attachable")),
        "encrypted": "encrypted" in (attrs.get("Options") or {}),
        "subnets": sorted(c["Subnet"] for c in configs if c.get("Subnet")),
        "labels": attrs.get("Labels") or {},
    }


def networks(name=None):
    """Networks of this node (a manager sees the swarm's overlay networks), optionally the one
    named exactly `name`: id, name, driver, scope, attachable, encrypted, subnets, labels.

    CLI Example: salt nuc1 ag_swarm.networks name=ag-swarm-network
    """
    with _engine("listing networks") as client:
        found = client.api.networks(names=[name] if name else None)
    return [_network(n) for n in found if name is None or n["Name"] == name]


def network_create(name, driver="overlay", attachable=False, subnet=None, labels=None,
                   encrypted=False):
    """Create a network (an overlay network needs a manager); returns it as read once the swarm
    allocated it (or as read after NETWORK_ALLOCATION_WAIT seconds).

    CLI Example: salt nuc1 ag_swarm.network_create ag-swarm-network
    """
    ipam = None
    if subnet:
        ipam = docker.types.IPAMConfig(pool_configs=[docker.types.IPAMPool(subnet=subnet)])
    with _engine(f"creating network {name}") as client:
        created = client.api.create_network(name, driver=driver, attachable=attachable,
                                            ipam=ipam, labels=labels, check_duplicate=True,
                                            options={"encrypted": ""} if encrypted else None)
        deadline = time.monotonic() + NETWORK_ALLOCATION_WAIT
        while True:
            found = client.api.inspect_network(created["Id"])
            if found.get("Driver") or time.monotonic() >= deadline:
                return _network(found)
            time.sleep(0.5)
