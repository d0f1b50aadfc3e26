"""salt/swarm compiled by Salt's real loaders (salt-call --local state.show_sls): which node
gets which swarm state with which pillar values, and a bad pillar stops the rendering."""

import copy

import pytest

PILLAR = {
    "cluster": {
        "manager": "nuc1",
        "nodes": {
            "nuc1": {"address": "198.18.0.11",
                     "labels": ["registry", "database", "cache", "rabbitmq_broker",
                                "custom_image_registry", "webserver", "django_app", "small_tasks"]},
            "nuc2": {"address": "198.18.0.12", "labels": ["grader"]},
            "nuc3": {"address": "198.18.0.13", "labels": ["deferred_grader"], "role": "manager"},
        },
    },
    "swarm": {"default_addr_pool": ["198.19.64.0/18"], "default_addr_pool_mask_length": 26,
              "network": {"attachable": True}},
}


def compiled(local_minion, minion, pillar=PILLAR):
    """{state id: {arg: value, "__fun__": module.function}}, with the requisites an
    `extend` adds (show_sls leaves them apart, the run joins them), or the render errors."""
    ret = local_minion(pillar, minion_id=minion).call("state.show_sls", "swarm")
    if isinstance(ret, list):
        return ret
    extended = {sid: body for ext in ret.pop("__extend__", []) for sid, body in ext.items()}
    states = {}
    for sid, body in ret.items():
        if not body["__sls__"].startswith("swarm"):
            continue  # the docker states swarm members include
        mod = next(k for k in body if not k.startswith("__"))
        args = {"__fun__": mod + "." + next(f for f in body[mod] if isinstance(f, str))}
        for item in body[mod] + extended.get(sid, {}).get(mod, []):
            for key, value in (item.items() if isinstance(item, dict) else ()):
                args[key] = args.get(key, []) + value if key == "require" else value
        states[sid] = args
    return states


def test_the_manager_initializes_creates_the_network_and_labels(local_minion):
    states = compiled(local_minion, "nuc1")
    assert sorted(states) == ["swarm-initialized", "swarm-labels-reconciled",
                              "swarm-network-present"]
    init = states["swarm-initialized"]
    assert init["require"] == [{"sls": "docker"}]
    assert init["advertise_addr"] == "198.18.0.11"
    assert init["default_addr_pool"] == ["198.19.64.0/18"]
    assert init["default_addr_pool_mask_length"] == 26
    assert init["members"] == {"nuc2": "worker", "nuc3": "manager"}
    net = states["swarm-network-present"]
    assert (net["name"], net["attachable"], net["driver"]) == ("ag-swarm-network", True, "overlay")
    labels = states["swarm-labels-reconciled"]["cluster"]
    assert labels["nodes"]["nuc2"] == {"address": "198.18.0.12", "labels": ["grader"],
                                       "role": "worker", "availability": "active"}
    assert labels["nodes"]["nuc1"]["role"] == "manager"
    assert states["swarm-labels-reconciled"]["drain_timeout"] == 300
    assert states["swarm-labels-reconciled"]["require"] == [{"sls": "docker.sdk"},
                                                            {"ag_swarm": "swarm-initialized"}]


def test_a_member_joins_the_manager_with_its_role(local_minion):
    states = compiled(local_minion, "nuc3")
    assert list(states) == ["swarm-joined"]
    joined = states["swarm-joined"]
    assert joined["__fun__"] == "ag_swarm.joined"
    assert (joined["manager"], joined["manager_addr"], joined["advertise_addr"], joined["role"]) \
        == ("nuc1", "198.18.0.11", "198.18.0.13", "manager")
    assert joined["retry"]["attempts"] > 1


def test_a_minion_outside_the_cluster_gets_no_swarm_state(local_minion):
    assert compiled(local_minion, "printer") == {}


