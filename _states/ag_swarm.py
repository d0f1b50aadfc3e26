"""The swarm of the cluster pillar, through the ag_swarm execution module (and ag_app's
listings of services and tasks, for draining).

``ag_swarm.initialized`` (manager)
    A swarm with this node as its manager; no-op when this node already manages a swarm.
    Each run publishes this node's swarm node ID to the Salt mine, and the join tokens for
    the members not in the swarm yet, readable only by them (withdrawn when none waits).

``ag_swarm.joined`` (every other node)
    This node a member of the manager's swarm, with the token the manager published (fetched
    inside ``ag_swarm.swarm_join``, never an argument or a return). A node in another swarm is
    an error naming both cluster IDs, never left silently. A member of the manager's swarm
    that is reconnecting (pending after its dockerd restarted) is waited for, never made to
    rejoin; a pending join that never completed is cancelled and joined again. A node the
    manager has published no token for yet (new in pillar) fires ``ag/swarm/token/wanted``:
    the master's reactor re-applies swarm.initialized on the manager, whose pillar decides
    who gets the token.
    After joining it publishes its swarm node ID and fires ``ag/swarm/node/joined``, on which
    the reactor labels it from the manager (conf/master.d/ag.conf).

``ag_swarm.network_present`` (manager)
    An overlay network with the given options.

``ag_swarm.labels_reconciled`` (manager)
    For every pillar node that has joined: its managed labels exactly as in pillar (value
    "true"), labels outside the guide's set untouched, its availability as in pillar
    (active unless it says drain). Nodes are found by the swarm node ID each minion
    published itself. A member no pillar minion claims is taken out when it was ours (a
    minion of this master published it, or it carries managed labels) and does not look
    like a pillar node missing from the mine (same hostname or address; a flushed mine must
    never drain the cluster): availability drain, then the wait (at most `drain_timeout`)
    until no task of any service runs on it, then its managed labels removed, then, when it
    is Down, ``docker node rm``. An up one stays a drained, unlabelled member until the
    admin makes it leave (the comment says so); a manager is never removed (demote it). A
    pillar node set to drain is emptied the same way before its labels change. Changes, per
    node: ``set``/``remove`` (labels), ``availability``, ``tasks_left`` (the tasks on it
    when it was drained), ``removed``. One nodes listing, one update per changed property,
    one tasks listing per poll. Pillar errors, and moves of database or registry that
    allow_label_moves does not allow (a node taken out counts as their holder), fail before
    any change.

``ag_swarm.labels_absent`` (manager)
    The labels the pillar gives the nodes named removed from them, no other label touched:
    a node's or the cluster's retirement (salt/swarm/clean.sls). The node stays a member.

Every function: desired → actual → diff → (test: result None + would-be changes) → apply;
network_present, labels_reconciled and labels_absent then read back what they changed and fail, naming the
network or the node and what differs, when it is not what was wanted.
"""

import time

from salt.exceptions import CommandExecutionError

JOINED_EVENT = "ag/swarm/node/joined"
TOKEN_WANTED_EVENT = "ag/swarm/token/wanted"
DRAIN_POLL = 2  # seconds between two looks at the tasks of a draining node
RECONNECT_WAIT = 120  # seconds a member whose dockerd restarted gets to reach its managers
RECONNECT_POLL = 2


def __virtual__():
    for fun in ("ag_swarm.nodes", "ag_app.tasks"):
        if fun not in __salt__:
            return False, (f"ag_swarm needs the {fun.split('.')[0]} execution module: "
                           + __salt__.missing_fun_string(fun))
    if "ag_cluster.validate" not in __utils__:
        return False, ("ag_swarm needs _utils/ag_cluster.py: run saltutil.sync_all on this "
                       "minion")
    return True


def _ret(name):
    return {"name": name, "result": True, "changes": {}, "comment": ""}


def _fail(ret, comment):
    ret.update(result=False, comment=comment)
    return ret


