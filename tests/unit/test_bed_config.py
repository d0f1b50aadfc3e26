"""The bed's addressing keeps to 198.18.0.0/15 and its pillar matches the documented schema."""

import copy
import ipaddress

import pytest
import yaml

from bed import config, pillar
from bench import labels
from tests.extensions import load

ag_cluster = load("_utils/ag_cluster.py", "ag_cluster")

BED_RANGE = ipaddress.ip_network("198.18.0.0/15")


@pytest.mark.parametrize("tier", ["netns", "vm"])
def test_every_bed_address_is_in_the_bed_range(tier):
    addrs = [config.node_addr(tier, i) for i in range(1, config.MAX_NODES + 1)]
    addrs += [config.BRIDGE_ADDR]
    nets = [config.docker_bip(i) for i in range(1, config.MAX_NODES + 1)]
    nets += [config.DOCKER_LOCAL_POOL, config.SWARM_ADDR_POOL]
    assert all(ipaddress.ip_address(a) in BED_RANGE for a in addrs)
    assert all(ipaddress.ip_network(n, strict=False).subnet_of(BED_RANGE) for n in nets)
    assert len(set(addrs)) == len(addrs)


def test_node_names_round_trip():
    assert [config.node_index(config.node_name(i)) for i in (1, 4, 9)] == [1, 4, 9]
    with pytest.raises(ValueError, match="not a test-bed node name"):
        config.node_index("node1")


def test_bed_pillar_uses_only_documented_top_level_keys():
    example = yaml.safe_load((config.REPO / "pillar/pillar.example").read_text())["autograder"]
    for tier in ("netns", "vm"):
        bed = pillar.bed_pillar(tier, [1, 2, 3])["autograder"]
        assert set(bed) <= set(example), set(bed) - set(example)
        assert bed["cluster"]["manager"] == "nuc1"
        assert [n["address"] for n in bed["cluster"]["nodes"].values()] == [
            config.node_addr(tier, i) for i in (1, 2, 3)]


def test_fourth_node_gets_labels_too():
    nodes = pillar.bed_pillar("netns", [1, 2, 3, 4])["autograder"]["cluster"]["nodes"]
    assert nodes["nuc4"]["labels"]


@pytest.mark.parametrize("tier,indexes", [("netns", [1, 2, 3]), ("vm", [1, 2]), ("vm", [1, 2, 3])])
def test_each_bed_s_labels_pass_the_product_s_validation(tier, indexes):
    """Tier 2 with a third guest spreads the labels differently: both spreads are valid."""
    bed = pillar.bed_pillar(tier, indexes)["autograder"]
    assert ag_cluster.validate(bed) == []


@pytest.mark.parametrize("count", [3, 6, 12])
def test_the_label_bench_s_layouts_are_valid_and_move_every_worker_s_labels(count):
    """bench/labels.py moves every label of every worker, between two pillars the product
    accepts, on the bed's largest tier 1 too."""
    assert count <= config.MAX_NODES
    bed_a = pillar.bed_pillar("netns", range(1, count + 1))
    bed_b = copy.deepcopy(bed_a)
    before, after = labels.laid_out(bed_a, "A"), labels.laid_out(bed_b, "B")
    assert ag_cluster.validate(bed_a["autograder"]) == ag_cluster.validate(bed_b["autograder"]) == []
    workers = [n for n in before if n != "nuc1"]
    assert len(workers) == count - 1 and before["nuc1"] == after["nuc1"]
    assert all(not set(before[n]) & set(after[n]) for n in workers), (before, after)
