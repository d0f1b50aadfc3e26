"""The autograder cluster, from the master.

``salt-run ag.validate``: the pillar every accepted minion gets, checked against the cluster
rules (_utils/ag_cluster.py) before anything is applied; non-zero exit when invalid.
``salt-run ag.unanswered``: the cluster's nodes whose minion does not answer (ag.deploy stops on them).
``salt-run ag.preflight``: both checks in one call, as ag.deploy and ag.retire make them.
``salt-run ag.status``: one table of the swarm's nodes and the stack's services, from the manager.
``salt-run ag.plan``: what ``state.orchestrate ag.deploy`` would change, changing nothing.
``salt-run ag.deploy``: the orchestration ag.deploy, printing each step as it starts and ends.
``salt-run ag.roll``: the node states that restart dockerd applied one node at a time, each
drained first (ag.deploy's roll step).
``salt-run ag.backup`` / ``ag.restore name=…``: the site's data (the database, every
submission in media_root, the secrets dir) kept in backup:dir and brought back.
``ag.swarm_event``: the reactor's answer to the swarm events of the cluster's nodes only.
"""

import concurrent.futures
import contextlib
import functools
import logging
import sys
import threading
import time

import salt.client
import salt.key
import salt.utils.event
from salt.exceptions import CommandExecutionError, SaltInvocationError

__virtualname__ = "ag"
LIVE_TIMEOUT = 10  # seconds for the cluster's nodes to answer ag.validate's live checks


def __virtual__():
    if "ag_cluster.validate" not in __utils__:
        return False, ("the ag runner needs _utils/ag_cluster.py on the master: run "
                       "'salt-run saltutil.sync_all' (with this repository's root in the "
                       "master's file_roots)")
    return __virtualname__


def _as_sentence(runner):
    """`runner`, returning {"error": its sentence, "retcode": 1} where it raises a Salt error
    (an invalid pillar, a bad argument, a manager that does not answer): salt-run would
    print a traceback for it."""
    @functools.wraps(runner)
    def wrapper(*args, **kwargs):
        try:
            return runner(*args, **kwargs)
        except (CommandExecutionError, SaltInvocationError) as exc:
            __context__["retcode"] = 1  # a failed step when an orchestration runs it
            return {"error": f"ag.{runner.__name__}: {exc}", "retcode": 1}
    return wrapper


def _check(minion=None, live=False):
    """ag.validate's result, and the autograder pillar the checked minions share (None when
    no minion has one): callers that go on after a valid check need not compile it again.
    `live`: also check it against the cluster as it is (jobs on every node; only before a
    change, not for the reactor or ag.status)."""
    accepted = salt.key.get_key(__opts__).list_status("accepted")["minions"]
    if minion and minion not in accepted:
        return {"valid": False, "minions": [], "retcode": 1,
                "errors": [f"{minion} is not an accepted minion of this master (salt-key -L)"]}, None
    views = {}
    rendered = {}  # the pillar files the master could not render, once for all minions
    for target in [minion] if minion else accepted:
        pillar = __salt__["pillar.show_pillar"](target)
        if pillar.get("_errors"):
            failed = __utils__["ag_cluster.render_errors"](__opts__.get("pillar_roots", {}),
                                                            pillar["_errors"])
            rendered.update((error, None) for error in failed)
        if "autograder" in pillar:
            views.setdefault(repr(pillar["autograder"]), (pillar["autograder"], []))[1].append(target)
    checked = sorted(m for _, ms in views.values() for m in ms)
    if rendered:  # what the rest of the pillar lacks or gets wrong would follow from these
        return {"valid": False, "errors": list(rendered), "minions": checked, "retcode": 1}, None
    errors = []
    if not views:
        errors.append(f"no pillar of {minion or 'any accepted minion'} has the autograder key; "
                      "assign the cluster pillar in the pillar top file")
    elif len(views) > 1:
        groups = " / ".join(", ".join(sorted(m)) for _, m in views.values())
        errors.append(f"the minions see different autograder pillars ({groups}); give every "
                      "cluster minion the same one")
    for autograder, _ in views.values():
        errors += __utils__["ag_cluster.validate"](autograder, known_minions=accepted)
    shared = next(iter(views.values()))[0] if len(views) == 1 else None
    if live and shared is not None and not errors:
        errors += _live_errors(shared, _addresses(shared, LIVE_TIMEOUT))
    return {"valid": not errors, "errors": errors, "minions": checked,
            "retcode": int(bool(errors))}, shared


def validate(minion=None):
    """Check the autograder pillar of `minion` (default: of every accepted minion): the rules
    of pillar.example, and that every node is an accepted minion. Minions whose pillar has no
    autograder key are outside the cluster and skipped; minions must all see one cluster.
    A valid pillar is then checked against the cluster as it is (see _live_errors).

    CLI Example: salt-run ag.validate
    """
    return _check(minion, live=True)[0]