def initialized(name, advertise_addr, members=None, default_addr_pool=None,
                default_addr_pool_mask_length=24, dispatcher_heartbeat=None):
    """This node manages a swarm, advertising `advertise_addr`, whose nodes send heartbeats
    every `dispatcher_heartbeat` seconds (None: as the swarm has it); new swarms take their
    overlay subnets from `default_addr_pool` in blocks of `default_addr_pool_mask_length`.
    `members`: the other nodes' minion ids with their role; those not in the swarm yet may
    read the join token of their role."""
    ret = _ret(name)
    try:
        info = __salt__["ag_swarm.swarm_info"]()
    except CommandExecutionError as exc:
        return _fail(ret, str(exc))
    if info["state"] == "active" and info["role"] == "worker":
        return _fail(ret, f"{__opts__['id']} is a worker of swarm {info['cluster_id']}, so it "
                          "cannot be the manager the pillar names; make it leave that swarm "
                          "(docker swarm leave) or name its manager in autograder:cluster:manager")
    if info["state"] not in ("active", "inactive"):
        return _fail(ret, f"the swarm state of {__opts__['id']} is {info['state']}; "
                          "fix it by hand (docker info) and re-apply")
    if info["state"] == "inactive":
        ret["changes"] = {"swarm": {"old": None, "new": f"manager of a new swarm at {advertise_addr}"}}
        if __opts__["test"]:
            ret.update(result=None, comment=f"a new swarm would be initialized at {advertise_addr}")
            return ret
        try:
            info = __salt__["ag_swarm.swarm_init"](
                advertise_addr, default_addr_pool=default_addr_pool,
                subnet_size=default_addr_pool_mask_length,
                dispatcher_heartbeat=dispatcher_heartbeat)
        except CommandExecutionError as exc:
            return _fail(ret, str(exc))
        ret["changes"]["swarm"]["new"] = {"cluster_id": info["cluster_id"],
                                          "node_id": info["node_id"]}
        ret["comment"] = f"initialized swarm {info['cluster_id']} at {advertise_addr}"
    else:
        ret["comment"] = f"{__opts__['id']} already manages swarm {info['cluster_id']}"
        if info["node_addr"] != advertise_addr:
            ret["comment"] += (f" (it advertises {info['node_addr']}, pillar says {advertise_addr}:"
                               " a manager's address cannot change in place)")
        if dispatcher_heartbeat:
            ret = _settings_reconciled(ret, {"dispatcher_heartbeat": dispatcher_heartbeat})
            if ret["result"] is False:
                return ret
    if __opts__["test"]:
        return ret
    try:
        waiting = _waiting(members or {}, info["cluster_id"])
        published = (__salt__["ag_swarm.publish_swarm_node"](info)
                     and __salt__["ag_swarm.publish_join_tokens"](waiting))
    except CommandExecutionError as exc:
        return _fail(ret, f"{ret['comment']}; {exc}")
    if not published:
        return _fail(ret, ret["comment"] + "; but the master did not update the join tokens in "
                                           "its mine, so no node can join: check the master log")
    if waiting:
        ret["comment"] += f"; join tokens published for {', '.join(sorted(waiting))}"
    return ret


def _settings_reconciled(ret, wanted):
    """`ret` with the swarm's `wanted` settings (swarm_settings' keys) set, or in test mode
    reported; re-read after, failing when they read back otherwise."""
    try:
        diff = __utils__["ag_diff.changes"](__salt__["ag_swarm.swarm_settings"](), wanted)
        if diff and not __opts__["test"]:
            left = __utils__["ag_diff.changes"](
                __salt__["ag_swarm.swarm_settings_update"](**wanted), wanted)
            if left:
                return _fail(ret, f"the swarm's settings were updated but read back otherwise "
                                  f"({__utils__['ag_diff.described'](left)})")
    except CommandExecutionError as exc:
        return _fail(ret, str(exc))
    if diff:
        ret["changes"].update(diff)
        ret["comment"] += "; settings " + ("would be " if __opts__["test"] else "") + \
            "set: " + ", ".join(f"{key} {d['new']}" for key, d in diff.items())
        if __opts__["test"]:
            ret["result"] = None
    return ret


