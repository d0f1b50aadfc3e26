"""ag.deploy's steps that are states of the master itself, each the test-mode-aware face of
one runner of _runners/ag.py (which salt-run also runs alone).

``ag_master.dockerd_rolled``
    The node states whose change restarts dockerd applied one swarm member at a time, each
    drained first (``ag.roll``).
``ag_master.checked``
    What the orchestration's check (``ag.check_steps``, made as it rendered) found: which
    steps need nothing and from which step on the deploy runs.
``ag_master.backed_up_before_upgrade``
    A backup of the site's data when the checkout holds another revision than the stack runs,
    before anything of the new release is built or migrated (``ag.upgrade_backup``).

Nothing to do: result True and no changes; test mode: result None and what would be done;
else what was done. The runner's error is the state's comment.
"""


def __virtual__():
    if "saltutil.runner" not in __salt__:
        return False, "ag_master runs in an orchestration on the master (saltutil.runner)"
    return "ag_master"


def _runner_step(name, runner, nothing, would, did):
    """The state of `runner`'s answer: {} → `nothing`; else its {key: what} as changes."""
    ret = {"name": name, "result": True, "changes": {}, "comment": ""}
    test = bool(__opts__.get("test"))
    done = __salt__["saltutil.runner"](runner, test=test)
    if isinstance(done, dict) and "error" in done:
        ret.update(result=False, comment=done["error"])
    elif not isinstance(done, dict):
        ret.update(result=False, comment=f"{runner}: {done}")
    elif not done:
        ret["comment"] = nothing
    else:
        ret.update(changes=done, result=None if test else True,
                   comment=(would if test else did) + ", ".join(done))
    return ret


def dockerd_rolled(name):
    return _runner_step(name, "ag.roll", "no node's dockerd needs a restart",
                        "would restart dockerd one node at a time: ",
                        "restarted dockerd one node at a time: ")


def backed_up_before_upgrade(name):
    return _runner_step(name, "ag.upgrade_backup", "no upgrade: the stack runs this revision",
                        "would back up the site's data before the upgrade: ",
                        "backed up the site's data before the upgrade: ")


def checked(name, steps):
    """`steps`: ag.check_steps' answer for each step ({id, result, changes, comment}). Nothing
    to change in any: True and no changes. Test mode: None (False when a step would fail)
    with every step's answer as the changes (ag.plan's text); else True, its comment naming
    the steps that need nothing and the step the deploy runs from (this state changes
    nothing itself)."""
    ret = {"name": name, "result": True, "changes": {}, "comment": ""}
    names = [step["id"].rpartition("-deploy-")[2] for step in steps]
    first = next((i for i, step in enumerate(steps) if step["result"] is not True), len(steps))
    if first == len(steps):
        ret["comment"] = f"every step checked, nothing to change: {', '.join(names)}"
        return ret
    calm = f"nothing to change in {', '.join(names[:first])}; " if first else ""
    if __opts__.get("test"):
        failing = any(step["result"] is False for step in steps)
        ret.update(result=False if failing else None, changes={"steps": steps},
                   comment=f"{calm}the deploy would run from {names[first]} on")
    else:
        ret["comment"] = f"{calm}running from {names[first]} on"
    return ret
