"""ag_app.stack_absent, service_absent and records_absent, through the real ag_app execution
module on a fake engine (no daemons): test mode reports and removes nothing; applied, the
services go first and the stack's networks only once their tasks are gone; the deploy's
files of the stack go, another's stay; a second run changes nothing; tasks that do not stop
fail naming the node."""

import docker.errors
import pytest

from tests.extensions import FakeClock, load, module_fakes

ag_app_module = load("_modules/ag_app.py", "ag_app_module")
NS = "com.docker.stack.namespace"


class FakeEngine:
    """The Engine API's listings and removals of services, tasks, networks, secrets and
    configs, labelled like a deployed stack; a removed service's tasks stop after
    `stop_after` listings."""

    def __init__(self, stack="ag-stack"):
        self.objects = {
            "services": [{"ID": f"s-{n}", "Spec": {"Name": f"{stack}_{n}", "Labels": {NS: stack}}}
                         for n in ("django", "nginx")]
            + [{"ID": "s-registry", "Spec": {"Name": "registry", "Labels": {}}}],
            "networks": [{"Id": "n-default", "Name": f"{stack}_default", "Labels": {NS: stack}}],
            "secrets": [], "configs": [],
        }
        self.tasks = [{"ID": f"t-{s['ID']}", "ServiceID": s["ID"], "Labels": s["Spec"]["Labels"]}
                      for s in self.objects["services"]]
        self.stop_after = 2
        self.removed = []
        self.stopping = {}

    def list(self, kind, filters=None):
        wanted = (filters or {}).get("label")
        return [o for o in self.objects[kind]
                if wanted is None or "=".join(next(iter((o.get("Spec") or o)["Labels"].items()),
                                                   ("", ""))) == wanted]

    def list_tasks(self, filters=None):
        for task_id in list(self.stopping):
            self.stopping[task_id] -= 1
            if self.stopping[task_id] < 0:
                self.tasks = [t for t in self.tasks if t["ID"] != task_id]
                del self.stopping[task_id]
        wanted = (filters or {}).get("label")
        return [dict(t, Status={}, DesiredState="shutdown") for t in self.tasks
                if wanted is None or f"{NS}={t['Labels'].get(NS)}" == wanted]

    def remove(self, kind, ident):
        if kind == "networks":
            assert not any(t["Labels"].get(NS) for t in self.tasks), "network in use"
        self.objects[kind] = [o for o in self.objects[kind] if (o.get("ID") or o.get("Id")) != ident
                              and (o.get("Spec") or o)["Name"] != ident]
        self.removed.append((kind, ident))
        if kind == "services":
            for task in self.tasks:
                if task["ServiceID"] == ident or task["ServiceID"] == f"s-{ident}":
                    self.stopping[task["ID"]] = self.stop_after


class Api:
    def __init__(self, engine):
        self.services = lambda filters=None: engine.list("services", filters)
        self.networks = lambda filters=None: engine.list("networks", filters)
        self.secrets = lambda filters=None: engine.list("secrets", filters)
        self.configs = lambda filters=None: engine.list("configs", filters)
        self.tasks = engine.list_tasks
        self.remove_service = lambda ident: engine.remove("services", ident)
        self.remove_network = lambda ident: engine.remove("networks", ident)
        self.remove_secret = lambda ident: engine.remove("secrets", ident)
        self.remove_config = lambda ident: engine.remove("configs", ident)


@pytest.fixture
def engine():
    return FakeEngine()


def states(engine, tmp_path, test=False):
    module = load("_states/ag_app.py", "ag_app")
    client = type("Client", (), {"api": Api(engine)})()
    engine_util = load("_utils/ag_engine.py", "ag_engine")
    ag_app_module.__context__ = {engine_util.CONTEXT_KEY: client}
    ag_app_module.__salt__ = {"config.get": lambda key, default=None: default}
    ag_app_module.__utils__ = {"ag_engine.session": engine_util.session}
    module.__salt__ = module_fakes({
        f"ag_app.{f}": getattr(ag_app_module, f)
        for f in ("stack_objects", "stack_remove", "services", "service_remove", "tasks")})
    module.__salt__["ag_app.service_get"] = lambda name: (
        {"image": "registry:2"} if engine.list("services") and any(
            s["Spec"]["Name"] == name for s in engine.list("services")) else None)
    module.__opts__ = {"test": test}
    module.__grains__ = {"id": "nuc1"}
    module.DEPLOYED_DIR = str(tmp_path)
    module.time = FakeClock()
    return module