def _addresses(autograder, timeout):
    """{node: its IPv4 and IPv6 addresses} of the cluster's nodes whose minion answered
    within `timeout` seconds (what ag.unanswered's ping would tell, in the same job)."""
    nodes = sorted(autograder["cluster"]["nodes"])
    grains = __salt__["salt.execute"](nodes, "grains.item", arg=["ipv4", "ipv6"],
                                      tgt_type="list", timeout=timeout)
    return {node: grains[node].get("ipv4", []) + grains[node].get("ipv6", [])
            for node in nodes if isinstance(grains.get(node), dict)}


def _live_errors(autograder, addresses):
    """What the pillar gets wrong about the cluster as it is: a data label moved off the node
    whose data it is without its one-shot approval, an approval already used, and a node
    address on none of that node's interfaces (`addresses`: _addresses). A node that does
    not answer is checked by ag.unanswered; a manager without this project's modules yet
    (synced later in the deploy) is checked by swarm.labels."""
    cluster = autograder["cluster"]
    errors = []
    holders = __salt__["salt.execute"](cluster["manager"], "ag_swarm.label_holders",
                                       arg=[cluster], timeout=LIVE_TIMEOUT).get(cluster["manager"])
    if isinstance(holders, dict):
        errors += (__utils__["ag_cluster.move_errors"](cluster, holders)
                   + __utils__["ag_cluster.done_approvals"](cluster, holders))
    for node, have in sorted(addresses.items()):
        wanted = cluster["nodes"][node]["address"]
        if wanted not in have:
            named = [a for a in have if a not in ("127.0.0.1", "::1")]
            errors.append(f"autograder:cluster:nodes:{node}:address: {wanted} is on no interface "
                          f"of {node} (it has {', '.join(named) or 'no address but loopback'})")
    return errors


def _cluster_pillar():
    """The validated autograder pillar; raises naming the errors when it is invalid."""
    check, autograder = _check()
    if not check["valid"]:
        raise CommandExecutionError("invalid autograder pillar:\n" + "\n".join(check["errors"]))
    return autograder


def _checked_timeout(timeout):
    """`timeout` when it is a whole number of seconds; checked before any pillar is compiled."""
    if isinstance(timeout, bool) or not isinstance(timeout, int) or timeout < 1:
        raise SaltInvocationError(f"timeout must be a whole number of seconds, "
                                  f"not {timeout!r}")
    return timeout


def _unanswered(autograder, timeout):
    nodes = sorted(autograder["cluster"]["nodes"])
    answers = __salt__["salt.execute"](nodes, "test.ping", tgt_type="list", timeout=timeout)
    return [node for node in nodes if answers.get(node) is not True]


@_as_sentence
def unanswered(timeout=10):
    """The pillar's cluster nodes whose minion does not answer a ping within `timeout` seconds,
    sorted ([] when all answer). ag.deploy stops on them before any change: a deploy that skipped
    a node would leave it without its node states, labels or services.

    CLI Example: salt-run ag.unanswered
    """
    timeout = _checked_timeout(timeout)
    return _unanswered(_cluster_pillar(), timeout)


@_as_sentence
def preflight(timeout=10):
    """ag.validate's errors and, when there are none, ag.unanswered's nodes, in one call: what
    ag.deploy and ag.retire check before any change (each runner call from their rendering
    compiles every minion's pillar again).

    CLI Example: salt-run ag.preflight
    """
    timeout = _checked_timeout(timeout)
    check, autograder = _check()
    if not check["valid"]:
        return {"errors": check["errors"], "unanswered": []}
    addresses = _addresses(autograder, timeout)  # one job tells who answers, and where
    errors = _live_errors(autograder, addresses)
    if errors:
        return {"errors": errors, "unanswered": []}
    return {"errors": [], "unanswered": sorted(set(autograder["cluster"]["nodes"]) - set(addresses))}


def _settings(autograder, section):
    """The pillar's `section` with its defaults, as map.jinja gives it to the states."""
    return __utils__["ag_schema.with_defaults"](section, autograder.get(section))


def _on_node(node, fun, *args, timeout=30):
    """`fun` on minion `node` → its return; raises with the node's own sentence when it failed
    there (an execution error, or a function its minion does not have)."""
    ret = __salt__["salt.execute"](node, fun, arg=list(args), timeout=timeout).get(node)
    if ret is None:
        raise CommandExecutionError(f"{node} did not answer {fun}; is its minion up?")
    if isinstance(ret, str) and ret.startswith(("ERROR", "Traceback", f"'{fun}'")):
        raise CommandExecutionError(f"{fun} failed on {node}: {ret.strip().splitlines()[-1]}")
    return ret


