"""The bed's pillar: the cluster of the nodes that are up, in the schema of pillar.example."""

import resource

import yaml

from . import config

# The guide's labels spread over a 3-node bed: nuc1 carries the singletons and the web side,
# the others grade. Nodes past the third grade with the tiny workers.
BED_LABELS = {
    1: ["registry", "database", "cache", "rabbitmq_broker", "custom_image_registry",
        "webserver", "django_app", "small_tasks"],
    2: ["grader", "fast_grader", "image_builder"],
    3: ["deferred_grader", "rerun_grader"],
}
EXTRA_NODE_LABELS = ["tiny_grader", "tiny_fast_grader"]
# Tier 2's guests have one emulated CPU each. A manager starting nuc1's share of the whole
# stack (eleven containers) stopped answering (guest load 20, `docker service ls`: context
# deadline exceeded), so with a third guest the manager keeps the registries and the web side
# and the data services and the app go to the other two.
VM_SPREAD_LABELS = {
    1: ["registry", "custom_image_registry", "webserver"],
    2: ["database", "cache", "rabbitmq_broker", "grader", "fast_grader", "image_builder"],
    3: ["django_app", "small_tasks", "deferred_grader", "rerun_grader"],
}


def manager(indexes) -> str:
    """The bed's swarm manager, the first node; it also serves NFS (nfs:server defaults to it)."""
    return config.node_name(min(indexes))


def bed_pillar(tier: str, indexes) -> dict:
    labels = VM_SPREAD_LABELS if tier == "vm" and len(indexes) >= 3 else BED_LABELS
    nodes = {
        config.node_name(i): {
            "address": config.node_addr(tier, i),
            "labels": labels.get(i, EXTRA_NODE_LABELS),
        }
        for i in indexes
    }
    pillar = {
        "autograder": {
            "cluster": {"manager": manager(indexes), "nodes": nodes},
            # tier 1 shares the host's packages and has no NFS; tier 2 installs for real
            "docker": {"source": "external" if tier == "netns" else "distro"},
            "nfs": {"managed": tier == "vm"},
            "swarm": {
                "default_addr_pool": [config.SWARM_ADDR_POOL],
                "default_addr_pool_mask_length": 24,
            },
        }
    }
    if tier == "netns":
        # this sandbox withholds CAP_SYS_RESOURCE: no process on tier 1 (runc included) may
        # raise its hard nofile above the host's, so containers get exactly that; tier 2
        # guests keep the pillar default, 1000000
        pillar["autograder"]["limits"] = {"nofile": resource.getrlimit(resource.RLIMIT_NOFILE)[1]}
        # no IPVS: the registry publishes on its node only (bed/mesh.py forwards the others),
        # and the stack gets the bed override (tests/standin/docker-compose.bed.yml, which
        # the bed copies into the checkout)
        pillar["autograder"]["registry"] = {"publish_mode": "host"}
        pillar["autograder"]["app"] = {"extra_compose_files": ["docker-compose.bed.yml"]}
    else:
        # a site's guests reach Docker Hub and GitHub; these reach their stand-ins on the host
        from . import upstream

        pillar["autograder"]["docker"]["daemon"] = upstream.docker_daemon_keys()
        pillar["autograder"]["app"] = {"git_url": upstream.GIT_URL}
        # an emulated manager starting the stack missed its own 5 s heartbeats: the swarm
        # marked it Down and restarted every task on it (registry and postgres among them)
        pillar["autograder"]["swarm"]["dispatcher_heartbeat"] = 30
        # where the kernel is a site's (IPsec), the overlay as a careful site runs it
        pillar["autograder"]["swarm"].setdefault("network", {})["encrypted"] = True
    return pillar


def write(tier: str, indexes) -> None:
    """Write the bed pillar for the nodes that are up. `up` always rewrites it, so a pillar a
    test edited (and did not restore) or an older bed left never outlives the next `up`."""
    config.PILLAR_DIR.mkdir(parents=True, exist_ok=True)
    (config.PILLAR_DIR / "top.sls").write_text("base:\n  '*':\n    - bed\n")
    (config.PILLAR_DIR / "bed.sls").write_text(
        "# written by ./testbed for the nodes it brought up\n"
        + yaml.safe_dump(bed_pillar(tier, indexes), sort_keys=False)
    )


def web_address() -> str:
    """The address of the node the written pillar labels webserver (nginx's 443 is there)."""
    nodes = yaml.safe_load((config.PILLAR_DIR / "bed.sls").read_text())["autograder"]["cluster"]["nodes"]
    return next(spec["address"] for spec in nodes.values() if "webserver" in spec["labels"])