@pytest.mark.parametrize("edit,words", [
    (lambda p: p["cluster"]["nodes"]["nuc2"]["labels"].append("tiny_grader"),
     "node nuc2: labels grader and tiny_grader"),
    (lambda p: p["cluster"]["nodes"]["nuc3"]["labels"].append("cache"),
     "label cache is on nodes nuc1 and nuc3"),
    (lambda p: p["swarm"].update(default_addr_pool_mask_length="big"),
     "default_addr_pool_mask_length"),
], ids=["two-graders", "cache-twice", "mask-type"])
def test_a_bad_pillar_stops_the_rendering(local_minion, edit, words):
    pillar = copy.deepcopy(PILLAR)
    edit(pillar)
    errors = compiled(local_minion, "nuc2", pillar)
    assert isinstance(errors, list) and words in "\n".join(errors)


def test_ag_pillar_validate_reports_the_errors(local_minion):
    pillar = copy.deepcopy(PILLAR)
    pillar["cluster"]["nodes"]["nuc2"]["labels"] = ["gpu"]
    ret = local_minion(pillar, minion_id="nuc2").call("ag_pillar.validate")
    assert ret["valid"] is False
    assert any("node nuc2: label 'gpu'" in e for e in ret["errors"])


def clean_states(local_minion, minion, sls, pillar=PILLAR, *args):
    """{state id: args} of `sls` on `minion`, the docker.sdk states it includes left out."""
    ret = local_minion(pillar, minion_id=minion).call("state.show_sls", sls, *args)
    assert isinstance(ret, dict), ret
    states = {}
    for sid, body in ret.items():
        if body["__sls__"].startswith("docker"):
            continue
        mod = next(k for k in body if not k.startswith("__"))
        states[sid] = {k: v for item in body[mod] if isinstance(item, dict) for k, v in item.items()}
        states[sid]["__fun__"] = mod + "." + next(f for f in body[mod] if isinstance(f, str))
    return states


def test_swarm_clean_removes_the_pillar_labels_on_the_manager(local_minion):
    states = clean_states(local_minion, "nuc1", "swarm.clean")
    absent = states["swarm-clean-labels-absent"]
    assert absent["__fun__"] == "ag_swarm.labels_absent"
    assert absent["nodes"] == {node: spec["labels"]
                               for node, spec in PILLAR["cluster"]["nodes"].items()}
    assert clean_states(local_minion, "nuc2", "swarm.clean") == {}


def test_swarm_clean_of_the_nodes_ag_retire_names(local_minion):
    states = clean_states(local_minion, "nuc1", "swarm.clean", PILLAR,
                          'pillar={"ag_retire": ["nuc3"]}')
    assert states["swarm-clean-labels-absent"]["nodes"] == {"nuc3": ["deferred_grader"]}


def test_ag_clean_removes_stack_then_registry_on_the_manager_and_the_files_everywhere(local_minion):
    pillar = {**PILLAR, "app": {"stack_name": "ag-test"}, "registry": {"name": "reg"}}
    states = clean_states(local_minion, "nuc1", "ag.clean", pillar)
    assert states["ag-clean-stack-absent"]["__fun__"] == "ag_app.stack_absent"
    assert states["ag-clean-stack-absent"]["name"] == "ag-test"
    registry = states["ag-clean-registry-absent"]
    assert (registry["__fun__"], registry["name"]) == ("ag_app.service_absent", "reg")
    assert registry["require"] == [{"ag_app": "ag-clean-stack-absent"}]
    # the files after the stack on the manager: a stack that stays keeps its records
    assert {"ag_app": "ag-clean-stack-absent"} in states["ag-clean-records-absent"]["require"]
    worker = clean_states(local_minion, "nuc2", "ag.clean", pillar)
    assert list(worker) == ["ag-clean-records-absent"]
    assert (worker["ag-clean-records-absent"]["__fun__"],
            worker["ag-clean-records-absent"]["name"]) == ("ag_app.records_absent", "ag-test")