def status_table(pillar_nodes, swarm_nodes, services):
    """The text of ag.status: `pillar_nodes` {minion: labels}, `swarm_nodes` (ag_swarm.nodes),
    `services` (ag_app.stack_status)."""
    rows = [("NODE", "ROLE", "AVAILABILITY", "STATE", "LABELS")]
    same_host = __utils__["ag_cluster.same_host"]
    for node in sorted(swarm_nodes, key=lambda n: n["hostname"] or ""):
        labels = [k for k in __utils__["ag_cluster.managed_labels"](node["labels"])
                  if node["labels"][k] == "true"]
        rows.append((node["hostname"], node["role"], node["availability"], node["state"],
                     ",".join(labels) or "-"))
    joined = {m for m in pillar_nodes if any(same_host(m, n["hostname"]) for n in swarm_nodes)}
    for minion in sorted(set(pillar_nodes) - joined):
        rows.append((minion, "-", "-", "not in the swarm", ",".join(sorted(pillar_nodes[minion]))))
    rows.append(())
    rows.append(("SERVICE", "RUNNING", "CONVERGED", "NODES", "ERRORS"))
    for name, service in sorted(services.items()):
        running_on = sorted({t["node"] for t in service["tasks"]
                             if t["state"] == "running" and t["node"]})
        errors = sorted({t["error"] for t in service["tasks"] if t["error"]})
        rows.append((name, f"{service['running']}/{service['desired']}",
                     "yes" if service["converged"] else "no", ",".join(running_on) or "-",
                     "; ".join(errors)[:80] or "-"))
    widths = [max(len(str(r[i])) for r in rows if len(r) > i) for i in range(5)]
    return "\n".join("  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=False)).rstrip()
                     for r in rows)


@_as_sentence
def status():
    """The cluster as the manager sees it: every node (role, availability, state, the labels
    this project manages) and every service of the stack (running/desired tasks, whether it
    converged, where it runs, its tasks' errors). Pillar nodes not in the swarm are shown too.

    CLI Example: salt-run ag.status
    """
    autograder = _cluster_pillar()
    manager = autograder["cluster"]["manager"]
    stack = _settings(autograder, "app")["stack_name"]
    swarm_nodes = _on_node(manager, "ag_swarm.nodes")
    services = _on_node(manager, "ag_app.stack_status", stack)
    pillar_nodes = {m: spec.get("labels") or [] for m, spec in autograder["cluster"]["nodes"].items()}
    return status_table(pillar_nodes, swarm_nodes, services)


def plan_lines(orchestration):
    """The text of ag.plan from a test=True return of the ag.deploy orchestration: its check
    step (ag.check_steps' answer, each step tested on its nodes). A step that finds nothing
    to do after a step it depends on would change something says it cannot know yet (FEEDS):
    a plan makes no change, so the later steps see the files as they are."""
    (states,) = orchestration["data"].values()
    if isinstance(states, list):  # the rendering stopped (invalid pillar): its errors
        return ["the deploy would stop before any change:", *states]
    (check,) = [s for s in states.values() if s["__id__"] == "ag-deploy-check"]
    steps = (check["changes"] or {}).get("steps") or []
    if not steps:
        return [check["comment"]]
    lines, changed = [], set()
    for step in steps:
        sid = step["id"].removeprefix("ag-deploy-")
        if step["result"] is False:
            lines.append(f"{sid}: would fail: {step['comment']}")
            break
        causes = [cause for cause in FEEDS.get(sid, {}).get("from", ()) if cause in changed]
        if step["changes"]:
            changed.add(sid)
            lines += [f"{sid}: {change}" for change in step["changes"]]
        elif causes:
            changed.add(sid)  # as unknown for the steps after it
            lines.append(f"{sid}: not known yet: it depends on {', '.join(causes)} above, whose "
                         f"changes a plan does not make; the deploy may {FEEDS[sid]['may']}")
        else:
            lines.append(f"{sid}: no change")
    return lines


# what the later steps of ag.deploy work on: the steps whose changes they see only once made,
# and what the deploy may then do that a plan cannot tell
FEEDS = {
    "backup": {"from": ("checkout",),
               "may": "back up the site's data before an upgrade to the new revision"},
    "tweaks": {"from": ("checkout",),
               "may": "edit the new revision's files with the site's settings"},
    "images": {"from": ("checkout", "tweaks", "registry"),
               "may": "rebuild and push images"},
    "database": {"from": ("secrets",),
                 "may": "set the generated password in the running database"},
    "stack": {"from": ("checkout", "tweaks", "registry", "images", "secrets"),
              "may": "redeploy the stack and roll the services whose images, settings or "
                     "secrets changed"},
    "migrate": {"from": ("checkout", "tweaks", "images", "stack"),
                "may": "apply migrations"},
}


def plan():
    """What `salt-run state.orchestrate ag.deploy` would change now, step by step, from its
    test=True run (which changes nothing).

    CLI Example: salt-run ag.plan
    """
    with _quiet_salt_leak_notices():
        return "\n".join(plan_lines(__salt__["state.orchestrate"]("ag.deploy", test=True)))


# the kinds of this repository's modules the nodes need (ag/sync.sls): the check's jobs sync
# them first (state.sls sync_mods, before its loaders are made), so every node judges with
# this checkout's modules
SYNCED_KINDS = ["utils", "modules", "states"]
CHECK_TIMEOUT = 900  # seconds for a node to test every step it has (package caches on a VM)


def _state_order(item):
    return item[1].get("__run_num__", 0)


