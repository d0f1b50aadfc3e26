"""ag_app's push: a registry that refuses connections for a while (its task being replaced)
is waited for; any other error, or a refusal past the patience, fails naming the tag."""

from unittest import mock

import docker
import pytest
from salt.exceptions import CommandExecutionError

from tests.extensions import load

ag_app = load("_modules/ag_app.py", "ag_app")
REFUSED = {"error": 'Get "http://127.0.0.1:5000/v2/": dial tcp 127.0.0.1:5000: connect: connection refused'}
PUSHED = [{"status": "Pushed"}, {"aux": {"Digest": "sha256:abc"}}]


def client_pushing(*streams):
    """A docker client (autospecced: a push the SDK would refuse fails) whose pushes stream
    `streams` in turn."""
    client = mock.create_autospec(docker.DockerClient, instance=True)
    client.api = mock.create_autospec(docker.APIClient, instance=True)
    pending = list(streams)
    client.api.push.side_effect = lambda *args, **kwargs: iter(pending.pop(0))
    return client


@pytest.fixture(autouse=True)
def no_sleep(monkeypatch):
    monkeypatch.setattr(ag_app.time, "sleep", lambda s: None)


def test_a_refusing_registry_is_waited_for():
    client = client_pushing([REFUSED], [REFUSED], PUSHED)
    assert ag_app._push(client, "127.0.0.1:5000/django", "abc") == "sha256:abc"
    assert client.api.push.call_count == 3


def test_a_refusal_past_the_patience_fails_naming_the_tag():
    client = client_pushing([REFUSED], PUSHED)
    with pytest.raises(CommandExecutionError, match="pushing 127.0.0.1:5000/django:abc failed: .*refused"):
        ag_app._push(client, "127.0.0.1:5000/django", "abc", patience=-1)
    assert client.api.push.call_count == 1


def test_other_push_errors_fail_at_once():
    client = client_pushing([{"error": "denied: requested access to the resource is denied"}], PUSHED)
    with pytest.raises(CommandExecutionError, match="denied"):
        ag_app._push(client, "127.0.0.1:5000/django", "abc")
    assert client.api.push.call_count == 1
