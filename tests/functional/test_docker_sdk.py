"""salt/docker/sdk.sls: the docker SDK goes where the minion's Salt imports it (salt-pip on a
onedir Salt, the pip of Salt's own environment, the distribution's package for a Salt on the
system Python), and where it already imports (this venv, the bed's minions) nothing changes."""

import pytest

from tests.functional.test_top import CLUSTER


def functions(compiled):
    """{state id: state function} of a state.show_sls return."""
    return {sid: f"{module}.{next(f for f in body[module] if isinstance(f, str))}"
            for sid, body in compiled.items()
            for module in body if not module.startswith("__")}


@pytest.mark.parametrize(("python", "state"), [
    ("/opt/saltstack/salt/bin/python3.10", "pip.installed"),  # onedir: pip.installed is salt-pip
    ("/opt/salt/bin/python3", "pip.installed"),  # a venv
    ("/usr/bin/python3", "pkg.installed"),
])
def test_a_missing_sdk_goes_where_salt_imports_it(local_minion, python, state):
    # ag_app off, as it is where the SDK does not import
    minion = local_minion({"cluster": CLUSTER}, grains={"pythonexecutable": python},
                          disable_modules=["ag_app"])
    compiled = minion.call("state.show_sls", "docker.sdk")
    assert functions(compiled) == {f"docker-sdk-{state.replace('.', '-')}": state}


def test_an_importable_sdk_is_left_alone_without_asking_pip(local_minion):
    ret = local_minion({"cluster": CLUSTER}).apply("docker.sdk")
    assert [(sid, s["result"], s["changes"]) for sid, s in ret.items()] == [
        ("docker-sdk-importable", True, {})]