def _node_checks(nodes_sls, saltenv):
    """{node: its test=True return} of each node's SLS list, after syncing SYNCED_KINDS: one
    job per distinct list, all at once (the manager's list differs from the workers')."""
    groups = {}
    for node, mods in sorted(nodes_sls.items()):
        groups.setdefault(",".join(mods), []).append(node)
    kwarg = {"test": True, "queue": True, "sync_mods": SYNCED_KINDS, "saltenv": saltenv}
    clients = [salt.client.get_local_client(mopts=__opts__) for _ in groups]
    try:
        with concurrent.futures.ThreadPoolExecutor(len(groups) or 1) as pool:
            jobs = [pool.submit(client.cmd, nodes, "state.sls", [mods], tgt_type="list",
                                kwarg=kwarg, timeout=CHECK_TIMEOUT)
                    for client, (mods, nodes) in zip(clients, groups.items(), strict=True)]
            returns = {}
            for job in jobs:
                returns.update(job.result())
    finally:
        for client in clients:
            client.destroy()
    return returns


def _owner(sls, node_steps):
    """The index in `node_steps` ([(index, SLS list)] of one node's steps, in order) of the
    first step whose SLS holds state SLS `sls` (swarm holds swarm.labels); the node's first
    step for any other (an include of its own)."""
    return next((i for i, mods in node_steps
                 if any(sls == mod or sls.startswith(mod + ".") for mod in mods)),
                node_steps[0][0])


def _master_check(function, returns):
    """(result, [change lines], comment) of ag.deploy's master step `function` in test mode:
    the roll only when some node's check would restart its dockerd (the usual answer, nothing,
    needs no job of its own), the upgrade backup from the runner."""
    if function == "ag_master.dockerd_rolled":
        due = any(_restarts_dockerd(state)
                  for ret in returns.values() if isinstance(ret, dict)
                  for state in ret.values() if isinstance(state, dict))
        done = roll(test=True) if due else {}
    else:
        done = upgrade_backup(test=True)
    if "error" in done:
        return False, [], done["error"]
    return (None if done else True), [f"{key}: {what}" for key, what in done.items()], ""


@_as_sentence
def check_steps(steps, saltenv="base"):
    """ag.deploy's look before it changes anything: every step of `steps` ([id, SLS list or
    master state function, node(s) or 'master'], in order) tested at once, each node running
    every SLS it has in one test=True job after syncing this repository's modules. Returns
    {"steps": [{id, result, changes, comment}] (result True: nothing to do; None: would change,
    each change "NODE STATE-ID: comment"; False: would fail, comment saying why), "run": the
    ids from the first step that is not True on}. A step before that one finds the cluster as
    the step itself would leave it, since nothing before it changes: running it would change
    nothing, so the deploy runs only "run". Every state still judges the cluster as it is.

    CLI Example: salt-run ag.check_steps '[["ag-deploy-swarm", ["swarm"], ["nuc1"]]]'
    """
    steps = [(sid, mods, [target] if isinstance(target, str) and target != "master" else target)
             for sid, mods, target in steps if target]
    node_steps = {}  # node → [(step index, SLS list)]
    for index, (_, mods, target) in enumerate(steps):
        for node in ([] if target == "master" else target):
            node_steps.setdefault(node, []).append((index, mods))
    returns = _node_checks({node: list(dict.fromkeys(m for _, mods in its for m in mods))
                            for node, its in node_steps.items()}, saltenv)
    checked = [{"id": sid, "result": True, "changes": [], "comment": ""} for sid, _, _ in steps]
    for node, its in sorted(node_steps.items()):
        ret = returns.get(node)
        if not isinstance(ret, dict):
            # no answer, or its SLS did not compile together (a fresh node has no docker SDK
            # for the ag_app states yet): not known, so the deploy runs its steps from there
            why = "; ".join(ret) if isinstance(ret, list) else (ret or "no answer")
            for number, (index, _) in enumerate(its):
                _would_change(checked[index],
                              f"{node}: not known yet, its steps did not test together: "
                              f"{why}".strip() if number == 0 else
                              f"{node}: not known yet (see {checked[its[0][0]]['id']})")
            continue
        for key, state in sorted(ret.items(), key=_state_order):
            step = checked[_owner(state.get("__sls__", ""), its)]
            # Salt's own entries have no __id__ (a state function a fresh node cannot load
            # yet: no docker SDK before the node states): not known until the steps before run
            own = "__id__" not in state
            sid = state.get("__id__") or key.split("_|-")[1 if "_|-" in key else 0]
            line = f"{node} {sid}: {'not known yet: ' if own else ''}{state.get('comment', '')}"
            if state.get("result") is False and not own:
                step.update(result=False, comment="; ".join(filter(None, [step["comment"], line])))
            elif own or state.get("result") is None or state.get("changes"):
                _would_change(step, line)
    for step, (_, function, target) in zip(checked, steps, strict=True):
        if target == "master":
            step["result"], step["changes"], step["comment"] = _master_check(function, returns)
    first = next((i for i, step in enumerate(checked) if step["result"] is not True), len(steps))
    return {"steps": checked, "run": [step["id"] for step in checked[first:]]}


def _would_change(step, line):
    """`line` among the changes of a checked step, which then would change (unless it fails)."""
    step["changes"].append(line)
    if step["result"] is not False:
        step["result"] = None


# what ag.roll applies, and the states in it whose change restarts dockerd (daemon.json's watch,
# a Docker package upgrade's postinst, the limits drop-ins' try-restart); a functional test
# checks that the SLS still has each of these IDs
ROLLED_SLS = "docker,limits"
DOCKERD_RESTARTERS = ("docker-config-daemon-json-merged", "docker-package-pkg-installed",
                      "limits-systemd-docker-dropin-file-managed",
                      "limits-systemd-containerd-dropin-file-managed")
