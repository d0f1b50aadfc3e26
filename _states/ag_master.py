"""ag.deploy's steps that are states of the master itself, each the test-mode-aware face of
one runner of _runners/ag.py (which salt-run also runs alone).

``ag_master.dockerd_rolled``
    The node states whose change restarts dockerd applied one swarm member at a time, each
    drained first (``ag.roll``).
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
