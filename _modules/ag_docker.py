"""The project's one way to the Docker Engine API (docker SDK): this node's swarm, the swarm's
nodes, services, tasks and networks. States and runners call these functions; nothing else in
the project talks to Docker.

Named ``ag_docker`` so it never shadows Salt's ``docker``/``dockermod``/``swarm`` modules.
Every function returns plain data (what a job return may hold); the swarm join token is the
exception that never leaves this module: ``publish_join_tokens`` (on the manager) hands it to
the master's mine with an ACL naming the minions waiting to join with it (and withdraws it when
none waits), ``swarm_join`` (on the joining minion) fetches it from there, and no function
returns or logs it.
"""

try:
    import docker
    import docker.errors

    HAS_DOCKER = True
except ImportError:
    HAS_DOCKER = False

try:
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    HAS_CRYPTOGRAPHY = True
except ImportError:
    HAS_CRYPTOGRAPHY = False

import calendar
import logging
import re
import sys
import time

import salt.channel.client
import salt.utils.mine
from salt.exceptions import CommandExecutionError

__virtualname__ = "ag_docker"
log = logging.getLogger(__name__)

# mine entries (published by the ag_swarm states)
MINE_NODE = "ag_swarm_node"
MINE_JOIN_TOKEN = "ag_swarm_join_token"  # + _worker / _manager
SWARM_PORT = 2377
ROLES = ("worker", "manager")
# the swarm node certificate: subject O = cluster ID, OU = role, CN = node ID
NODE_CERT = "swarm/certificates/swarm-node.crt"


def __virtual__():
    if not HAS_DOCKER:
        return False, (f"ag_docker needs the docker Python SDK in the Python that runs Salt "
                       f"({sys.executable}): apply the docker.sdk state (salt-pip install "
                       "docker on a onedir Salt, pip install docker into Salt's environment "
                       "otherwise)")
    return __virtualname__


def _client():
    if "ag_docker.client" not in __context__:
        url = __salt__["config.get"]("ag_docker:base_url", "unix://var/run/docker.sock")
        __context__["ag_docker.client"] = docker.DockerClient(base_url=url, timeout=60)
    return __context__["ag_docker.client"]


