"""ag_app.services_paused / services_resumed on a fake engine (autospecced docker clients):
the pause is a placement constraint added to the spec as read, the rest of it kept; the wait
ends when no task of those services is on a node; resume takes the constraint off again."""

import copy
from unittest import mock

import docker
import pytest
from salt.exceptions import CommandExecutionError

from tests.extensions import FakeClock, load, on_engine

ag_app = load("_modules/ag_app.py", "ag_app_pause")
SPEC = {"Name": "ag-stack_grader", "TaskTemplate": {
    "ContainerSpec": {"Image": "127.0.0.1:5000/grader@sha256:1"},
    "Placement": {"Constraints": ["node.labels.grader == true"]}}}


class Engine:
    """One service whose tasks are on nodes until `stop_after` looks at them."""

    def __init__(self, stop_after=2):
        self.spec, self.version, self.looks, self.stop_after = copy.deepcopy(SPEC), 7, 0, stop_after
        self.updates = []

    def inspect_service(self, name):
        return {"ID": "svc1", "Version": {"Index": self.version}, "Spec": copy.deepcopy(self.spec)}

    def update_service(self, service, version, task_template=None, fetch_current_spec=False):
        assert version == self.version and fetch_current_spec
        self.updates.append(task_template["Placement"]["Constraints"])
        self.spec["TaskTemplate"] = task_template
        self.version += 1

    def tasks(self, filters):
        self.looks += 1
        state = "running" if self.looks <= self.stop_after else "shutdown"
        return [{"ServiceID": "svc1", "Status": {"State": state}},
                {"ServiceID": "svc1", "Status": {"State": "pending"}}]  # no node may take it


@pytest.fixture
def engine(monkeypatch):
    fake = Engine()
    client = mock.create_autospec(docker.DockerClient, instance=True)
    client.api = mock.create_autospec(docker.APIClient, instance=True)
    client.api.timeout = 60  # an instance attribute: a patient session lifts it
    for name in ("inspect_service", "update_service", "tasks"):
        getattr(client.api, name).side_effect = getattr(fake, name)
    on_engine(ag_app, client)
    monkeypatch.setattr(ag_app, "time", FakeClock())
    return fake


def test_a_paused_service_runs_nowhere_until_resumed_the_rest_of_its_spec_kept(engine):
    assert ag_app.services_paused(["ag-stack_grader"], 60) == ["ag-stack_grader"]
    assert engine.updates == [[ag_app.PAUSED, "node.labels.grader == true"]]
    assert engine.spec["TaskTemplate"]["ContainerSpec"] == SPEC["TaskTemplate"]["ContainerSpec"]
    assert engine.looks == 3  # waited until no task was left on a node
    assert ag_app.services_paused(["ag-stack_grader"], 60) == []  # paused already
    assert ag_app.services_resumed(["ag-stack_grader"]) == ["ag-stack_grader"]
    assert engine.spec["TaskTemplate"]["Placement"] == SPEC["TaskTemplate"]["Placement"]
    assert ag_app.services_resumed(["ag-stack_grader"]) == []


def test_a_task_that_does_not_stop_in_time_fails_naming_the_wait(engine):
    engine.stop_after = 10**6
    with pytest.raises(CommandExecutionError, match="still run a task after 30 s"):
        ag_app.services_paused(["ag-stack_grader"], 30)
