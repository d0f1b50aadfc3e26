"""The bench's Ansible inventory reaches each node through its own dockerd's namespaces, and
never falls back to the host's."""

import pytest
import yaml

from bench import by_ansible


@pytest.fixture
def inventory_path(tmp_path, monkeypatch):
    path = tmp_path / "inventory.yml"
    monkeypatch.setattr(by_ansible, "INVENTORY", path)
    return path


def test_each_node_is_reached_through_its_dockerd(inventory_path, monkeypatch):
    pids = {"nuc1": 101, "nuc2": 202}
    monkeypatch.setattr(by_ansible.netns, "node_pid", lambda node, pidfile: pids[node])
    inventory = yaml.safe_load(by_ansible.write_inventory(["nuc1", "nuc2"]).read_text())["all"]
    assert inventory["hosts"] == {"nuc1": {"ansible_nsenter_pid": 101},
                                  "nuc2": {"ansible_nsenter_pid": 202}}
    assert inventory["vars"] == {"ansible_connection": "community.docker.nsenter",
                                 "ansible_python_interpreter": str(by_ansible.VENV / "bin/python")}


def test_a_node_without_dockerd_stops_the_bench(inventory_path, monkeypatch):
    # the plugin's default target is PID 1: the tasks would run on the host
    monkeypatch.setattr(by_ansible.netns, "node_pid",
                        lambda node, pidfile: None if node == "nuc2" else 101)
    with pytest.raises(SystemExit, match="no dockerd runs on nuc2"):
        by_ansible.write_inventory(["nuc1", "nuc2"])
    assert not inventory_path.exists()
