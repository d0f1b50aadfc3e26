"""Tier 2 (issue 6): `salt-run state.orchestrate ag.deploy` from fresh Debian 12 guests (no
Docker, no swarm, no checkout) to the stand-in autograder running where the labels say,
migrated and bootstrapped. On the way: Docker from the distro, NFS, the swarm with the ingress
mesh (IPVS), the checkout cloned from git, images pulled through the site's registry mirror
(bed/upstream.py) and built on the NFS node. Re-runs, test=True and the rest of the deploy's
behaviour are tested on tier 1 (test_deploy.py); the firewall and the web ports on the mesh in
test_swarm_vm.py, which start from guests without the stack: this module runs in a session of
its own (tests/conftest.py), whose guests are not kept for the next."""

import json

import pytest
from agdeploy import (
    MANAGER,
    assert_migrated_and_bootstrapped_once,
    minion_changes,
    placement_errors,
    services,
    sh,
    swarm_labels,
)

pytestmark = [pytest.mark.vm, pytest.mark.vm_stack]

NODE_STATES = {"docker-package-pkg-installed", "docker-config-daemon-json-merged",
               "limits-logins-nofile-file-managed"}


def skip_unless_fresh(bed):
    if not bed.fresh:
        pytest.skip("not fresh guests but the last passing session's (`AG_BED_ID=1 ./testbed "
                    "down --wipe` for fresh ones)")


def test_deploy_from_fresh_guests_runs_every_service_where_its_label_is(vm_deployed):
    code, steps, output = vm_deployed.first
    assert code == 0, output
    assert all(v["result"] is True for v in steps.values()), output
    assert placement_errors(vm_deployed, vm_deployed.pillar) == []
    skip_unless_fresh(vm_deployed)
    node_states = {}
    for node, state_id in minion_changes(steps["ag-deploy-node-states"]):
        node_states.setdefault(node, set()).add(state_id)
    for node in vm_deployed.nodes:
        nfs = "nfs-server-exports-file-managed" if node == MANAGER else "nfs-client-checkout-mounted"
        assert NODE_STATES | {nfs} <= node_states.get(node, set()), (node, output)
    assert "swarm-initialized" in {s for _, s in minion_changes(steps["ag-deploy-swarm"])}
    assert (MANAGER, "ag-checkout") in minion_changes(steps["ag-deploy-checkout"])


def test_the_swarm_has_the_network_and_every_pillar_label(vm_deployed):
    """The swarm step formed it; the reactor labelled the guests as they joined."""
    assert swarm_labels(vm_deployed) == {node: ("ready", sorted(spec["labels"])) for node, spec in
                     vm_deployed.pillar["autograder"]["cluster"]["nodes"].items()}
    network = json.loads(sh(vm_deployed, MANAGER, "docker network inspect ag-swarm-network"))[0]
    assert network["Driver"] == "overlay" and network["Scope"] == "swarm"


def test_migrations_and_bootstrap_ran_on_the_django_node(vm_deployed):
    skip_unless_fresh(vm_deployed)
    _, steps, output = vm_deployed.first
    assert_migrated_and_bootstrapped_once(vm_deployed, steps, output)


def test_services_run_on_every_node_from_pulled_and_built_images(vm_deployed):
    """Every guest pulled built images from 127.0.0.1:5000, which only the registry's node
    serves itself: the ingress routing mesh (IPVS) carried the others' pulls."""
    found = services(vm_deployed)
    assert {node for _, nodes in found.values() for node in nodes} == set(vm_deployed.nodes), found
