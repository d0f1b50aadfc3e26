"""ag_app's push: a registry that refuses connections for a while (its task being replaced)
is waited for; any other error, or a refusal past the patience, fails naming the tag."""

import pytest
from salt.exceptions import CommandExecutionError

from tests.extensions import load

ag_app = load("_modules/ag_app.py", "ag_app")
REFUSED = {"error": 'Get "http://127.0.0.1:5000/v2/": dial tcp 127.0.0.1:5000: connect: connection refused'}
PUSHED = [{"status": "Pushed"}, {"aux": {"Digest": "sha256:abc"}}]


class Api:
    def __init__(self, *streams):
        self.streams, self.calls = list(streams), 0

    def push(self, repo, version, stream, decode):
        self.calls += 1
        return iter(self.streams.pop(0))


class Client:
    def __init__(self, *streams):
        self.api = Api(*streams)


@pytest.fixture(autouse=True)
def no_sleep(monkeypatch):
    monkeypatch.setattr(ag_app.time, "sleep", lambda s: None)


def test_a_refusing_registry_is_waited_for():
    client = Client([REFUSED], [REFUSED], PUSHED)
    assert ag_app._push(client, "127.0.0.1:5000/django", "abc") == "sha256:abc"
    assert client.api.calls == 3


def test_a_refusal_past_the_patience_fails_naming_the_tag():
    client = Client([REFUSED], PUSHED)
    with pytest.raises(CommandExecutionError, match="pushing 127.0.0.1:5000/django:abc failed: .*refused"):
        ag_app._push(client, "127.0.0.1:5000/django", "abc", patience=-1)
    assert client.api.calls == 1


def test_other_push_errors_fail_at_once():
    client = Client([{"error": "denied: requested access to the resource is denied"}], PUSHED)
    with pytest.raises(CommandExecutionError, match="denied"):
        ag_app._push(client, "127.0.0.1:5000/django", "abc")
    assert client.api.calls == 1
