"""This minion's ``autograder`` pillar checked against the project's cluster rules
(_utils/ag_cluster.py). SLS files call it before rendering any state (salt/swarm/map.jinja).
"""

__virtualname__ = "ag_pillar"


def __virtual__():
    if "ag_cluster.validate" not in __utils__:
        return False, "ag_pillar needs _utils/ag_cluster.py: run saltutil.sync_all on this minion"
    return __virtualname__


def validate():
    """Every error of this minion's autograder pillar: {valid, errors}.

    CLI Example: salt '*' ag_pillar.validate
    """
    errors = __utils__["ag_cluster.validate"](__pillar__.get("autograder"))
    return {"valid": not errors, "errors": errors}