def _waiting(members, cluster_id):
    """The members (minion → role) not in this manager's swarm yet, going by what each minion
    published about itself: only they may read a join token."""
    if not members:
        return {}
    in_swarm = {node["id"] for node in __salt__["ag_swarm.nodes"]()}
    published = __salt__["ag_swarm.published_swarm_nodes"](list(members))
    return {
        minion: role for minion, role in members.items()
        if not (published.get(minion, {}).get("state") == "active"
                and published[minion].get("cluster_id") == cluster_id
                and published[minion].get("node_id") in in_swarm)
    }


def joined(name, manager, manager_addr, advertise_addr, role="worker"):
    """This node a `role` member of the swarm that minion `manager` (reached at
    `manager_addr`) manages, advertising `advertise_addr`."""
    ret = _ret(name)
    me = __opts__["id"]
    published = __salt__["ag_swarm.published_swarm_nodes"]([manager]).get(manager) or {}
    swarm_id = published.get("cluster_id") if published.get("role") == "manager" else None
    try:
        info = __salt__["ag_swarm.swarm_info"]()
        # pending with a certificate of the manager's swarm: a member reconnecting
        reconnecting = info["state"] == "pending" and swarm_id and info["cluster_id"] == swarm_id
        if reconnecting:
            info = _reconnected(info)
    except CommandExecutionError as exc:
        return _fail(ret, str(exc))
    if reconnecting and info["state"] == "pending":
        if __opts__["test"]:
            ret["comment"] = (f"{me} is a member of swarm {swarm_id} reconnecting to its "
                              "managers (docker info: pending); nothing to change")
            return ret
        return _fail(ret, f"{me} is a member of swarm {swarm_id} that has not reconnected to "
                          f"its managers in {RECONNECT_WAIT} s (docker info: pending); check "
                          f"that it reaches {manager_addr}:2377, then re-apply. Nothing was "
                          "changed: a member is never made to leave here")
    if info["state"] == "active":
        if swarm_id is None:
            return _fail(ret, f"{me} is in swarm {info['cluster_id']}, but the manager {manager} "
                              "has published no swarm yet; apply the swarm state on "
                              f"{manager} first")
        if info["cluster_id"] != swarm_id:
            return _fail(ret, f"{me} is in swarm {info['cluster_id']}, not in swarm {swarm_id} "
                              f"of the manager {manager}; make {me} leave its swarm (docker "
                              "swarm leave) if it belongs to this cluster, then re-apply")
        ret["comment"] = f"{me} is a {info['role']} of swarm {swarm_id}"
        if info["role"] != role:
            ret["comment"] += f" (pillar says {role}: docker node promote/demote on {manager})"
        if not __opts__["test"]:
            __salt__["ag_swarm.publish_swarm_node"](info)
        return ret
    old = None
    if info["state"] == "pending":
        # a join that never completed (a token of the manager's previous swarm, or a member
        # of a swarm that is gone): the engine retries it forever; cancel it and join with
        # the manager's current token
        old = "a pending join, cancelled"
        if not __opts__["test"]:
            try:
                info = __salt__["ag_swarm.swarm_cancel_pending_join"]()
            except CommandExecutionError as exc:
                return _fail(ret, str(exc))
    if info["state"] not in ("inactive", "pending"):
        return _fail(ret, f"the swarm state of {me} is {info['state']}; fix it by hand "
                          "(docker info) and re-apply")
    ret["changes"] = {"swarm": {"old": old, "new": f"{role} of the swarm of {manager}"}}
    if __opts__["test"]:
        ret.update(result=None, comment=f"{me} would join the swarm of {manager} as {role}")
        return ret
    if swarm_id is None:
        return _fail(ret, f"the manager {manager} has published no swarm yet; apply the swarm "
                          f"state on {manager} first")
    if not __salt__["ag_swarm.join_token_published"](manager, role):
        # the manager publishes tokens for the members of its own pillar that are not in its
        # swarm (as they published themselves), only while they wait. At the first miss this
        # node says it waits; a manager initializing in the same deploy step publishes the
        # token by the next retry. Only then ask the manager, once per run
        misses = __context__.get("ag_swarm.token_misses", 0) + 1
        __context__["ag_swarm.token_misses"] = misses
        if misses == 1:
            __salt__["ag_swarm.publish_swarm_node"](info)
        elif misses == 2:
            __salt__["event.fire_master"]({"manager": manager}, TOKEN_WANTED_EVENT)
        return _fail(ret, f"the manager {manager} has no {role} join token for {me} in the mine "
                          f"yet{' (asked for it)' if misses > 1 else ''}; if this persists, "
                          f"check that {me} is in "
                          f"autograder:cluster:nodes of {manager}'s pillar")
    try:
        info = __salt__["ag_swarm.swarm_join"](manager, manager_addr, advertise_addr, role=role)
    except CommandExecutionError as exc:
        ret["changes"] = {}
        return _fail(ret, str(exc))
    __salt__["ag_swarm.publish_swarm_node"](info)
    __salt__["event.fire_master"]({"manager": manager, "node_id": info["node_id"]}, JOINED_EVENT)
    ret["changes"]["swarm"]["new"] = {"cluster_id": info["cluster_id"], "node_id": info["node_id"],
                                      "role": info["role"]}
    ret["comment"] = f"{me} joined swarm {info['cluster_id']} as {info['role']}"
    return ret


