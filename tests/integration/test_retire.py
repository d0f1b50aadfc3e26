"""Tier 1: `salt-run state.orchestrate ag.retire` after a deploy (issue 19.3). The tests run in
file order on one deploy: test=True removes nothing; one node retired loses its pillar labels,
its firewall and its limits file while the others keep theirs; the manager alone is refused;
the whole cluster retired leaves nothing of ours (the stack, the registry service, the node
labels, the raw tables' chain and jumps, the firewall script, the limits file) but the
volumes; a second retire changes nothing; a deploy after brings it all back."""

import pytest
from agdeploy import MANAGER, STACK, changed_steps, deploy, placement_errors, sh, swarm_labels, teardown

CHAIN = "AG-CLUSTER-ONLY"
FILES = ("/usr/local/sbin/ag-cluster-only-firewall",
         "/etc/security/limits.d/90-autograder-nofile.conf")
REGISTRY_VOLUME = "ag-registry"


def retire(bed, *args):
    return deploy(bed, *args, orchestration="ag.retire")


def ours(bed, node):
    """What the node states left on `node`: their files, and the raw tables' rules of the
    cluster-only chain (its -N, its rules, the PREROUTING jumps), IPv4's then IPv6's."""
    found = [path for path in FILES if bed.exec(node, "test", "-e", path, check=False).returncode == 0]
    return found + [f"{family} {rule}" for family in ("iptables", "ip6tables")
                    for rule in sh(bed, node, f"{family} -t raw -S").splitlines() if CHAIN in rule]


def cluster(bed):
    """What the application and the swarm hold of ours: services, stacks, the stack's
    networks, and each node's labels."""
    return {
        "services": sh(bed, MANAGER, "docker service ls --format '{{.Name}}'").split(),
        "stacks": sh(bed, MANAGER, "docker stack ls --format '{{.Name}}'").split(),
        "networks": sh(bed, MANAGER, "docker network ls -q --filter "
                                     f"label=com.docker.stack.namespace={STACK}").split(),
        "labels": {host: labels for host, (_, labels) in swarm_labels(bed).items()},
    }


def pillar_labels(bed):
    return {node: sorted(spec["labels"])
            for node, spec in bed.read_pillar()["autograder"]["cluster"]["nodes"].items()}


def volumes(bed):
    return {volume for node in bed.nodes for volume in sh(bed, node, "docker volume ls -q").split()}


@pytest.fixture(scope="module")
def bed(netns_bed):
    """The bed deployed from nodes without a swarm; after the tests back to those nodes."""
    teardown(netns_bed)
    code, _, output = deploy(netns_bed)
    assert code == 0, output
    yield netns_bed
    teardown(netns_bed)


def test_test_mode_removes_nothing(bed):
    before = ({node: ours(bed, node) for node in bed.nodes}, cluster(bed))
    assert all(before[0].values()) and f"{STACK}_django" in before[1]["services"]
    code, steps, output = retire(bed, "test=True")
    assert code == 0, output
    assert all(v["result"] is not False for v in steps.values()), output
    assert "stack ag-stack would be removed" in output
    assert ({node: ours(bed, node) for node in bed.nodes}, cluster(bed)) == before


def test_one_node_retired_loses_its_labels_and_node_states_only(bed):
    before = cluster(bed)
    code, steps, output = retire(bed, 'pillar={"ag_retire": ["nuc3"]}')
    assert code == 0, output
    assert set(steps) == {"ag-retire-sync", "ag-retire-labels", "ag-retire-nodes"}, output
    assert ours(bed, "nuc3") == []
    assert ours(bed, "nuc1") and ours(bed, "nuc2")
    after = cluster(bed)
    assert after["labels"] == {**pillar_labels(bed), "nuc3": []}
    assert after["services"] == before["services"] and after["stacks"] == [STACK]


def test_the_manager_alone_is_refused(bed):
    before = cluster(bed)
    code, steps, output = retire(bed, 'pillar={"ag_retire": ["nuc1"]}')
    assert code != 0 and steps == {}, output
    assert "nuc1 holds the cluster" in output
    assert cluster(bed) == before and ours(bed, "nuc1")


def test_the_cluster_retired_leaves_nothing_of_ours_but_the_volumes(bed):
    # what nginx's TLS step keeps on a webserver node: nuc2 as if it had been one
    sh(bed, "nuc2", f"mkdir -p /var/lib/ag-deploy && echo 0 > /var/lib/ag-deploy/{STACK}_nginx.tls.sha256")
    code, steps, output = retire(bed)
    assert code == 0, output
    assert all(v["result"] is True for v in steps.values()), output
    for node in bed.nodes:
        assert ours(bed, node) == [], node
        assert not sh(bed, node, "ls -A /var/lib/ag-deploy 2>/dev/null || true"), node
    assert cluster(bed) == {"services": [], "stacks": [], "networks": [],
                            "labels": {node: [] for node in bed.nodes}}
    assert REGISTRY_VOLUME in volumes(bed)


def test_a_second_retire_changes_nothing(bed):
    code, steps, output = retire(bed)
    assert code == 0, output
    assert changed_steps(steps) == set(), output


def test_a_deploy_after_brings_it_all_back(bed):
    code, steps, output = deploy(bed)
    assert code == 0, output
    for node in bed.nodes:
        # the files; IPv4: the chain's -N, a rule a node, its DROP, the TCP and UDP jumps;
        # IPv6 the same without a rule a node (the nodes' addresses are IPv4)
        assert len(ours(bed, node)) == len(FILES) + (4 + len(bed.nodes)) + 4, ours(bed, node)
    assert cluster(bed)["labels"] == pillar_labels(bed)
    assert placement_errors(bed, bed.read_pillar()) == []
    # the registry kept its images: nothing was built again
    assert "ag-deploy-images" not in changed_steps(steps), output
