"""The cluster rules of _utils/ag_cluster.py: the good pillar passes, each bad one names its
node, label or key."""

import copy

import pytest
import yaml

from bed.config import REPO
from tests.extensions import load

ag_cluster = load("_utils/ag_cluster.py", "ag_cluster")

GOOD = yaml.safe_load((REPO / "pillar/pillar.example").read_text())["autograder"]


def edited(edit):
    data = copy.deepcopy(GOOD)
    edit(data)
    return data


def nodes(data):
    return data["cluster"]["nodes"]


def test_the_documented_example_is_valid():
    assert ag_cluster.validate(GOOD) == []


def test_app_keys_are_the_defaults_keys():
    defaults = yaml.safe_load((REPO / "salt/ag/defaults.yaml").read_text())
    assert set(ag_cluster.APP_KEYS) == set(defaults["app"])
    assert set(ag_cluster.REGISTRY_KEYS) == set(defaults["registry"])
    assert set(ag_cluster.CELERY_SERVICES) == set(defaults["app"]["celery_concurrency"])


def test_seventeen_labels():
    assert len(set(ag_cluster.LABELS)) == 17


# (id, edit of the good pillar, words the error must contain)
BAD = [
    ("no-autograder", None, ["autograder is missing"]),
    ("no-cluster", lambda d: d.pop("cluster"), ["autograder:cluster is missing"]),
    ("cluster-list", lambda d: d.update(cluster=["nuc1"]), ["autograder:cluster must be a mapping"]),
    ("no-nodes", lambda d: d["cluster"].pop("nodes"), ["nodes is missing"]),
    ("nodes-list", lambda d: d["cluster"].update(nodes=["nuc1", "nuc2"]), ["must map minion ids"]),
    ("no-manager", lambda d: d["cluster"].pop("manager"), ["manager is missing"]),
    ("manager-unknown", lambda d: d["cluster"].update(manager="nuc9"), ["'nuc9' is not one of the nodes"]),
    ("unknown-label", lambda d: nodes(d)["nuc2"]["labels"].append("gpu"), ["node nuc2", "'gpu'"]),
    ("label-typo", lambda d: nodes(d)["nuc3"]["labels"].__setitem__(0, "deffered_grader"),
     ["node nuc3", "'deffered_grader'"]),
    ("labels-string", lambda d: nodes(d)["nuc2"].update(labels="grader"), ["nuc2", "must be a list"]),
    ("duplicate-label", lambda d: nodes(d)["nuc2"]["labels"].append("fast_grader"),
     ["node nuc2", "fast_grader is listed twice"]),
    ("database-twice", lambda d: nodes(d)["nuc2"]["labels"].append("database"),
     ["label database", "nuc1 and nuc2"]),
    ("registry-nowhere", lambda d: nodes(d)["nuc1"]["labels"].remove("registry"),
     ["label registry is on no node"]),
    ("cache-twice", lambda d: nodes(d)["nuc3"]["labels"].append("cache"), ["label cache", "nuc1 and nuc3"]),
    ("broker-nowhere", lambda d: nodes(d)["nuc1"]["labels"].remove("rabbitmq_broker"),
     ["rabbitmq_broker is on no node"]),
    ("custom-registry-twice", lambda d: nodes(d)["nuc2"]["labels"].append("custom_image_registry"),
     ["custom_image_registry", "nuc1 and nuc2"]),
    ("two-graders", lambda d: nodes(d)["nuc2"]["labels"].append("tiny_grader"),
     ["node nuc2", "grader and tiny_grader"]),
    ("grader-deferred", lambda d: nodes(d)["nuc3"]["labels"].append("grader"),
     ["node nuc3", "grader and deferred_grader"]),
    ("no-address", lambda d: nodes(d)["nuc2"].pop("address"), ["nodes:nuc2", "address is missing"]),
    ("bad-address", lambda d: nodes(d)["nuc2"].update(address="nuc2.lan"), ["nuc2", "not an IP address"]),
    ("shared-address", lambda d: nodes(d)["nuc3"].update(address="198.18.0.12"),
     ["nuc2 and nuc3 share the address"]),
    ("bad-role", lambda d: nodes(d)["nuc2"].update(role="leader"), ["nuc2", "'leader'"]),
    ("node-key-typo", lambda d: nodes(d)["nuc2"].update(lables=["grader"]), ["nuc2", "unknown key 'lables'"]),
    ("node-not-mapping", lambda d: nodes(d).update(nuc3="198.18.0.13"), ["nodes:nuc3", "must be a mapping"]),
    ("numeric-node-id", lambda d: nodes(d).update({4: {"address": "198.18.0.14"}}), ["minion id"]),
    ("moves-bad", lambda d: d["cluster"].update(allow_label_moves=["cache"]), ["allow_label_moves"]),
    ("pool-not-list", lambda d: d["swarm"].update(default_addr_pool="198.19.64.0/18"), ["default_addr_pool"]),
    ("pool-not-cidr", lambda d: d["swarm"].update(default_addr_pool=["198.19.64.1/18"]),
     ["default_addr_pool"]),
    ("mask-string", lambda d: d["swarm"].update(default_addr_pool_mask_length="24"),
     ["default_addr_pool_mask_length"]),
    ("attachable-string", lambda d: d["swarm"]["network"].update(attachable="yes"), ["attachable"]),
    ("subnet-bad", lambda d: d["swarm"]["network"].update(subnet="10.30.0/24"), ["network:subnet"]),
    ("swarm-key-typo", lambda d: d["swarm"].update(default_address_pool=[]),
     ["unknown key 'default_address_pool'"]),
    ("top-key-typo", lambda d: d.update(clutser={}), ["'clutser'", "did you mean 'cluster'"]),
    ("app-key-typo", lambda d: d["app"].update(gunicorn_worker=4),
     ["autograder:app", "did you mean 'gunicorn_workers'"]),
    ("checkout-relative", lambda d: d["app"].update(checkout="srv/ag"), ["app:checkout", "absolute"]),
    ("checkout-dotdot", lambda d: d["app"].update(checkout="/srv/../etc/ag"), ["app:checkout", "'..'"]),
    ("checkout-system", lambda d: d["app"].update(checkout="/etc/autograder"), ["system directory"]),
    ("checkout-root", lambda d: d["app"].update(checkout="/"), ["app:checkout", "system directory"]),
    ("workers-zero", lambda d: d["app"].update(gunicorn_workers=0), ["gunicorn_workers", "1..64"]),
    ("workers-string", lambda d: d["app"].update(gunicorn_workers="4"), ["gunicorn_workers"]),
    ("concurrency-negative", lambda d: d["app"]["celery_concurrency"].update(grader=-1),
     ["celery_concurrency:grader"]),
    ("concurrency-typo", lambda d: d["app"]["celery_concurrency"].update(graders=2),
     ["did you mean 'grader'"]),
    ("timeout-negative", lambda d: d["app"].update(converge_timeout=-5), ["converge_timeout"]),
    ("subprocess-timeout-zero", lambda d: d["app"].update(max_subprocess_timeout=0),
     ["max_subprocess_timeout"]),
    ("domain-bad", lambda d: d["app"].update(site_domain="https://ag.example.edu/"), ["site_domain"]),
    ("domain-empty", lambda d: d["app"].update(site_domain=""), ["site_domain"]),
    ("body-size-bad", lambda d: d["app"].update(client_max_body_size="30 MB"), ["client_max_body_size"]),
    ("stack-name-bad", lambda d: d["app"].update(stack_name="ag stack"), ["stack_name"]),
    ("postgres-version-bad", lambda d: d["app"].update(postgres_version="latest"), ["postgres_version"]),
    ("tls-outside-etc-ssl", lambda d: d["app"].update(tls_key="/root/key.pem"), ["tls_key", "/etc/ssl/"]),
    ("oauth-provider-bad", lambda d: d["app"]["oauth"].update(provider="github"), ["oauth:provider"]),
    ("email-port-bad", lambda d: d["app"]["email"].update(port=70000), ["email:port"]),
    ("extra-compose-escapes", lambda d: d["app"].update(extra_compose_files=["../x.yml"]),
     ["extra_compose_files"]),
    ("admins-not-list", lambda d: d["app"]["bootstrap"].update(admins="me@example.edu"),
     ["bootstrap:admins"]),
    ("registry-mode-bad", lambda d: d["registry"].update(publish_mode="global"), ["publish_mode"]),
    ("registry-port-bad", lambda d: d["registry"].update(port="5000"), ["registry:port"]),
]


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


def test_data_label_move_allowed_explicitly():
    def allow(data):
        moved_database(data)
        data["cluster"]["allow_label_moves"] = ["database"]

    assert ag_cluster.validate(edited(allow), current_holders={"database": ["nuc1"]}) == []


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