def _reconnected(info):
    """swarm_info once this member, pending since its dockerd restarted, is active again
    (at most RECONNECT_WAIT seconds in all of one run, the SLS's retries included; in test
    mode no wait)."""
    if __opts__["test"]:
        return info
    deadline = __context__.setdefault("ag_swarm.reconnect_deadline",
                                      time.monotonic() + RECONNECT_WAIT)
    while info["state"] == "pending" and time.monotonic() < deadline:
        time.sleep(RECONNECT_POLL)
        info = __salt__["ag_swarm.swarm_info"]()
    return info


def network_present(name, driver="overlay", attachable=False, subnet=None, encrypted=False):
    """The network `name` exists with this driver, attachability, encryption and (if given)
    subnet."""
    ret = _ret(name)
    try:
        found = __salt__["ag_swarm.networks"](name=name)
    except CommandExecutionError as exc:
        return _fail(ret, str(exc))
    wanted = {"driver": driver, "attachable": bool(attachable), "encrypted": bool(encrypted)}
    if subnet:
        wanted["subnets"] = [subnet]
    if found:
        diff = __utils__["ag_diff.changes"](found[0], wanted)
        if diff:
            shown = __utils__["ag_diff.described"](diff)
            return _fail(ret, f"network {name} exists but differs ({shown}); a network in use "
                              "cannot change: remove the stack and the network (docker network "
                              "rm), then re-apply")
        ret["comment"] = f"network {name} is present"
        return ret
    ret["changes"] = __utils__["ag_diff.changes"]({}, {"network": wanted})
    if __opts__["test"]:
        ret.update(result=None, comment=f"network {name} would be created")
        return ret
    try:
        created = __salt__["ag_swarm.network_create"](name, driver=driver, attachable=attachable,
                                                      subnet=subnet, encrypted=encrypted)
    except CommandExecutionError as exc:
        ret["changes"] = {}
        return _fail(ret, str(exc))
    ret["changes"]["network"]["new"] = {k: created[k] for k in ("id", "driver", "attachable",
                                                               "encrypted", "subnets")}
    left = __utils__["ag_diff.changes"](created, wanted)
    if left:
        return _fail(ret, f"network {name} was created but reads back otherwise "
                          f"({__utils__['ag_diff.described'](left)}); see docker network inspect "
                          f"{name}, remove it (docker network rm) and re-apply")
    ret["comment"] = f"network {name} created"
    return ret


