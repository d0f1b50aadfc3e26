"""The unit tests' fakes of ag_docker keep to its real signatures (tests/extensions.py): a
state calling ag_docker in a way the real module refuses fails its unit test."""

import pytest

from tests.extensions import ag_docker_fakes


def test_a_fake_takes_what_the_real_function_takes():
    fakes = ag_docker_fakes({"tasks": lambda service=None, node=None: [service]})
    assert fakes["ag_docker.tasks"](service="ag-stack_django") == ["ag-stack_django"]


def test_a_fake_called_with_an_argument_the_real_function_does_not_take_fails():
    fakes = ag_docker_fakes({"tasks": lambda **_: []})
    with pytest.raises(TypeError):
        fakes["ag_docker.tasks"](services="ag-stack_django")


def test_a_fake_called_without_an_argument_the_real_function_needs_fails():
    fakes = ag_docker_fakes({"task_logs": lambda *_: {}})
    with pytest.raises(TypeError):
        fakes["ag_docker.task_logs"]("ag-stack_nginx")


def test_a_fake_of_a_function_ag_docker_lacks_fails():
    with pytest.raises(AttributeError):
        ag_docker_fakes({"stack_remove": lambda name: True})