ROLL_POLL = 2  # seconds between two looks at a rolling node
READY_TIMEOUT = 180  # seconds a restarted node gets to be Ready in the swarm again


def _progress_of(runner, text):
    print(f"{_clock()} ag.{runner}: {text}", file=sys.stderr, flush=True)


def _applied(nodes, sls, test=False, pillar=None):
    """{node: [state returns]} of `sls` applied on `nodes` (test: changing nothing; `pillar`
    over theirs); raises naming the node whose run failed or did not return."""
    kwarg = {"test": test, "queue": True, **({"pillar": pillar} if pillar else {})}
    out = __salt__["salt.execute"](nodes, "state.apply", arg=[sls], tgt_type="list",
                                   kwarg=kwarg, timeout=900)
    states = {}
    for node in nodes:
        ret = out.get(node)
        if not isinstance(ret, dict):
            raise CommandExecutionError(f"{sls} on {node}: {ret or 'no answer'}")
        failed = [f"{s['__id__']}: {s['comment']}" for s in ret.values() if s["result"] is False]
        if failed:
            raise CommandExecutionError(f"{sls} on {node} failed: " + "; ".join(failed))
        states[node] = list(ret.values())
    return states


def restarts_due(nodes):
    """The nodes among `nodes` whose dockerd applying ROLLED_SLS now would restart (from a
    test=True run, which changes nothing)."""
    return sorted(node for node, states in _applied(nodes, ROLLED_SLS, test=True).items()
                  if any(_restarts_dockerd(s) for s in states))


def _restarts_dockerd(state):
    """Whether a test=True state return would restart dockerd when applied."""
    return state.get("__id__") in DOCKERD_RESTARTERS and (
        state.get("result") is None or bool(state.get("changes")))


def _swarm_members(manager, cluster_nodes):
    """{minion: swarm node} of the pillar's nodes that are Ready members of the swarm."""
    same_host = __utils__["ag_cluster.same_host"]
    members = {}
    for node in _on_node(manager, "ag_swarm.nodes"):
        minion = next((m for m in cluster_nodes if same_host(m, node["hostname"])), None)
        if minion and node["state"] == "ready":
            members[minion] = node
    return members


def _wait(what, predicate, timeout):
    """Seconds until predicate() is true (a manager that does not answer yet counts as not
    yet); raises naming `what` after `timeout`."""
    started = time.monotonic()
    while True:
        try:
            if predicate():
                return time.monotonic() - started
        except CommandExecutionError:
            pass  # the manager's own dockerd restarting
        if time.monotonic() - started > timeout:
            raise CommandExecutionError(f"{what} did not happen within {timeout} s")
        time.sleep(ROLL_POLL)


def _roll_node(manager, node, member, drain, drain_timeout):
    """Drain `node` (when `drain`), wait until its tasks ended, apply ROLLED_SLS there
    (restarting its dockerd), wait until the manager sees it Ready, give it its availability
    back. Returns what it did, as a sentence."""
    node_id, availability = member["id"], member["availability"]
    live_tasks = __utils__["ag_cluster.live_tasks"]
    done = []
    if drain:
        _on_node(manager, "ag_swarm.node_update", node_id, "drain")
        try:
            seconds = _wait(f"the tasks on {node} ending after its drain",
                            lambda: not live_tasks(_on_node(manager, "ag_app.tasks", None,
                                                               [node_id])), drain_timeout)
        except CommandExecutionError as exc:
            _on_node(manager, "ag_swarm.node_update", node_id, availability)
            raise CommandExecutionError(
                f"{exc} (autograder:swarm:drain_timeout); its dockerd was not restarted and "
                f"it is {availability} again") from exc
        done.append(f"drained in {seconds:.0f} s")
        _progress_of("roll", f"{node}: {done[-1]}")
    _applied([node], ROLLED_SLS)
    seconds = _wait(f"{node} Ready in the swarm after its dockerd restart",
                    lambda: any(n["id"] == node_id and n["state"] == "ready"
                                for n in _on_node(manager, "ag_swarm.nodes")),
                    READY_TIMEOUT)
    done.append(f"dockerd restarted, Ready again in {seconds:.0f} s")
    if drain:
        _on_node(manager, "ag_swarm.node_update", node_id, availability)
        done.append(f"{availability} again")
    _progress_of("roll", f"{node}: " + ", ".join(done[-2 if drain else -1:]))
    return ", ".join(done)