def _minions_by_node_id(cluster, cluster_id, swarm_nodes):
    return __utils__["ag_mine.minions_by_node_id"](
        __salt__["ag_swarm.published_swarm_nodes"](), cluster["nodes"], cluster_id, swarm_nodes)


def _leaving(cluster, me, swarm_nodes, minion_of, node_id_of):
    """The swarm members to take out: not this node, claimed by no pillar minion, and ours
    (a minion of this master published it, or it carries managed labels). A member whose
    hostname or address is that of a pillar node that has published no swarm node yet is
    left alone: it is most likely that node, not yet in the mine (a flushed mine must never
    drain the cluster). Returns ({name: swarm node}, [descriptions of those left alone])."""
    unclaimed = {minion: node for minion, node in cluster["nodes"].items()
                 if minion not in node_id_of}
    leaving, unsure = {}, []
    for node_id, node in sorted(swarm_nodes.items()):
        minion = minion_of.get(node_id)
        if node_id == me["node_id"] or minion in cluster["nodes"]:
            continue
        if minion is None and not __utils__["ag_cluster.managed_labels"](node["labels"]):
            continue  # nothing says it was ever ours
        name = minion or f"swarm node {node_id} ({node['hostname']})"
        like = sorted(m for m, n in unclaimed.items()
                      if __utils__["ag_cluster.same_host"](m, node["hostname"])
                      or node.get("addr") == n.get("address"))
        if like:
            unsure.append(f"{name} (it looks like {' or '.join(like)}: apply the swarm state "
                          f"on {like[0]} so it publishes its swarm node)")
        else:
            leaving[name] = node
    return leaving, unsure


def _live_tasks_on(node_ids):
    return __utils__["ag_cluster.live_tasks"](__salt__["ag_app.tasks"](node=sorted(node_ids)))


def _tasks_on(names_by_id, live=None):
    """{name: readable names (service.slot, as docker service ps shows them) of the tasks
    still on that node} for {node ID: name}: one tasks call (unless `live` is given) and one
    services call when some are."""
    live = _live_tasks_on(names_by_id) if live is None else live
    if not live:
        return {}
    services = {s["id"]: s["name"] for s in __salt__["ag_app.services"]()}
    found = {}
    for task in live:
        shown = services.get(task["service_id"], task["service_id"])
        found.setdefault(names_by_id[task["node_id"]], []).append(
            shown + (f".{task['slot']}" if task.get("slot") else ""))
    return {name: sorted(tasks) for name, tasks in found.items()}


def _wait_idle(names_by_id, timeout):
    """Wait until no task runs on the nodes {node ID: name}, at most `timeout` seconds;
    returns what still runs then ({} when they emptied)."""
    deadline = time.monotonic() + timeout
    while True:
        live = _live_tasks_on(names_by_id)
        if not live:
            return {}
        if time.monotonic() >= deadline:
            return _tasks_on(names_by_id, live)
        time.sleep(DRAIN_POLL)


