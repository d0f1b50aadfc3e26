"""ag_app's push: a registry that refuses connections for a while (its task being replaced)
is waited for; any other error, or a refusal past the patience, fails naming the tag. The
builds of a deploy push side by side."""

import threading
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


def test_builds_push_side_by_side_and_a_failing_one_waits_for_the_others(monkeypatch):
    # two builds that each wait for the other: run one after the other, the barrier breaks
    both_running = threading.Barrier(2, timeout=10)
    finished = []

    def build_push(path, dockerfile, tags, buildargs):
        both_running.wait()
        if path.endswith("website"):
            raise CommandExecutionError(f"building {tags[0]} from {path}/{dockerfile} failed: npm")
        finished.append(path)
        return {tag: "sha256:" + path[-1] for tag in tags}

    monkeypatch.setattr(ag_app, "image_build_push", build_push)
    builds = [["/srv/x/nginx", "Dockerfile", ["127.0.0.1:5000/nginx:h", "127.0.0.1:5000/nginx:latest"], {}],
              ["/srv/x/django", "Dockerfile-django-prod", ["127.0.0.1:5000/django:h"], {}]]
    assert ag_app.images_build_push(builds) == {"127.0.0.1:5000/nginx:h": "sha256:x",
                                                "127.0.0.1:5000/nginx:latest": "sha256:x",
                                                "127.0.0.1:5000/django:h": "sha256:o"}
    both_running.reset()
    builds[1][0] = "/srv/x/website"
    finished.clear()
    with pytest.raises(CommandExecutionError, match="building 127.0.0.1:5000/django:h from /srv/x/website"):
        ag_app.images_build_push(builds)
    assert finished == ["/srv/x/nginx"]