@_as_sentence
def roll(test=False):
    """The changes of the docker and limits states that restart dockerd (daemon.json, the
    open-file limit, a Docker upgrade), applied one swarm member at a time: drained (its
    tasks stop, the replicated ones start elsewhere), the states applied, Ready again, its
    availability given back; never two nodes at once, the manager last. Nodes not in the
    swarm yet are left to the node states (nothing of the stack runs there). Returns
    {node: what was done} ({} when no dockerd needs a restart); test=True tells which nodes
    would roll, changing nothing. ag.deploy runs it before its node states.

    CLI Example: salt-run ag.roll
    """
    autograder = _cluster_pillar()
    manager = autograder["cluster"]["manager"]
    # what is due first: one job, and the usual answer (nothing) needs no other
    due = restarts_due(sorted(autograder["cluster"]["nodes"]))
    if not due:
        return {}
    info = __salt__["salt.execute"](manager, "ag_swarm.swarm_info", timeout=30).get(manager)
    if not isinstance(info, dict) or info.get("state") != "active":
        # no swarm (or no Docker) yet: nothing of the stack runs, the node states restart freely
        return {}
    members = _swarm_members(manager, autograder["cluster"]["nodes"])
    due = [node for node in due if node in members]  # the others are left to the node states
    if not due:
        return {}
    order = sorted(due, key=lambda node: (node == manager, node))
    if test:
        return {node: "would be drained, its dockerd restarted, made active again"
                for node in order}
    drain_timeout = _settings(autograder, "swarm")["drain_timeout"]
    _progress_of("roll", f"restarting dockerd one node at a time: {', '.join(order)}")
    return {node: _roll_node(manager, node, members[node], len(members) > 1, drain_timeout)
            for node in order}


# --- backups ------------------------------------------------------------------------------

BACKUP_TIMEOUT = 3600  # seconds for a backup or restore (a big media_root)
UPGRADE_SUFFIX = "-before-upgrade"  # the name's end of the backup an upgrade makes first


def _backups(autograder):
    """(the node labelled database, which holds the backups, and [backup:dir, the stack's
    name, the checkout]: ag_app.backup's and ag_app.restore's first arguments)."""
    nodes = autograder["cluster"]["nodes"]
    (database,) = [n for n in sorted(nodes) if "database" in (nodes[n].get("labels") or [])]
    app = _settings(autograder, "app")
    return database, [_settings(autograder, "backup")["dir"], app["stack_name"], app["checkout"]]


@_as_sentence
def backup(name=None):
    """A backup of the site's data, named `name` (default: the time, YYYYmmdd-HHMMSS), made
    by ag_app.backup on the node labelled database (where backup:schedule also runs it):
    the database dumped live by pg_dump in the postgres task and the checkout's media_root
    and secrets dir, in backup:dir there; backup:keep newest kept. Prints where each part
    went and its size, never its content.

    CLI Example: salt-run ag.backup
    """
    return _backup(_cluster_pillar(), name)


def _backup(autograder, name=None, revision=None):
    """ag.backup's work, raising; the backup records the revision the stack runs (`revision`
    when the caller has just read it, else asked of the manager)."""
    database, (backup_dir, stack, checkout) = _backups(autograder)
    keep = _settings(autograder, "backup")["keep"]
    revision = revision or _revisions(autograder)["deployed"]
    _progress_of("backup", f"{name or 'now'}: the database, media_root and the secrets dir, "
                           f"on {database}")
    return _on_node(database, "ag_app.backup", backup_dir, keep, stack, checkout, name, revision,
                    timeout=BACKUP_TIMEOUT)


def _revisions(autograder):
    """ag_app.revisions on the manager, which reads the checkout as the stack step does:
    {deployed: the revision the stack runs, checkout: the one the checkout holds}."""
    app = _settings(autograder, "app")
    return _on_node(autograder["cluster"]["manager"], "ag_app.revisions", app["stack_name"],
                    app["checkout"])


@_as_sentence
def restore(name):
    """The backup `name` (ag.backup) brought back into the running stack, as after a deploy
    onto wiped nodes, by ag_app.restore on the node labelled database: media_root and the
    secrets dir unpacked into the checkout (the live database password stays), the dump
    loaded into the database (each object dropped and made again); then the stack deployed
    again (ag.stack), which rolls the services given the secrets, so they read the restored
    ones. Deploy first (salt-run ag.deploy), with the same app:revision as the backup's or a
    newer one (its migrations then run at the next deploy).

    CLI Example: salt-run ag.restore name=20261206-031500
    """
    _check_backup_name(name)
    return _restore(_cluster_pillar(), name)


def _check_backup_name(name):
    if not isinstance(name, str) or not name or "/" in name or name.startswith("."):
        raise SaltInvocationError(f"name must be the name of a backup in backup:dir, not {name!r}")


def _restore(autograder, name):
    """ag.restore's work, raising."""
    database, places = _backups(autograder)
    _progress_of("restore", f"{name}: media_root, the secrets dir and the database on {database}")
    restored = _on_node(database, "ag_app.restore", *places, name, timeout=BACKUP_TIMEOUT)
    manager = autograder["cluster"]["manager"]
    _progress_of("restore", f"{name}: the stack on {manager} (the services given the secrets "
                            "roll)")
    (stack_states,) = _applied([manager], "ag.stack").values()
    return {**restored, "stack": [state["comment"] for state in stack_states if state["changes"]]}


