"""ag.deploy's roll step, a state the orchestration runs on the master.

``ag_roll.dockerd_rolled``
    The node states whose change restarts dockerd applied one swarm member at a time, each
    drained first, by the ag.roll runner (which ``salt-run ag.roll`` runs alone). Nothing to
    roll: result True and no changes; test mode: result None and the nodes that would roll;
    else the nodes rolled and what was done on each.
"""


def __virtual__():
    if "saltutil.runner" not in __salt__:
        return False, "ag_roll runs in an orchestration on the master (saltutil.runner)"
    return "ag_roll"


def dockerd_rolled(name):
    ret = {"name": name, "result": True, "changes": {}, "comment": ""}
    test = bool(__opts__.get("test"))
    rolled = __salt__["saltutil.runner"]("ag.roll", test=test)
    if isinstance(rolled, dict) and "error" in rolled:
        ret.update(result=False, comment=rolled["error"])
    elif not isinstance(rolled, dict):
        ret.update(result=False, comment=f"ag.roll: {rolled}")
    elif not rolled:
        ret["comment"] = "no node's dockerd needs a restart"
    else:
        ret.update(changes=rolled, result=None if test else True,
                   comment=("would restart dockerd one node at a time: " if test
                            else "restarted dockerd one node at a time: ") + ", ".join(rolled))
    return ret
