"""The autograder cluster, from the master.

``salt-run ag.validate``: the pillar every accepted minion gets, checked against the cluster
rules (_utils/ag_cluster.py) before anything is applied; non-zero exit when invalid.
"""

import salt.key

__virtualname__ = "ag"


def __virtual__():
    return __virtualname__


def validate(minion=None):
    """Check the autograder pillar of `minion` (default: of every accepted minion): the rules
    of pillar.example, and that every node is an accepted minion. Minions whose pillar has no
    autograder key are outside the cluster and skipped; minions must all see one cluster.

    CLI Example: salt-run ag.validate
    """
    accepted = salt.key.get_key(__opts__).list_status("accepted")["minions"]
    views = {}
    for target in [minion] if minion else accepted:
        pillar = __salt__["pillar.show_pillar"](target)
        if "autograder" in pillar:
            views.setdefault(repr(pillar["autograder"]), (pillar["autograder"], []))[1].append(target)
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
    checked = sorted(m for _, ms in views.values() for m in ms)
    return {"valid": not errors, "errors": errors, "minions": checked, "retcode": int(bool(errors))}
