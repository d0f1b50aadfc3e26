"""The unit tests' fakes of the execution modules keep to their real signatures
(tests/extensions.py): a state calling one in a way the real module refuses fails its unit
test."""

import pytest

from tests.extensions import module_fakes


def test_a_fake_takes_what_the_real_function_takes():
    fakes = module_fakes({"ag_app.tasks": lambda service=None, node=None: [service]})
    assert fakes["ag_app.tasks"](service="ag-stack_django") == ["ag-stack_django"]


def test_a_fake_called_with_an_argument_the_real_function_does_not_take_fails():
    fakes = module_fakes({"ag_app.tasks": lambda **_: []})
    with pytest.raises(TypeError):
        fakes["ag_app.tasks"](services="ag-stack_django")


def test_a_fake_called_without_an_argument_the_real_function_needs_fails():
    fakes = module_fakes({"ag_app.task_logs": lambda *_: {}})
    with pytest.raises(TypeError):
        fakes["ag_app.task_logs"]("ag-stack_nginx")


def test_a_fake_of_a_function_the_module_lacks_fails():
    with pytest.raises(AttributeError):
        module_fakes({"ag_app.stack_rollback": lambda name: True})