@_as_sentence
def upgrade_backup(test=False):
    """ag.deploy's backup step: when the checkout (after the checkout step) holds another
    revision than the one the stack runs, an upgrade, a backup (ag.backup) named by the time
    and '-before-upgrade', before anything of the new release is built or migrated. {} when
    the stack runs this revision, no stack was deployed by this product yet, or the checkout
    is no git repository. With `test`, what it would do.

    CLI Example: salt-run ag.upgrade_backup test=True
    """
    autograder = _cluster_pillar()
    revisions = _revisions(autograder)
    running, new = revisions["deployed"], revisions["checkout"]
    if not running or not new or new == running:
        return {}
    upgrade = f"{running[:12]} -> {new[:12]}"
    if test:
        return {"backup": f"would be made on {_backups(autograder)[0]} ({upgrade})"}
    made = _backup(autograder, time.strftime("%Y%m%d-%H%M%S") + UPGRADE_SUFFIX, running)
    return {"backup": f"{made['name']} ({upgrade}): " + ", ".join(
        f"{path} {size} bytes" for path, size in made["parts"].items())}


# what ag.rollback applies, in the deploy's order, before the stack: the checkout at the old
# revision, the site's settings in it, its images (still in the registry by their content
# tags unless the registry lost them), its secret files
ROLLBACK_STEPS = ("ag.checkout", "ag.tweaks", "ag.images", "ag.secrets")


@_as_sentence
def rollback(name=None, test=False):
    """The release the site ran before its last upgrade back in service, with the data as it
    was then: a backup of the site as it is now first ('-before-rollback': what was made since
    the upgrade stays there, not in the site); then the checkout at the revision the upgrade's
    backup recorded, that release's images (still in the registry under their content tags,
    else built again) and its stack deployed; then that backup restored (ag.restore). `name`:
    another backup to go back to (one that recorded its revision). Ends saying what to set
    autograder:app:revision to, else the next deploy upgrades again. With `test`, the plan.

    CLI Example: salt-run ag.rollback
    """
    autograder = _cluster_pillar()
    if name is not None:
        _check_backup_name(name)
    app = _settings(autograder, "app")
    if not app["git_url"]:
        raise CommandExecutionError("app:git_url is not set, so the product does not manage the "
                                    "checkout's revision: check out the old release yourself, "
                                    "deploy it and restore its backup (salt-run ag.restore)")
    database, (backup_dir, _, _) = _backups(autograder)
    made = _on_node(database, "ag_app.backups_made", backup_dir)
    if name is None:
        upgrades = [n for n, revision in made.items() if n.endswith(UPGRADE_SUFFIX) and revision]
        if not upgrades:
            raise CommandExecutionError(f"no backup made before an upgrade (*{UPGRADE_SUFFIX}) "
                                        f"in {backup_dir} on {database}: nothing to go back to")
        name = upgrades[-1]
    elif not made.get(name):
        raise CommandExecutionError(f"backup {name} in {backup_dir} on {database} "
                                    + ("records no revision" if name in made else "is not there")
                                    + "; nothing was changed")
    old, running = made[name], _revisions(autograder)["deployed"]
    if old == running:
        return {"rollback": f"the stack runs {old[:12]}, the revision of backup {name}, already"}
    manager = autograder["cluster"]["manager"]
    nfs = _settings(autograder, "nfs")["server"] or manager
    release = _on_node(nfs, "git.describe", app["checkout"], old)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    steps = [f"back up the site as it is now ({stamp}-before-rollback, on {database})",
             f"check out {release} on {nfs}, its settings, images and secret files",
             f"deploy its stack from {manager}",
             f"restore backup {name} (the data as it was before the upgrade)"]
    if test:
        return {"rollback": steps}
    keep = _settings(autograder, "backup")["keep"]
    if keep < 2:
        raise CommandExecutionError(f"backup:keep is {keep}: the backup before the rollback would "
                                    f"remove {name}; set it to 2 or more; nothing was changed")
    _progress_of("rollback", steps[0])
    _backup(autograder, f"{stamp}-before-rollback", running)
    for sls in ROLLBACK_STEPS:
        _progress_of("rollback", f"{sls} on {nfs} at {release}")
        _applied([nfs], sls, pillar={"autograder": {"app": {"revision": old}}})
    _progress_of("rollback", steps[2])
    _applied([manager], "ag.stack")
    restored = _restore(autograder, name)
    return {"rollback": f"the site runs {release} ({old[:12]}) with the data of backup {name}; "
                        f"what was made since is in backup {stamp}-before-rollback. Set "
                        f"autograder:app:revision to {release} in the pillar now: the next "
                        "deploy would upgrade again",
            **restored}


# the ag_swarm states' events (salt/reactor/swarm.sls) → the SLS that answers each on the
# manager, and the one on the cluster's other nodes (None: nothing there). A node new to the
# pillar asks for its join token: every other node's firewall lets it in first (the swarm's
# ports are the cluster's only), the manager's in the same job that publishes the token.
# a joined node: its labels, and its join token withdrawn (nobody may wait for it now)
SWARM_EVENTS = {"ag/swarm/node/joined": ("swarm.initialized,swarm.labels", None),
                "ag/swarm/token/wanted": ("firewall,swarm.initialized", "firewall")}


