"""_utils/ag_engine.py: one Docker client per minion process (kept in the loader's
__context__), and an SDK error in a session raised as a sentence without the join token."""

import docker
import pytest
import requests.exceptions
from salt.exceptions import CommandExecutionError

from tests.extensions import load

ag_engine = load("_utils/ag_engine.py", "ag_engine")
TOKEN = "SWMTKN-1-secret"


def test_the_client_is_made_once_and_kept_in_the_context(monkeypatch):
    made = []
    monkeypatch.setattr(ag_engine.docker, "DockerClient", lambda **kw: made.append(kw) or object())
    context = {}
    with ag_engine.session(context, lambda key, default: default, "a") as first:
        pass
    with ag_engine.session(context, lambda key, default: default, "b") as second:
        pass
    assert first is second and context[ag_engine.CONTEXT_KEY] is first
    assert made == [{"base_url": ag_engine.DEFAULT_URL, "timeout": 60}]


def test_an_sdk_error_is_a_sentence_without_the_join_token():
    context = {ag_engine.CONTEXT_KEY: object()}
    with pytest.raises(CommandExecutionError) as raised:
        with ag_engine.session(context, None, "joining the swarm of nuc1", secret=TOKEN):
            raise docker.errors.APIError("500", explanation=f"invalid join token {TOKEN}")
    assert str(raised.value) == "joining the swarm of nuc1 failed: invalid join token <join token>"


def test_a_patient_session_has_no_read_timeout_and_gives_it_back():
    # a migration may print nothing for minutes; every other call keeps the client's 60 s
    client = docker.DockerClient(base_url="unix:///nowhere", version="1.41", timeout=60)
    context = {ag_engine.CONTEXT_KEY: client}
    with ag_engine.session(context, None, "running manage.py", patient=True):
        assert client.api.timeout is None
    assert client.api.timeout == 60
    with pytest.raises(CommandExecutionError):
        with ag_engine.session(context, None, "running manage.py", patient=True):
            raise docker.errors.APIError("500", explanation="gone")
    assert client.api.timeout == 60


def test_an_engine_that_does_not_answer_in_time_is_a_sentence_too():
    # seen on an emulated manager starting the stack: requests' ReadTimeout, not the SDK's
    context = {ag_engine.CONTEXT_KEY: object()}
    with pytest.raises(CommandExecutionError) as raised:
        with ag_engine.session(context, None, "reading stack ag-stack"):
            raise requests.exceptions.ReadTimeout("UnixHTTPConnectionPool(host='localhost', "
                                                  "port=None): Read timed out. (read timeout=60)")
    assert str(raised.value).startswith("reading stack ag-stack failed: UnixHTTPConnectionPool")
    with pytest.raises(CommandExecutionError, match="updating swarm node n2 failed: .*timed out"):
        ag_engine.versioned_update("updating swarm node n2", lambda fresh: (_ for _ in ()).throw(
            requests.exceptions.ConnectionError("timed out")))