def _node_plan(cluster, swarm_nodes, node_id_of, leaving):
    """{name: what to do} for the pillar nodes (label changes, availability) and the
    leaving nodes (drain, every managed label removed, removed from the swarm when Down)."""
    plan = {}
    for minion, node in sorted(cluster["nodes"].items()):
        if minion not in node_id_of:
            continue
        current = swarm_nodes[node_id_of[minion]]
        todo = __utils__["ag_cluster.label_changes"](current["labels"], node.get("labels") or [])
        entry = todo if todo["set"] or todo["remove"] else {}
        availability = __utils__["ag_cluster.node_availability"](node)
        if current.get("availability") != availability:
            entry = dict(entry, availability=availability)
        if entry:
            plan[minion] = entry
    for name, node in leaving.items():
        entry = {"availability": "drain",
                 "remove": __utils__["ag_cluster.managed_labels"](node["labels"]),
                 "removed": node.get("state") == "down" and node.get("role") != "manager"}
        if node.get("availability") != "drain" or entry["remove"] or entry["removed"]:
            plan[name] = entry
    return plan


def labels_reconciled(name, cluster, drain_timeout=300):
    """Every joined pillar node of `cluster` (autograder:cluster) carries exactly its pillar
    labels among the guide's labels, with its pillar availability; a member that was one of
    ours and is no longer in pillar is drained, waited for (at most `drain_timeout` seconds)
    until no task runs on it, stripped of its managed labels and, when Down, removed from
    the swarm (run on the manager)."""
    ret = _ret(name)
    errors = __utils__["ag_cluster.validate"]({"cluster": cluster})
    if errors:
        return _fail(ret, "invalid pillar, nothing changed:\n" + "\n".join(errors))
    try:
        me = __salt__["ag_swarm.swarm_info"]()
        swarm_nodes = ({n["id"]: n for n in __salt__["ag_swarm.nodes"]()}
                       if me["role"] == "manager" else {})
    except CommandExecutionError as exc:
        return _fail(ret, str(exc))
    if me["role"] != "manager":
        if not __opts__["test"]:
            return _fail(ret, f"{__opts__['id']} manages no swarm, and labels can only be set "
                              "on a manager; apply swarm.initialized first")
        ret["changes"] = {minion: {"set": sorted(node.get("labels") or []), "remove": []}
                          for minion, node in sorted(cluster["nodes"].items())
                          if node.get("labels")}
        ret.update(result=None, comment=f"{__opts__['id']} manages no swarm yet; the labels "
                                        "would be set as the nodes join")
        return ret
    minion_of = _minions_by_node_id(cluster, me["cluster_id"], swarm_nodes)
    current = __utils__["ag_cluster.swarm_holders"](swarm_nodes, minion_of)
    errors = __utils__["ag_cluster.validate"]({"cluster": cluster}, current_holders=current)
    if errors:
        return _fail(ret, "refused, nothing changed:\n" + "\n".join(errors))

    node_id_of = {minion: node_id for node_id, minion in minion_of.items()
                  if minion in cluster["nodes"]}
    leaving, unsure = _leaving(cluster, me, swarm_nodes, minion_of, node_id_of)
    plan = _node_plan(cluster, swarm_nodes, node_id_of, leaving)
    id_of = dict(node_id_of, **{n: node["id"] for n, node in leaving.items()})
    # the nodes whose tasks must be gone before their labels change: drained ones that are up
    # (a Down node's tasks never report again; the swarm already started them elsewhere)
    draining = {id_of[n]: n for n, todo in plan.items()
                if todo.get("availability", swarm_nodes[id_of[n]].get("availability")) == "drain"
                and swarm_nodes[id_of[n]].get("state") != "down"}
    try:
        running = _tasks_on(draining) if draining else {}
    except CommandExecutionError as exc:
        return _fail(ret, str(exc))
    for n in draining.values():
        plan[n]["tasks_left"] = running.get(n, [])

    pending = sorted(set(cluster["nodes"]) - set(node_id_of))
    notes = []
    if pending:
        notes.append(f"not in the swarm yet (labelled when they join): {', '.join(pending)}")
    if unsure:
        notes.append("not in pillar but left alone: " + "; ".join(unsure))
    for n, node in leaving.items():
        if node.get("role") == "manager":
            notes.append(f"{n} is not in pillar but is a manager: demote it (docker node demote "
                         f"{node['hostname']}) and re-apply, then it is removed once Down")
        elif node.get("state") != "down":
            notes.append(f"{n} is not in pillar and stays a swarm member (drained, without "
                         "managed labels): run 'docker swarm leave' on it, then re-apply here to "
                         "remove it (or put it back in autograder:cluster:nodes)")

    if not plan:
        ret["comment"] = "; ".join(["every joined node carries its pillar labels"] + notes)
        return ret
    ret["changes"] = plan
    if __opts__["test"]:
        ret.update(result=None, comment="; ".join([_summary(plan, leaving, "would be ")] + notes))
        return ret
    done = {}
    try:
        after = _apply(plan, swarm_nodes, id_of, draining, leaving, drain_timeout, done)
    except CommandExecutionError as exc:
        ret["changes"] = done
        return _fail(ret, str(exc))
    ret["comment"] = "; ".join([_summary(plan, leaving, "")] + notes)
    unmet = {n: _unmet(todo, after[n]) for n, todo in plan.items()}
    shown = "; ".join(f"{n} ({', '.join(wrong)})" for n, wrong in unmet.items() if wrong)
    if shown:
        return _fail(ret, f"{ret['comment']}; but the swarm reads back otherwise: {shown}: "
                          "something else changes these nodes (another reconcile, an admin's "
                          "docker node update); re-apply once it is done")
    return ret


