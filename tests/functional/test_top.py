"""salt/top.sls gives the node states and the swarm to the cluster's nodes only: a shared
master's other minions get no Docker from this tree."""

import pytest

CLUSTER = {"manager": "nuc1.eecs.example.edu",
           "nodes": {"nuc1.eecs.example.edu": {"address": "198.18.0.11"},
                     "nuc2.eecs.example.edu": {"address": "198.18.0.12"}}}
NODE_STATES = ["docker", "limits", "nfs", "firewall", "ag.backup", "swarm"]


@pytest.mark.parametrize(("minion", "pillar", "states"), [
    ("nuc2.eecs.example.edu", {"cluster": CLUSTER}, NODE_STATES),
    ("mail.eecs.example.edu", {"cluster": CLUSTER}, []),
    ("mail.eecs.example.edu", {}, []),
])
def test_only_the_cluster_nodes_get_states(local_minion, minion, pillar, states):
    top = local_minion(pillar, minion_id=minion).call("state.show_top")
    assert top.get("base", []) == states