def swarm_event(tag, sender, manager):
    """The reactor's answer to a swarm event of minion `sender` naming `manager`: the SLS of
    SWARM_EVENTS[tag] applied on the manager, and on the other nodes where it names one
    (queued behind their running states, not waited for), only when the manager's own pillar
    names `sender` a node of its cluster and `manager` its manager. An event from any other
    minion starts nothing.

    CLI Example: salt-run ag.swarm_event ag/swarm/node/joined nuc4 nuc1
    """
    if tag not in SWARM_EVENTS:
        return {"error": f"{tag} is not a swarm event of this project", "retcode": 1}
    mods, others_mods = SWARM_EVENTS[tag]
    check, autograder = _check(manager)
    if not check["valid"]:
        return {"error": f"swarm event {tag} of {sender} ignored: " + "; ".join(check["errors"]),
                "retcode": 1}
    cluster = autograder["cluster"]
    if manager != cluster["manager"] or sender not in cluster["nodes"]:
        return {"error": f"swarm event {tag} of {sender} ignored: the pillar of {manager} does "
                         f"not name {sender} a node of a cluster {manager} manages",
                "retcode": 1}
    client = salt.client.get_local_client(mopts=__opts__)
    others = sorted(set(cluster["nodes"]) - {manager, sender})
    answered = []
    if others_mods and others:
        jid = client.cmd_async(others, "state.sls", [others_mods], tgt_type="list",
                               kwarg={"queue": True})
        answered.append(f"{others_mods} on {', '.join(others)} (job {jid})")
    jid = client.cmd_async(manager, "state.sls", [mods], kwarg={"queue": True})
    answered.append(f"{mods} on {manager} (job {jid})")
    return f"for {sender}'s {tag}: " + "; ".join(answered)


def _clock():
    return time.strftime("%H:%M:%S")


def _job_outcome(ret, test=False):
    """'N changed, M failed' of a state job's return from one minion ('N would change' for a
    `test` job), or its error text."""
    if not isinstance(ret, dict):
        return f"error: {str(ret)[:200]}"
    states = [s for s in ret.values() if isinstance(s, dict)]
    failed = sum(s.get("result") is False for s in states)
    changed = sum(bool(s.get("changes")) for s in states)
    return (f"{changed} {'would change' if test else 'changed'}"
            + (f", {failed} FAILED" if failed else ""))


FOLLOWED_FUNCTIONS = ("state.sls", "state.apply")


def _follow_jobs(stop, out):
    """Print, as the master sees them, each state job as it starts (on which minions)
    and as each minion returns it (after how long, what it changed), until `stop` is set."""
    started = {}
    with salt.utils.event.get_event("master", __opts__["sock_dir"], opts=__opts__,
                                    listen=True) as bus:
        while not stop.is_set():
            event = bus.get_event(wait=1, full=True)
            if not event or not event["tag"].startswith("salt/job/"):
                continue
            data, parts = event["data"], event["tag"].split("/")
            if parts[3] == "new" and data.get("fun") in FOLLOWED_FUNCTIONS:
                args = data.get("arg") or []
                what = " ".join(str(a) for a in args if not isinstance(a, dict)) or data["fun"]
                test = any(isinstance(a, dict) and a.get("test") for a in args)
                if test:
                    what = f"check (test=True) of {what}"
                started[data["jid"]] = (what, time.monotonic(), test)
                minions = ", ".join(sorted(data.get("minions") or []))
                print(f"{_clock()} {what}: started on {minions}", file=out, flush=True)
            elif parts[3] == "ret" and data.get("jid") in started:
                what, since, test = started[data["jid"]]
                outcome = _job_outcome(data.get("return"), test)
                print(f"{_clock()} {what}: {data.get('id')} done in "
                      f"{time.monotonic() - since:.0f}s ({outcome})", file=out, flush=True)



def _salt_leak_notice(record) -> bool:
    """Salt 3008's notice, when it collects a client its orchestrate left open, that the client
    was not closed: its own bookkeeping, not the deploy's."""
    return record.levelno == logging.WARNING and str(record.msg).startswith("unclosed ") \
        and "``destroy()``" in str(record.msg)


@contextlib.contextmanager
def _quiet_salt_leak_notices():
    """Keep Salt's leak notices out of what the sysadmin reads while an orchestration runs."""
    def keep(record):
        return not _salt_leak_notice(record)

    handlers = list(logging.root.handlers)
    for handler in handlers:
        handler.addFilter(keep)
    try:
        yield
    finally:
        for handler in handlers:
            handler.removeFilter(keep)


def deploy(test=False):
    """`salt-run state.orchestrate ag.deploy` that shows how far it got while it runs: each
    step as it starts on its nodes and as each node ends it (duration, changes, failures), on
    stderr, so a 25-minute first deploy can be followed; returns the orchestration's return.

    CLI Example: salt-run ag.deploy
    """
    stop = threading.Event()
    follower = threading.Thread(target=_follow_jobs, args=(stop, sys.stderr), daemon=True)
    follower.start()
    print(f"{_clock()} ag.deploy: checking the pillar, that every node's minion answers, then "
          "what each step would change (the steps run from the first that would)",
          file=sys.stderr, flush=True)
    try:
        with _quiet_salt_leak_notices():
            return __salt__["state.orchestrate"]("ag.deploy", test=test)
    finally:
        stop.set()
        follower.join(timeout=5)
