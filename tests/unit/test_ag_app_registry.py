"""The ag_app.registry state's diff of the service (test=True: reported, nothing changed),
read by the real ag_app.service_get from a fake engine: the fields it manages, {old, new}
for each that differs, nothing for the rest. Applied: created when missing, updated when it
differs, then read back, and a read-back that differs fails naming the field."""

from unittest import mock

import docker
import pytest
from salt.exceptions import CommandExecutionError

from tests.extensions import load, module_fakes, on_engine

ag_app_module = load("_modules/ag_app.py", "ag_app_module")
ag_diff = load("_utils/ag_diff.py", "ag_diff")
REGISTRY_SPEC = {
    "TaskTemplate": {"ContainerSpec": {"Image": "registry:2", "Mounts": [
        {"Source": "ag-registry", "Target": "/var/lib/registry"}]},
        "Placement": {"Constraints": ["node.labels.registry == true"]}},
    "EndpointSpec": {"Ports": [{"PublishedPort": 5000, "TargetPort": 5000, "PublishMode": "ingress"}]},
}
RUNNING = [{"state": "running", "desired_state": "running", "error": None}]


@pytest.fixture
def ag_app():
    module = load("_states/ag_app.py", "ag_app")
    module.__utils__ = {f"ag_diff.{f}": getattr(ag_diff, f) for f in ("changes", "described")}
    module.__opts__ = {"test": True}
    module.__grains__ = {"id": "nuc1"}
    return module


@pytest.fixture
def inspect_service(ag_app):
    client = mock.create_autospec(docker.DockerClient, instance=True)
    client.api = mock.create_autospec(docker.APIClient, instance=True)
    on_engine(ag_app_module, client)
    ag_app.__salt__ = {"ag_app.service_get": ag_app_module.service_get}
    return client.api.inspect_service


def registry(ag_app, image="registry:2"):
    return ag_app.registry("registry", image, 5000)["changes"]


def test_a_missing_service_reports_every_field_new(ag_app, inspect_service):
    inspect_service.side_effect = docker.errors.NotFound("no such service")
    assert registry(ag_app) == {
        "image": {"old": None, "new": "registry:2"},
        "ports": {"old": None, "new": ["5000:5000/ingress"]},
        "mounts": {"old": None, "new": ["ag-registry:/var/lib/registry"]},
        "constraints": {"old": None, "new": ["node.labels.registry == true"]},
    }


def test_a_service_as_configured_reports_nothing_and_another_image_only_the_image(ag_app, inspect_service):
    inspect_service.return_value = {"ID": "svc1", "Spec": REGISTRY_SPEC}
    assert registry(ag_app) == {}
    assert registry(ag_app, "registry:3") == {"image": {"old": "registry:2", "new": "registry:3"}}
    assert inspect_service.call_args == mock.call("registry")


class Engine:
    """The registry service as the ag_app execution module reports it; `keeps_image`: an
    update that leaves the image as it was (what the read-back must catch)."""

    def __init__(self, service=None, keeps_image=False, busy_reads=0):
        self.service, self.keeps_image, self.calls = service, keeps_image, []
        self.busy_reads = busy_reads  # task reads the engine is too busy to answer

    def tasks(self, service=None, node=None):
        if self.busy_reads:
            self.busy_reads -= 1
            raise CommandExecutionError("listing tasks failed: rpc error: code = "
                                        "DeadlineExceeded desc = context deadline exceeded")
        return RUNNING

    def get(self, name):
        return dict(self.service) if self.service else None

    def set(self, call):
        def apply(name, image, port, publish_mode="ingress", volume=None, target=None,
                  constraints=None):
            self.calls.append(call)
            old = (self.service or {}).get("image")
            self.service = {"image": old if self.keeps_image and old else image,
                            "ports": [f"{port}:{port}/{publish_mode}"],
                            "mounts": [f"{volume}:{target}"], "constraints": sorted(constraints)}
            return self.get(name)
        return apply

    def salt(self):
        return module_fakes({"ag_app.service_get": self.get,
                             "ag_app.service_create": self.set("create"),
                             "ag_app.service_update": self.set("update"),
                             "ag_app.tasks": self.tasks})


def apply(ag_app, engine, image="registry:2"):
    ag_app.__opts__["test"] = False
    ag_app.__salt__ = engine.salt()
    return ag_app.registry("registry", image, 5000)


def test_a_missing_service_is_created_then_nothing_to_do(ag_app):
    engine = Engine()
    ret = apply(ag_app, engine)
    assert ret["result"] is True and ret["comment"] == "service registry set"
    assert set(ret["changes"]) == {"image", "ports", "mounts", "constraints"}
    again = apply(ag_app, engine)
    assert again["changes"] == {} and again["comment"] == "service registry is as configured"
    assert engine.calls == ["create"]


def test_a_service_that_differs_is_updated(ag_app):
    engine = Engine()
    apply(ag_app, engine)
    ret = apply(ag_app, engine, "registry:3")
    assert ret["result"] is True and ret["changes"] == {"image": {"old": "registry:2", "new": "registry:3"}}
    assert engine.calls == ["create", "update"]


def test_a_read_back_that_differs_fails_naming_the_field(ag_app):
    engine = Engine(keeps_image=True)
    apply(ag_app, engine)
    ret = apply(ag_app, engine, "registry:3")
    assert ret["result"] is False
    assert ("service registry was set but reads back otherwise (image is registry:2, pillar "
            "wants registry:3)") in ret["comment"]


def test_an_engine_too_busy_to_list_the_tasks_is_asked_again(ag_app, monkeypatch):
    monkeypatch.setattr(ag_app.time, "sleep", lambda seconds: None)
    engine = Engine(busy_reads=2)
    ret = apply(ag_app, engine)
    assert ret["result"] is True and engine.busy_reads == 0