def test_stack_absent_reports_then_removes_services_before_networks_then_nothing(engine, tmp_path):
    ret = states(engine, tmp_path, test=True).stack_absent("ag-stack")
    assert ret["result"] is None and engine.removed == []
    assert ret["changes"] == {
        "services": {"old": ["ag-stack_django", "ag-stack_nginx"], "new": []},
        "networks": {"old": ["ag-stack_default"], "new": []}}
    ret = states(engine, tmp_path).stack_absent("ag-stack")
    assert ret["result"] is True and set(ret["changes"]) == {"services", "networks"}
    assert [kind for kind, _ in engine.removed] == ["services", "services", "networks"]
    assert [s["Spec"]["Name"] for s in engine.objects["services"]] == ["registry"]
    again = states(engine, tmp_path).stack_absent("ag-stack")
    assert again["result"] is True and again["changes"] == {}


def test_records_absent_removes_the_stack_s_files_and_its_services_then_nothing(engine, tmp_path):
    ours = ["ag-stack.revision", "ag-stack.sha256", "ag-stack_nginx.tls.sha256"]
    for name in ours + ["other.sha256"]:
        (tmp_path / name).write_text("abc\n")
    planned = states(engine, tmp_path, test=True).records_absent("ag-stack")
    assert planned["result"] is None and len(list(tmp_path.iterdir())) == 4
    assert planned["changes"] == {"files": {"old": [str(tmp_path / n) for n in ours], "new": []}}
    done = states(engine, tmp_path).records_absent("ag-stack")
    assert done["result"] is True and done["changes"] == planned["changes"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other.sha256"]
    again = states(engine, tmp_path).records_absent("ag-stack")
    assert again["result"] is True and again["changes"] == {}


def test_stack_absent_fails_naming_the_node_when_tasks_do_not_stop(engine, tmp_path):
    engine.stop_after = 10**6
    ret = states(engine, tmp_path).stack_absent("ag-stack", timeout=5)
    assert ret["result"] is False and "on nuc1" in ret["comment"]
    assert "did not stop within 5s" in ret["comment"]
    assert engine.objects["networks"], "the networks go only once the tasks are gone"


def test_service_absent_removes_the_registry_and_waits_for_its_task(engine, tmp_path):
    ret = states(engine, tmp_path, test=True).service_absent("registry")
    assert ret["result"] is None and ret["changes"] == {"service": {"old": "registry", "new": None}}
    ret = states(engine, tmp_path).service_absent("registry")
    assert ret["result"] is True and ("services", "registry") in engine.removed
    assert not any(t["ServiceID"] == "s-registry" for t in engine.tasks)
    again = states(engine, tmp_path).service_absent("registry")
    assert again["result"] is True and again["changes"] == {}


@pytest.mark.parametrize("state", ["stack_absent", "service_absent"])
def test_an_engine_that_cannot_list_fails_the_state_as_a_sentence_naming_the_node(
        engine, tmp_path, state):
    def refuse(kind, filters=None):
        raise docker.errors.APIError("500 Server Error", explanation="rpc error: code = "
                                     "DeadlineExceeded desc = context deadline exceeded")

    engine.list = refuse
    ret = getattr(states(engine, tmp_path), state)("ag-stack")
    assert ret["result"] is False and ret["changes"] == {}
    assert ret["comment"].startswith("on nuc1: ")
    assert ret["comment"].endswith("failed: rpc error: code = DeadlineExceeded desc = context "
                                   "deadline exceeded")
    assert engine.removed == []
