"""Sites name minions by FQDN (nuc1.eecs.example.edu) while the swarm knows each node by its
short hostname (nuc1): every match of pillar nodes to swarm nodes by hostname takes both."""

import copy

import pytest

from tests.extensions import load
from tests.unit.test_ag_runner import runner
from tests.unit.test_ag_swarm_states import (
    CLUSTER,
    fake,  # noqa: F401  (the fixture)
    labelled,
    states,
)

ag_cluster = load("_utils/ag_cluster.py", "ag_cluster")


@pytest.mark.parametrize(("minion", "hostname", "same"), [
    ("nuc1", "nuc1", True),
    ("nuc1.eecs.example.edu", "nuc1", True),
    ("nuc1", "nuc1.eecs.example.edu", True),
    ("NUC1.eecs.example.edu", "nuc1", True),
    ("nuc1.eecs.example.edu", "nuc1.eecs.example.edu", True),
    ("nuc1.eecs.example.edu", "nuc1.cs.example.edu", False),
    ("nuc1.eecs.example.edu", "nuc11", False),
    ("nuc11.eecs.example.edu", "nuc1", False),
    ("nuc1", None, False),
])
def test_same_host(minion, hostname, same):
    assert ag_cluster.same_host(minion, hostname) is same


def test_status_lists_a_node_with_an_fqdn_minion_id_once():
    swarm = [{"hostname": "nuc1", "role": "manager", "availability": "active", "state": "ready",
              "labels": {"database": "true"}}]
    pillar = {"nuc1.eecs.example.edu": ["database"], "nuc2.eecs.example.edu": ["grader"]}
    lines = runner.status_table(pillar, swarm, {}).splitlines()
    nodes = [line.split()[0] for line in lines[1:lines.index("")]]
    assert nodes == ["nuc1", "nuc2.eecs.example.edu"]
    assert lines[2].split()[1:] == ["-", "-", "not", "in", "the", "swarm", "grader"]


def test_a_pillar_node_by_fqdn_missing_from_the_mine_is_never_drained(fake):  # noqa: F811
    labelled(fake)
    cluster = copy.deepcopy(CLUSTER)
    cluster["nodes"]["nuc2.eecs.example.edu"] = cluster["nodes"].pop("nuc2")
    del fake.mine["nuc2"]  # the minion is nuc2.eecs.example.edu now and has not published yet
    fake.nodes["id-nuc2"]["addr"] = "198.18.9.99"  # and its address tells nothing either
    ret = states(fake).labels_reconciled("c", cluster)
    assert ret["result"] is True and ret["changes"] == {}
    assert fake.nodes["id-nuc2"]["availability"] == "active"
    assert "it looks like nuc2.eecs.example.edu" in ret["comment"]