def _unmet(todo, node):
    """What `node`, as read after its updates, lacks of its `todo`: phrases, [] when none."""
    labels = node.get("labels") or {}
    wrong = []
    if "availability" in todo and node.get("availability") != todo["availability"]:
        wrong.append(f"availability {node.get('availability')}, pillar wants {todo['availability']}")
    wrong += [f"label {label} missing" for label in todo.get("set", []) if labels.get(label) != "true"]
    wrong += [f"label {label} still set" for label in todo.get("remove", []) if label in labels]
    return wrong


def _apply(plan, swarm_nodes, id_of, draining, leaving, drain_timeout, done):
    """Carry out `plan` in the order that moves tasks before labels: availability first,
    then the wait until the drained nodes are empty, then the labels, then the removals.
    Records in `done` what was changed, so a failure reports it. Returns {name: the node as
    the swarm reads it after its last update}."""
    nodes = {n: swarm_nodes[id_of[n]] for n in plan}
    for n, todo in plan.items():
        if "availability" in todo and nodes[n].get("availability") != todo["availability"]:
            try:
                nodes[n] = __salt__["ag_swarm.node_update"](
                    nodes[n]["id"], availability=todo["availability"],
                    version=nodes[n]["version"], spec=nodes[n]["spec"])
            except CommandExecutionError as exc:
                raise CommandExecutionError(f"availability of {n}: {exc}") from exc
            done.setdefault(n, {})["availability"] = todo["availability"]
    still = _wait_idle(draining, drain_timeout) if draining else {}
    if still:
        shown = "; ".join(f"{n}: {', '.join(tasks)}" for n, tasks in sorted(still.items()))
        raise CommandExecutionError(
            f"tasks still run on drained nodes after {drain_timeout} s ({shown}); their labels "
            "were left in place; see why they do not stop (docker node ps NODE) and re-apply, "
            "or give them longer (autograder:swarm:drain_timeout)")
    for n in draining.values():
        done.setdefault(n, {})["tasks_left"] = plan[n]["tasks_left"]
    for n, todo in plan.items():
        if todo.get("set") or todo.get("remove"):
            node = nodes[n]
            try:
                nodes[n] = __salt__["ag_swarm.node_update"](
                    node["id"], set_labels=todo.get("set", []), remove_labels=todo["remove"],
                    version=node["version"], spec=node["spec"])
            except CommandExecutionError as exc:
                raise CommandExecutionError(f"labels of {n}: {exc}") from exc
            done.setdefault(n, {}).update({k: todo[k] for k in ("set", "remove") if k in todo})
    for n, todo in plan.items():
        if todo.get("removed"):
            try:
                __salt__["ag_swarm.node_remove"](nodes[n]["id"])
            except CommandExecutionError as exc:
                raise CommandExecutionError(f"{n} is Down, drained and unlabelled, but removing "
                                            f"it failed: {exc}") from exc
            done.setdefault(n, {})["removed"] = True
    return nodes