def _api_error(what: str, exc: Exception, secret: str = None) -> CommandExecutionError:
    message = str(getattr(exc, "explanation", None) or exc)
    if secret:
        message = message.replace(secret, "<join token>")
    return CommandExecutionError(f"{what} failed: {message}")


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

    CLI Example: salt nuc1 ag_docker.swarm_info
    """
    try:
        info = _client().info()
    except docker.errors.DockerException as exc:
        raise _api_error("reading docker info", exc) from exc
    swarm = info.get("Swarm") or {}
    state = swarm.get("LocalNodeState") or "inactive"
    is_manager = bool(swarm.get("ControlAvailable"))
    cluster_id = (swarm.get("Cluster") or {}).get("ID")
    if state == "active" and not cluster_id:
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
               listen_addr=f"0.0.0.0:{SWARM_PORT}"):
    """Make this node the manager of a new swarm; returns swarm_info after.

    CLI Example: salt nuc1 ag_docker.swarm_init 198.18.0.11 default_addr_pool='[198.19.64.0/18]'
    """
    try:
        _client().swarm.init(advertise_addr=advertise_addr, listen_addr=listen_addr,
                             default_addr_pool=default_addr_pool or None,
                             subnet_size=subnet_size if default_addr_pool else None)
    except docker.errors.DockerException as exc:
        raise _api_error("swarm init", exc) from exc
    return swarm_info()


def _join_tokens():
    try:
        tokens = _client().api.inspect_swarm()["JoinTokens"]
    except docker.errors.DockerException as exc:
        raise _api_error("reading the swarm join tokens (this node must be a manager)", exc) from exc
    return {"worker": tokens["Worker"], "manager": tokens["Manager"]}


def _mine_request(load: dict) -> bool:
    """A mine request of this minion to the master, synchronous: straight through the request
    channel, not the event bus, so nothing on the way logs the data."""
    with salt.channel.client.ReqChannel.factory(__opts__) as channel:
        return bool(channel.send(dict(load, id=__opts__["id"])))


def _mine_store(name: str, value, allow_minions=None) -> bool:
    """Store `value` as this minion's mine entry `name`; with `allow_minions`, only those
    minions may read it (the mine's allow_tgt ACL)."""
    if allow_minions is not None:
        value = salt.utils.mine.wrap_acl_structure(value, allow_tgt=list(allow_minions),
                                                   allow_tgt_type="list")
    return _mine_request({"cmd": "_mine", "data": {name: value}, "clear": False})


def publish_swarm_node():
    """Put this node's swarm_info into the Salt mine (entry ag_swarm_node): how the manager
    finds a minion's swarm node ID. Returns whether the master stored it.

    CLI Example: salt '*' ag_docker.publish_swarm_node
    """
    return _mine_store(MINE_NODE, swarm_info())


def published_swarm_nodes(minions=None):
    """What the minions in `minions` (default: every minion of the master, also those no
    longer in the pillar) published with publish_swarm_node: {minion: swarm_info}.

    CLI Example: salt nuc1 ag_docker.published_swarm_nodes '[nuc1, nuc2]'
    """
    if minions is None:
        published = __salt__["mine.get"]("*", MINE_NODE)
    else:
        published = __salt__["mine.get"](list(minions), MINE_NODE, tgt_type="list")
    return {m: info for m, info in published.items()
            if (minions is None or m in minions) and isinstance(info, dict)}


def publish_join_tokens(waiting):
    """Put the join token of each role into the Salt mine (manager only), readable only by the
    minions that wait to join with that role: `waiting` maps minion id to role (worker or
    manager). The token of a role nobody waits for is withdrawn, so the master holds a token
    only while a node is joining. Returns whether the master did it; never the tokens.

    CLI Example: salt nuc1 ag_docker.publish_join_tokens '{nuc4: worker}'
    """
    tokens = _join_tokens() if waiting else {}
    done = True
    for role in ROLES:
        name = f"{MINE_JOIN_TOKEN}_{role}"
        allowed = sorted(minion for minion, r in waiting.items() if r == role)
        if allowed:
            done &= _mine_store(name, tokens[role], allow_minions=allowed)
        else:
            done &= _mine_request({"cmd": "_mine_delete", "fun": name})
    return done


def _token_from_mine(manager: str, role: str):
    return __salt__["mine.get"]([manager], f"{MINE_JOIN_TOKEN}_{role}", tgt_type="list").get(manager)


def join_token_published(manager, role="worker"):
    """Whether `manager` published a `role` join token this minion may read (never the token).

    CLI Example: salt nuc4 ag_docker.join_token_published nuc1
    """
    return bool(_token_from_mine(manager, role))


def swarm_join(manager, manager_addr, advertise_addr, role="worker",
               listen_addr=f"0.0.0.0:{SWARM_PORT}"):
    """Join the swarm of `manager` (minion id) at `manager_addr` as `role`, with the join token
    the manager published to the mine (it never appears in arguments or returns). Returns
    swarm_info after.

    CLI Example: salt nuc2 ag_docker.swarm_join nuc1 198.18.0.11 198.18.0.12
    """
    token = _token_from_mine(manager, role)
    if not token:
        raise CommandExecutionError(
            f"the manager {manager} has published no {role} join token for {__opts__['id']} "
            f"yet; apply the swarm state on {manager} first"
        )
    try:
        _client().swarm.join(remote_addrs=[f"{manager_addr}:{SWARM_PORT}"], join_token=token,
                             listen_addr=listen_addr, advertise_addr=advertise_addr)
    except docker.errors.DockerException as exc:
        raise _api_error(f"joining the swarm of {manager} at {manager_addr}", exc,
                         secret=token) from exc
    return swarm_info()


def swarm_cancel_pending_join():
    """Cancel this node's join that never completed (state pending: a stale join token from
    an earlier swarm, or a manager that went away); the engine keeps retrying it forever
    otherwise. Refuses any other state: a member is never made to leave here. Returns
    swarm_info after.

    CLI Example: salt nuc2 ag_docker.swarm_cancel_pending_join
    """
    state = swarm_info()["state"]
    if state != "pending":
        raise CommandExecutionError(f"the swarm state of {__opts__['id']} is {state}, not a "
                                    "pending join; nothing cancelled")
    try:
        _client().swarm.leave(force=True)
    except docker.errors.DockerException as exc:
        raise _api_error("cancelling the pending swarm join", exc) from exc
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

    CLI Example: salt nuc1 ag_docker.nodes
    """
    try:
        return [_node(attrs) for attrs in _client().api.nodes()]
    except docker.errors.DockerException as exc:
        raise _api_error("listing the swarm nodes (this node must be a manager)", exc) from exc


def _out_of_sequence(exc: Exception) -> bool:
    """The engine refused an update made on an outdated version of the object: someone else
    (another reconcile, the swarm itself recording a node's status) updated it since it was
    read."""
    return "update out of sequence" in str(exc)


UPDATE_ATTEMPTS = 5  # reads and updates of a swarm object that others keep updating


def _versioned_update(what: str, update):
    """Run `update(fresh)`, which reads the object again when `fresh` and updates it on top
    of what it read; when the engine answers that the object changed in between (update out
    of sequence), read it again and retry, at most UPDATE_ATTEMPTS times."""
    for attempt in range(1, UPDATE_ATTEMPTS + 1):
        try:
            return update(attempt > 1)
        except docker.errors.APIError as exc:
            if not _out_of_sequence(exc) or attempt == UPDATE_ATTEMPTS:
                raise _api_error(what, exc) from exc
            log.warning("%s: changed by someone else since it was read (update out of "
                        "sequence); read again, attempt %d of %d", what, attempt + 1,
                        UPDATE_ATTEMPTS)
            time.sleep(0.1 * attempt)
        except docker.errors.DockerException as exc:
            raise _api_error(what, exc) from exc


def node_update(node_id, availability=None, set_labels=(), remove_labels=(), version=None,
                spec=None):
    """Set a swarm node's `availability` (active, pause or drain; drain makes the swarm stop
    every task on the node and start the replicated ones elsewhere), its labels in
    `set_labels` to "true" and remove those in `remove_labels`, in one update on top of its
    spec; every other label and setting stays as it is. `version` and `spec` from nodes() save
    the first inspect; when the node changed since (update out of sequence), it is read again
    and the same changes are made on what it holds now. Returns the node after.

    CLI Example: salt nuc1 ag_docker.node_update 3x9v... availability=drain set_labels='[database]'
    """
    if availability not in (None, "active", "pause", "drain"):
        raise CommandExecutionError(f"availability {availability!r} of swarm node {node_id} "
                                    "must be active, pause or drain")
    api = _client().api
    changes = {"set": list(set_labels), "remove": list(remove_labels)}

    def update(fresh):
        current = (_node(api.inspect_node(node_id)) if fresh or version is None or spec is None
                   else {"version": version, "spec": spec})
        wanted = dict(current["spec"])
        if availability:
            wanted["Availability"] = availability
        if changes["set"] or changes["remove"]:
            wanted["Labels"] = __utils__["ag_cluster.apply_label_changes"](
                current["spec"].get("Labels") or {}, changes)
        api.update_node(node_id, current["version"], wanted)
        return _node(api.inspect_node(node_id))

    what = " and ".join(part for part in (
        availability and f"setting swarm node {node_id} to {availability}",
        (changes["set"] or changes["remove"]) and f"updating the labels of swarm node {node_id}",
    ) if part) or f"updating swarm node {node_id}"
    return _versioned_update(what, update)


def node_remove(node_id):
    """Remove a Down node from the swarm (docker node rm, never forced: the engine refuses a
    node that is still up, and a manager, which must be demoted first). Returns True.

    CLI Example: salt nuc1 ag_docker.node_remove 3x9v...
    """
    try:
        _client().api.remove_node(node_id, force=False)
    except docker.errors.DockerException as exc:
        raise _api_error(f"removing swarm node {node_id}", exc) from exc
    return True


# --- services, tasks, networks ----------------------------------------------------------------


def services():
    """The swarm's services: id, name, image, mode, replicas, constraints, labels.

    CLI Example: salt nuc1 ag_docker.services
    """
    try:
        found = _client().api.services()
    except docker.errors.DockerException as exc:
        raise _api_error("listing services (this node must be a manager)", exc) from exc
    result = []
    for attrs in found:
        spec = attrs["Spec"]
        task = spec.get("TaskTemplate") or {}
        mode = spec.get("Mode") or {}
        result.append({
            "id": attrs["ID"],
            "name": spec["Name"],
            "image": (task.get("ContainerSpec") or {}).get("Image"),
            "mode": "global" if "Global" in mode else "replicated",
            "replicas": (mode.get("Replicated") or {}).get("Replicas"),
            "constraints": (task.get("Placement") or {}).get("Constraints") or [],
            "labels": spec.get("Labels") or {},
        })
    return result


def tasks(service=None, node=None):
    """The swarm's tasks (of one service, by name or ID; on `node`, a node ID or a list of
    them): id, service_id, node_id, slot, desired_state, state, error.

    CLI Example: salt nuc1 ag_docker.tasks service=ag_django
    """
    filters = {}
    if service:
        filters["service"] = service
    if node:
        filters["node"] = [node] if isinstance(node, str) else list(node)
    filters = filters or None
    try:
        found = _client().api.tasks(filters=filters)
    except docker.errors.DockerException as exc:
        raise _api_error("listing tasks (this node must be a manager)", exc) from exc
    return [{
        "id": t["ID"],
        "service_id": t.get("ServiceID"),
        "node_id": t.get("NodeID"),
        "slot": t.get("Slot"),
        "desired_state": t.get("DesiredState"),
        "state": (t.get("Status") or {}).get("State"),
        "error": (t.get("Status") or {}).get("Err"),
    } for t in found]


def _network(attrs: dict) -> dict:
    configs = (attrs.get("IPAM") or {}).get("Config") or []
    return {
        "id": attrs["Id"],
        "name": attrs["Name"],
        "driver": attrs.get("Driver"),
        "scope": attrs.get("Scope"),
        "attachable": bool(attrs.get("Attachable")),
        "subnets": sorted(c["Subnet"] for c in configs if c.get("Subnet")),
        "labels": attrs.get("Labels") or {},
    }


def networks(name=None):
    """Networks of this node (a manager sees the swarm's overlay networks), optionally the one
    named exactly `name`: id, name, driver, scope, attachable, subnets, labels.

    CLI Example: salt nuc1 ag_docker.networks name=ag-swarm-network
    """
    try:
        found = _client().api.networks(names=[name] if name else None)
    except docker.errors.DockerException as exc:
        raise _api_error("listing networks", exc) from exc
    return [_network(n) for n in found if name is None or n["Name"] == name]


def network_create(name, driver="overlay", attachable=False, subnet=None, labels=None):
    """Create a network (an overlay network needs a manager); returns it.

    CLI Example: salt nuc1 ag_docker.network_create ag-swarm-network
    """
    ipam = None
    if subnet:
        ipam = docker.types.IPAMConfig(pool_configs=[docker.types.IPAMPool(subnet=subnet)])
    try:
        created = _client().api.create_network(name, driver=driver, attachable=attachable,
                                               ipam=ipam, labels=labels, check_duplicate=True)
        return _network(_client().api.inspect_network(created["Id"]))
    except docker.errors.DockerException as exc:
        raise _api_error(f"creating network {name}", exc) from exc


# --- the application: registry service, images, stack -----------------------------------------


def _service_attrs(name):
    try:
        return _client().api.inspect_service(name)
    except docker.errors.NotFound:
        return None
    except docker.errors.DockerException as exc:
        raise _api_error(f"inspecting service {name} (this node must be a manager)", exc) from exc


def _published_service(spec: dict) -> dict:
    """The parts of a service spec that service_present manages, in its arguments' terms."""
    task = spec.get("TaskTemplate") or {}
    container = task.get("ContainerSpec") or {}
    ports = (spec.get("EndpointSpec") or {}).get("Ports") or []
    return {
        "image": container.get("Image"),
        "ports": sorted(f"{p.get('PublishedPort')}:{p.get('TargetPort')}/{p.get('PublishMode', 'ingress')}"
                        for p in ports),
        "mounts": sorted(f"{m.get('Source')}:{m.get('Target')}" for m in container.get("Mounts") or []),
        "constraints": sorted((task.get("Placement") or {}).get("Constraints") or []),
    }


def service_present(name, image, port, publish_mode="ingress", volume=None, target=None,
                    constraints=None, test=False):
    """Make the swarm service `name` run `image` (one replica) publishing `port` (same port
    inside) in `publish_mode`, with the named `volume` mounted at `target`, under
    `constraints`. Returns the differences {field: {old, new}} ({} when it already is so);
    with test=True only reports them.

    CLI Example:
        salt nuc1 ag_docker.service_present registry registry:2 5000 volume=ag-registry \\
            target=/var/lib/registry
    """
    wanted = {
        "image": image,
        "ports": [f"{port}:{port}/{publish_mode}"],
        "mounts": [f"{volume}:{target}"] if volume else [],
        "constraints": sorted(constraints or []),
    }
    attrs = _service_attrs(name)
    current = _published_service(attrs["Spec"]) if attrs else {}
    changes = __utils__["ag_diff.changes"](current, wanted)
    if not changes or test:
        return changes
    args = {
        "name": name,
        "mode": docker.types.ServiceMode("replicated", replicas=1),
        "endpoint_spec": docker.types.EndpointSpec(ports={port: (port, "tcp", publish_mode)}),
        "constraints": wanted["constraints"],
        "mounts": [docker.types.Mount(target, volume, type="volume")] if volume else [],
    }
    if attrs is None:
        try:
            _client().services.create(image, **args)
        except docker.errors.DockerException as exc:
            raise _api_error(f"creating service {name}", exc) from exc
    else:
        # Service.update sends the version its get() read
        _versioned_update(f"updating service {name}",
                          lambda fresh: _client().services.get(attrs["ID"]).update(image=image, **args))
    return changes


def image_digest(reference):
    """The registry's digest (sha256:...) of `reference` (repo:tag), or None when the registry
    does not hold it. Asked through this node's dockerd, which reaches 127.0.0.1:5000.

    CLI Example: salt nuc1 ag_docker.image_digest 127.0.0.1:5000/django:latest
    """
    try:
        return _client().api.inspect_distribution(reference)["Descriptor"]["digest"]
    except docker.errors.APIError as exc:
        if exc.status_code in (401, 403, 404) or "not found" in str(exc).lower() \
                or "manifest unknown" in str(exc).lower():
            return None
        raise _api_error(f"asking the registry for {reference}", exc) from exc


PUSH_PATIENCE = 180  # seconds a push waits for a registry that refuses connections


def image_build_push(path, dockerfile, tags):
    """Build the context `path` with `dockerfile` (its .dockerignore honoured), tag the image
    with every repo:tag of `tags` and push them. Returns {tag: registry digest}; on failure
    the error names the image and ends with the build or push output's tail.

    CLI Example: salt nuc1 ag_docker.image_build_push /srv/x/nginx Dockerfile '[127.0.0.1:5000/nginx:latest]'
    """
    client = _client()
    try:
        image, _ = client.images.build(path=path, dockerfile=dockerfile, tag=tags[0], rm=True,
                                       forcerm=True)
    except docker.errors.BuildError as exc:
        tail = "".join(str(c.get("stream") or c.get("error") or "") for c in exc.build_log)[-2000:]
        raise CommandExecutionError(f"building {tags[0]} from {path}/{dockerfile} failed: "
                                    f"{exc.msg}\n{tail}") from exc
    except docker.errors.DockerException as exc:
        raise _api_error(f"building {tags[0]} from {path}/{dockerfile}", exc) from exc
    digests = {}
    for tag in tags:
        repo, _, version = tag.rpartition(":")
        try:
            image.tag(repo, version)
            digests[tag] = _push(client, repo, version)
        except docker.errors.DockerException as exc:
            raise _api_error(f"pushing {tag}", exc) from exc
    return digests


def _push(client, repo, version, patience=PUSH_PATIENCE):
    """Push repo:version → its registry digest. While the registry refuses connections (its task
    being replaced, e.g. after its node missed a swarm heartbeat), try again for `patience`
    seconds."""
    deadline = time.monotonic() + patience
    while True:
        digest, error = None, None
        for line in client.api.push(repo, version, stream=True, decode=True):
            error = line.get("error") or error
            digest = (line.get("aux") or {}).get("Digest") or digest
        if not error:
            return digest
        if "connection refused" not in error or time.monotonic() > deadline:
            raise CommandExecutionError(f"pushing {repo}:{version} failed: {error}")
        time.sleep(5)


def stack_deploy(name, compose_files, cwd):
    """`docker stack deploy` of `compose_files` (in order, paths relative to `cwd`) as stack
    `name`, images used as the files name them (pin them by digest: an unchanged redeploy then
    restarts no task). The docker CLI is the only way: the Engine API has no stacks. Returns
    the CLI's output; raises with it on failure.

    CLI Example: salt nuc1 ag_docker.stack_deploy ag-stack '[docker-compose.yml]' /srv/autograder-full-stack
    """
    cmd = ["docker", "stack", "deploy", "--resolve-image", "never"]
    for path in compose_files:
        cmd += ["-c", path]
    res = __salt__["cmd.run_all"](cmd + [name], cwd=cwd, python_shell=False,
                                  output_loglevel="quiet")
    if res["retcode"] != 0:
        raise CommandExecutionError(f"docker stack deploy {name} failed (exit {res['retcode']}): "
                                    f"{(res['stderr'] or res['stdout'])[-2000:]}")
    return res["stdout"]


def _running_for(task: dict) -> float:
    """Seconds since `task` last changed state (the engine's RFC 3339 time, in nanoseconds)."""
    stamp = (task.get("Status") or {}).get("Timestamp") or ""
    match = re.match(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?", stamp)
    if not match:
        return 0.0
    since = calendar.timegm(time.strptime(match.group(1), "%Y-%m-%dT%H:%M:%S"))
    return time.time() - since - float(match.group(2) or 0)


# a task's states in the order the swarm moves it towards running
TASK_PROGRESS = ("new", "allocated", "pending", "assigned", "accepted", "preparing", "ready",
                 "starting", "running")
TASK_FAILED = ("failed", "rejected")


def _task(task: dict, hostnames: dict) -> dict:
    status = task.get("Status") or {}
    return {"id": task["ID"], "node": hostnames.get(task.get("NodeID")),
            "desired_state": task.get("DesiredState"),
            "state": status.get("State"),
            "since": round(_running_for(task)),
            "exit_code": (status.get("ContainerStatus") or {}).get("ExitCode"),
            "error": status.get("Err"),
            "message": status.get("Message")}


def stack_status(name, settle=5):
    """Each service of stack `name`: {service: {desired, running, converged, update, furthest,
    failed, tasks}}. A service has converged when every task it wants has run for `settle`
    seconds on the image its spec names and no update is in progress (a task that crashes at
    start is running only for a moment). `furthest`: how far towards running its tasks on
    that image got (an index of TASK_PROGRESS, -1 for none); `failed`: the IDs of its tasks
    that failed or were rejected, as far as the swarm's task history goes; `tasks`: [{id,
    node, desired_state, state, since (seconds in that state), exit_code, error, message}] of
    the tasks that should run and the three that ended last. {} when no such stack is
    deployed.

    CLI Example: salt nuc1 ag_docker.stack_status ag-stack
    """
    api = _client().api
    try:
        found = api.services(filters={"label": f"com.docker.stack.namespace={name}"})
        hostnames = {n["ID"]: (n.get("Description") or {}).get("Hostname") for n in api.nodes()}
        all_tasks = api.tasks(filters={"label": f"com.docker.stack.namespace={name}"})
    except docker.errors.DockerException as exc:
        raise _api_error(f"reading stack {name} (this node must be a manager)", exc) from exc
    status = {}
    for attrs in found:
        spec = attrs["Spec"]
        short = spec["Name"][len(name) + 1:]
        image = spec["TaskTemplate"]["ContainerSpec"]["Image"]
        mine = [t for t in all_tasks if t.get("ServiceID") == attrs["ID"]]
        wanted = [t for t in mine if t.get("DesiredState") == "running"]
        current = [(t.get("Status") or {}).get("State") for t in wanted
                   if t["Spec"]["ContainerSpec"]["Image"] == image]
        running = [t for t in wanted if (t.get("Status") or {}).get("State") == "running"
                   and t["Spec"]["ContainerSpec"]["Image"] == image
                   and _running_for(t) >= settle]
        replicas = ((spec.get("Mode") or {}).get("Replicated") or {}).get("Replicas")
        desired = len(wanted) if replicas is None else replicas
        update = (attrs.get("UpdateStatus") or {}).get("State")
        shown = wanted + sorted((t for t in mine if t.get("DesiredState") != "running"),
                                key=lambda t: t.get("UpdatedAt", ""), reverse=True)[:3]
        status[short] = {
            "desired": desired,
            "running": len(running),
            "converged": len(running) == desired,
            "update": update,
            "furthest": max((TASK_PROGRESS.index(s) for s in current if s in TASK_PROGRESS),
                            default=-1),
            "failed": sorted(t["ID"] for t in mine
                             if (t.get("Status") or {}).get("State") in TASK_FAILED),
            "tasks": [_task(t, hostnames) for t in shown],
        }
        if update in ("updating", "rollback_started", "paused", "rollback_paused"):
            status[short]["converged"] = False
    return status


def task_logs(service, task_ids, tail=5):
    """The last `tail` lines each task of `task_ids` (of swarm service `service`) logged:
    {task ID: [lines]}; a task that logged nothing (or whose node does not answer) is left
    out.

    CLI Example: salt nuc1 ag_docker.task_logs ag-stack_nginx '[u3k...]'
    """
    wanted = set(task_ids)
    try:
        # details: each line starts with its context, com.docker.swarm.task.id=... among it
        chunks = _client().api.service_logs(service, details=True, stdout=True, stderr=True,
                                            tail=tail)
        text = b"".join(chunks).decode(errors="replace")
    except docker.errors.DockerException as exc:
        raise _api_error(f"reading the logs of service {service}", exc) from exc
    found = {}
    for line in text.splitlines():
        context, _, message = line.partition(" ")
        attrs = dict(part.partition("=")[::2] for part in context.split(","))
        task = attrs.get("com.docker.swarm.task.id")
        if task in wanted and message.strip():
            found.setdefault(task, []).append(message.rstrip())
    return {task: lines[-tail:] for task, lines in found.items()}


def local_task_exec(service, cmd):
    """Run `cmd` (a list) in this node's running container of swarm service `service`.
    Returns {container, retcode, stdout, stderr}, or None when no task of it runs here.

    CLI Example: salt nuc1 ag_docker.local_task_exec ag-stack_django '[python3, manage.py, check]'
    """
    try:
        found = _client().containers.list(
            filters={"label": f"com.docker.swarm.service.name={service}", "status": "running"})
        if not found:
            return None
        result = found[0].exec_run(cmd, demux=True)
    except docker.errors.DockerException as exc:
        raise _api_error(f"running {cmd[0]} in the {service} container", exc) from exc
    out, err = result.output
    return {"container": found[0].short_id, "retcode": result.exit_code,
            "stdout": (out or b"").decode(errors="replace"),
            "stderr": (err or b"").decode(errors="replace")}
