"""The cluster rules of _utils/ag_cluster.py: the good pillar passes, each bad one names its
node, label or key."""

import copy

import pytest
import yaml

from bed.config import REPO
from tests.bad_pillars import BAD, nodes
from tests.extensions import load

ag_cluster = load("_utils/ag_cluster.py", "ag_cluster")

GOOD = yaml.safe_load((REPO / "pillar/pillar.example").read_text())["autograder"]


def edited(edit):
    data = copy.deepcopy(GOOD)
    edit(data)
    return data


def test_the_documented_example_is_valid():
    assert ag_cluster.validate(GOOD) == []


def test_seventeen_labels():
    assert len(set(ag_cluster.schema.LABELS)) == 17


def test_service_labels_are_the_compose_files_replicated_placements():
    """SERVICE_LABELS: the label of each replicated service of the compose file (the stand-in
    has upstream's), and ag.registry's registry; global services are left out."""
    compose = yaml.safe_load((REPO / "tests/standin/autograder-full-stack/docker-compose.yml")
                             .read_text())
    placed = {"registry": ["registry"]}
    for name, service in compose["services"].items():
        deploy = service.get("deploy") or {}
        if deploy.get("mode") != "global":
            for constraint in deploy["placement"]["constraints"]:
                label = constraint.removeprefix("node.labels.").split("==")[0].strip()
                placed.setdefault(label, []).append(name)
    assert placed == {label: list(services) for label, services in ag_cluster.SERVICE_LABELS.items()}


def test_a_drained_node_may_carry_a_service_label_another_node_has():
    def drain_nuc3_with_webserver(data):
        nodes(data)["nuc3"]["labels"].append("webserver")
        nodes(data)["nuc3"]["availability"] = "drain"

    assert ag_cluster.validate(edited(drain_nuc3_with_webserver)) == []


@pytest.mark.parametrize("edit,words", [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_pillar_is_named(edit, words):
    errors = ag_cluster.validate(edited(edit) if edit else None)
    assert errors, "the bad pillar passed"
    text = "\n".join(errors)
    for word in words:
        assert word in text


def test_unknown_minion_is_named():
    errors = ag_cluster.validate(GOOD, known_minions={"nuc1", "nuc2"})
    assert errors == [e for e in errors if "node nuc3" in e and "accepted" in e] and errors


def test_known_minions_pass():
    assert ag_cluster.validate(GOOD, known_minions={"nuc1", "nuc2", "nuc3", "other"}) == []


def test_manager_role_in_pillar_does_not_matter():
    assert ag_cluster.node_role("nuc1", GOOD["cluster"]) == "manager"
    assert ag_cluster.node_role("nuc2", GOOD["cluster"]) == "worker"


def moved_database(data):
    nodes(data)["nuc1"]["labels"].remove("database")
    nodes(data)["nuc2"]["labels"].append("database")


def test_data_label_move_is_refused():
    errors = ag_cluster.validate(edited(moved_database), current_holders={"database": ["nuc1"]})
    assert len(errors) == 1
    assert "database would move from nuc1 to nuc2" in errors[0]
    assert "allow_label_moves" in errors[0]


def approving(move):
    def edit(data):
        moved_database(data)
        data["cluster"]["allow_label_moves"] = [move]
    return edited(edit)


def test_data_label_move_approved_by_naming_it():
    data = approving("database: nuc1 -> nuc2")
    assert ag_cluster.validate(data, current_holders={"database": ["nuc1"]}) == []
    assert ag_cluster.done_approvals(data["cluster"], {"database": ["nuc1"]}) == []


def test_an_approval_of_another_move_approves_nothing():
    data = approving("database: nuc3 -> nuc2")
    errors = ag_cluster.validate(data, current_holders={"database": ["nuc1"]})
    assert errors == ["label database would move from nuc1 to nuc2, but its data lives on nuc1; "
                      "move the data first, then approve this move once: add 'database: nuc1 "
                      "-> nuc2' to autograder:cluster:allow_label_moves"]


def test_an_approval_is_good_for_one_move_and_is_named_once_done():
    data = approving("database: nuc1 -> nuc2")
    assert ag_cluster.move_errors(data["cluster"], {"database": ["nuc2"]}) == []  # done
    assert ag_cluster.done_approvals(data["cluster"], {"database": ["nuc2"]}) == [
        "autograder:cluster:allow_label_moves: 'database: nuc1 -> nuc2' approves no move the "
        "pillar makes now (it is done, or it is not the move the pillar says); remove it: an "
        "approval is good for one move"]


def test_a_standing_permission_is_no_approval():
    errors = ag_cluster.validate(approving("database"))
    assert len(errors) == 1 and errors[0].startswith("autograder:cluster:allow_label_moves[0]")
    assert "'database: nuc1 -> nuc2'" in errors[0]


def test_other_singletons_move_freely():
    def move_cache(data):
        nodes(data)["nuc1"]["labels"].remove("cache")
        nodes(data)["nuc3"]["labels"].append("cache")

    assert ag_cluster.validate(edited(move_cache), current_holders={"cache": ["nuc1"]}) == []


def test_unclaimed_swarm_node_counts_as_a_holder():
    errors = ag_cluster.validate(GOOD, current_holders={"registry": ["swarm node abc (old-nuc)"]})
    assert "registry would move from swarm node abc (old-nuc) to nuc1" in errors[0]


def test_label_changes_touch_only_managed_labels():
    current = {"grader": "true", "database": "false", "rack": "b2", "cache": "true"}
    changes = ag_cluster.label_changes(current, ["database", "grader", "webserver"])
    assert changes == {"set": ["database", "webserver"], "remove": ["cache"]}
    assert ag_cluster.apply_label_changes(current, changes) == {
        "grader": "true", "database": "true", "rack": "b2", "webserver": "true"}


def test_label_changes_nothing_to_do():
    assert ag_cluster.label_changes({"grader": "true", "x": "1"}, ["grader"]) == {"set": [], "remove": []}


def test_label_holders_reads_names_and_swarm_mappings():
    holders = ag_cluster.label_holders({"a": ["cache", "foo"], "b": {"cache": "true", "database": "false"}})
    assert holders == {"cache": ["a", "b"]}


def test_live_tasks_are_those_not_ended():
    tasks = [{"id": s, "state": s} for s in ("running", "starting", "shutdown", "complete",
                                            "failed", "assigned")]
    assert [t["id"] for t in ag_cluster.live_tasks(tasks)] == ["running", "starting", "assigned"]


def test_availability_defaults_to_active():
    assert ag_cluster.node_availability({"address": "198.18.0.12"}) == "active"
    assert ag_cluster.node_availability({"availability": "drain"}) == "drain"