def _summary(plan, leaving, would):
    """One line of what `plan` does (`would`: "would be " in test mode)."""
    out = [n for n in plan if n in leaving]
    removed = [n for n in out if plan[n]["removed"]]
    labelled = [n for n in plan if n not in leaving and (plan[n].get("set") or plan[n].get("remove"))]
    availability = [f"{n} {plan[n]['availability']}" for n in plan
                    if n not in leaving and "availability" in plan[n]]
    parts = []
    if out:
        parts.append(f"not in pillar, {would}drained and unlabelled: {', '.join(out)}")
    if removed:
        parts.append(f"Down, {would}removed from the swarm: {', '.join(removed)}")
    if availability:
        parts.append(f"availability {would}set: {', '.join(availability)}")
    if labelled:
        parts.append(f"labels {'would change' if would else 'changed'} on {', '.join(labelled)}")
    return "; ".join(parts)


def labels_absent(name, nodes):
    """The labels the pillar gives each node of `nodes` ({minion: its pillar labels}) removed
    from its swarm node, every other label left as it is (run on the manager, when a node or
    the cluster retires: salt/swarm/clean.sls). A node not in the swarm has none to remove."""
    ret = _ret(name)
    me_id = __opts__["id"]
    try:
        me = __salt__["ag_swarm.swarm_info"]()
        if me["state"] == "inactive":
            ret["comment"] = f"{me_id} is in no swarm: no node label to remove"
            return ret
        if me["role"] != "manager":
            return _fail(ret, f"{me_id} is not the swarm's manager (swarm state {me['state']}, "
                              f"role {me['role']}), and labels can only be removed on a manager; "
                              "apply swarm.clean on the manager")
        swarm_nodes = {n["id"]: n for n in __salt__["ag_swarm.nodes"]()}
    except CommandExecutionError as exc:
        return _fail(ret, str(exc))
    minion_of = _minions_by_node_id({"nodes": nodes}, me["cluster_id"], swarm_nodes)
    node_of = {minion: swarm_nodes[node_id] for node_id, minion in minion_of.items()
               if minion in nodes}
    plan = {minion: {"remove": sorted(set(nodes[minion] or []) & set(node_of[minion]["labels"]))}
            for minion in sorted(node_of)}
    plan = {minion: todo for minion, todo in plan.items() if todo["remove"]}
    outside = sorted(set(nodes) - set(node_of))
    note = f"; not in the swarm: {', '.join(outside)}" if outside else ""
    if not plan:
        ret["comment"] = "no node carries a label its pillar gives" + note
        return ret
    if __opts__["test"]:
        ret.update(result=None, changes=plan,
                   comment=f"pillar labels would be removed from {', '.join(plan)}{note}")
        return ret
    for minion, todo in plan.items():
        node = node_of[minion]
        try:
            after = __salt__["ag_swarm.node_update"](node["id"], remove_labels=todo["remove"],
                                                     version=node["version"], spec=node["spec"])
        except CommandExecutionError as exc:
            return _fail(ret, f"labels of {minion}: {exc}")
        ret["changes"][minion] = todo
        wrong = _unmet(todo, after)
        if wrong:
            return _fail(ret, f"the labels of {minion} were removed but the swarm reads back "
                              f"otherwise ({', '.join(wrong)}): something else labels it (the "
                              "deploy's swarm step, an admin); re-apply once it is done")
    ret["comment"] = f"pillar labels removed from {', '.join(plan)}{note}"
    return ret
