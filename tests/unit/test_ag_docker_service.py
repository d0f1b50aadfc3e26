"""ag_docker.service_present's diff (test=True: reported, nothing changed) against a fake
engine: the fields it manages, {old, new} for each that differs, nothing for the rest."""

from unittest import mock

import docker
import pytest

from tests.extensions import load

ag_docker = load("_modules/ag_docker.py", "ag_docker")
ag_diff = load("_utils/ag_diff.py", "ag_diff")
REGISTRY_SPEC = {
    "TaskTemplate": {"ContainerSpec": {"Image": "registry:2", "Mounts": [
        {"Source": "ag-registry", "Target": "/var/lib/registry"}]},
        "Placement": {"Constraints": ["node.labels.registry == true"]}},
    "EndpointSpec": {"Ports": [{"PublishedPort": 5000, "TargetPort": 5000, "PublishMode": "ingress"}]},
}


@pytest.fixture
def inspect_service(monkeypatch):
    client = mock.create_autospec(docker.DockerClient, instance=True)
    client.api = mock.create_autospec(docker.APIClient, instance=True)
    monkeypatch.setattr(ag_docker, "_client", lambda: client)
    monkeypatch.setattr(ag_docker, "__utils__", {"ag_diff.changes": ag_diff.changes}, raising=False)
    return client.api.inspect_service


def registry(image="registry:2"):
    return ag_docker.service_present("registry", image, 5000, volume="ag-registry",
                                     target="/var/lib/registry",
                                     constraints=["node.labels.registry == true"], test=True)


def test_a_missing_service_reports_every_field_new(inspect_service):
    inspect_service.side_effect = docker.errors.NotFound("no such service")
    assert registry() == {
        "image": {"old": None, "new": "registry:2"},
        "ports": {"old": None, "new": ["5000:5000/ingress"]},
        "mounts": {"old": None, "new": ["ag-registry:/var/lib/registry"]},
        "constraints": {"old": None, "new": ["node.labels.registry == true"]},
    }


def test_a_service_as_configured_reports_nothing_and_another_image_only_the_image(inspect_service):
    inspect_service.return_value = {"ID": "svc1", "Spec": REGISTRY_SPEC}
    assert registry() == {}
    assert registry("registry:3") == {"image": {"old": "registry:2", "new": "registry:3"}}
    assert inspect_service.call_args == mock.call("registry")
