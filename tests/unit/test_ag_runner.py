"""ag.status and ag.plan texts from their inputs (no master): what a sysadmin reads."""

import logging
import time
from types import SimpleNamespace

import pytest

from tests.extensions import FakeClock, load

ag_cluster = load("_utils/ag_cluster.py", "ag_cluster")
runner = load("_runners/ag.py", "ag_runner")
ag_schema = load("_utils/ag_schema.py", "ag_schema")
runner.__utils__ = {f"ag_cluster.{f}": getattr(ag_cluster, f)
                    for f in ("managed_labels", "same_host", "live_tasks")}
runner.__utils__["ag_schema.with_defaults"] = ag_schema.with_defaults
runner.__context__ = {}


def node(hostname, role, labels):
    return {"hostname": hostname, "role": role, "availability": "active", "state": "ready",
            "labels": labels}


def test_status_lists_managed_labels_absent_nodes_and_service_errors():
    swarm = [node("nuc2", "worker", {"grader": "true", "rack": "b"}),
             node("nuc1", "manager", {"database": "true", "cache": "false"})]
    services = {
        "django": {"desired": 1, "running": 1, "converged": True,
                   "tasks": [{"node": "nuc1", "state": "running", "error": None}]},
        "grader": {"desired": 1, "running": 0, "converged": False,
                   "tasks": [{"node": "nuc2", "state": "failed", "error": "task: non-zero exit (1)"}]},
    }
    table = runner.status_table({"nuc1": ["database"], "nuc2": ["grader"], "nuc3": ["rerun_grader"]},
                                swarm, services)
    rows = {line.split()[0]: line.split() for line in table.splitlines() if line.strip()}
    assert rows["nuc1"][1:] == ["manager", "active", "ready", "database"]
    assert rows["nuc2"][-1] == "grader"  # the admin's own label 'rack' is not ours
    assert "not in the swarm" in table.splitlines()[3] and "rerun_grader" in table
    assert rows["django"][1:4] == ["1/1", "yes", "nuc1"]
    assert rows["grader"][1:4] == ["0/1", "no", "-"] and "non-zero exit (1)" in rows["grader"][-1] + table


def step(sid, changes=(), result=None, comment=""):
    """One step of ag.check_steps' answer."""
    return {"id": f"ag-deploy-{sid}", "result": True if result is None and not changes else result,
            "changes": list(changes), "comment": comment}


def planned(*steps, comment=""):
    """ag.plan's text of the orchestration's test-mode return whose check found `steps`."""
    check = {"__id__": "ag-deploy-check", "result": None, "comment": comment,
             "changes": {"steps": list(steps)} if steps else {}}
    return runner.plan_lines({"data": {"master": {"ag_master_|-ag-deploy-check_|-x_|-checked": check}}})


def test_plan_names_each_step_and_what_it_would_change():
    lines = planned(step("images"),
                    step("stack", ["nuc1 ag-stack-deployed: stack ag-stack would be deployed"]))
    assert lines == ["images: no change",
                     "stack: nuc1 ag-stack-deployed: stack ag-stack would be deployed"]
    assert planned(comment="every step checked, nothing to change: images, stack") == [
        "every step checked, nothing to change: images, stack"]


def test_plan_stops_at_the_first_failing_step_and_shows_render_errors():
    lines = planned(step("tls", result=False, comment="no TLS key at /k on nuc1"), step("stack"))
    assert lines == ["tls: would fail: no TLS key at /k on nuc1"]
    errors = runner.plan_lines({"data": {"master": ["label database is on nuc1 and nuc2"]}})
    assert errors == ["the deploy would stop before any change:", "label database is on nuc1 and nuc2"]


class LocalClient:
    def __init__(self):
        self.jobs = []

    def cmd_async(self, tgt, fun, arg, kwarg, tgt_type="glob"):
        self.jobs.append((tgt, fun, arg, kwarg) + ((tgt_type,) if tgt_type != "glob" else ()))
        return "20261205120000000000"


CLUSTER = {"manager": "nuc1",
           "nodes": {"nuc1": {"address": "198.18.9.11", "labels": ["database", "webserver"]},
                     "nuc2": {"address": "198.18.9.12", "labels": ["grader"]}}}


class Cluster:
    """The nodes' minions as the master's salt.execute reaches them: the swarm's label
    holders on the manager, each node's addresses; the jobs sent."""

    def __init__(self, answering=("nuc1", "nuc2"), holders=None, addrs=None):
        self.answering, self.jobs = answering, []
        self.holders = {"database": ["nuc1"], "webserver": ["nuc1"]} if holders is None else holders
        self.addrs = addrs or {n: ["127.0.0.1", v["address"]] for n, v in CLUSTER["nodes"].items()}

    def execute(self, tgt, fun, arg=(), tgt_type="glob", timeout=None):
        self.jobs.append((fun, tgt))
        targets = [tgt] if isinstance(tgt, str) else tgt
        answer = {"test.ping": lambda node: True,
                  "ag_swarm.label_holders": lambda node: self.holders,
                  "grains.item": lambda node: {"ipv4": self.addrs[node], "ipv6": ["::1"]}}[fun]
        return {node: answer(node) for node in targets if node in self.answering}


def master(monkeypatch, minions, errors=(), cluster=None, pillar=CLUSTER):
    """A master whose accepted `minions` get one pillar (CLUSTER), found with `errors` by the
    rules, whose nodes answer as `cluster` (a Cluster) says."""
    keys = SimpleNamespace(list_status=lambda status: {"minions": minions})
    monkeypatch.setattr(runner.salt.key, "get_key", lambda opts: keys)
    monkeypatch.setattr(runner, "__utils__",
                        {"ag_cluster.validate": lambda autograder, known_minions: list(errors),
                         "ag_cluster.move_errors": ag_cluster.move_errors,
                         "ag_cluster.done_approvals": ag_cluster.done_approvals,
                         "ag_cluster.render_errors": ag_cluster.render_errors,
                         "ag_schema.with_defaults": ag_schema.with_defaults})
    runner.__opts__ = {}
    cluster = cluster or Cluster()
    runner.__salt__ = {"pillar.show_pillar": lambda minion: {"autograder": {"cluster": pillar}},
                       "salt.execute": cluster.execute}
    return cluster


def swarm_event(monkeypatch, sender, manager="nuc1", tag="ag/swarm/node/joined", pillar=CLUSTER):
    client = LocalClient()
    master(monkeypatch, ["nuc1", "nuc2", "nuc3", "lab-printer"], pillar=pillar)
    monkeypatch.setattr(runner.salt.client, "get_local_client", lambda mopts: client)
    return runner.swarm_event(tag, sender, manager), client.jobs


def test_a_cluster_node_s_event_applies_its_sls_on_the_manager(monkeypatch):
    ret, jobs = swarm_event(monkeypatch, "nuc2")
    assert jobs == [("nuc1", "state.sls", ["swarm.initialized,swarm.labels"], {"queue": True})]
    assert ret.startswith("for nuc2's ag/swarm/node/joined: swarm.initialized,swarm.labels on nuc1 (job ")


def test_a_new_node_s_token_request_opens_the_others_firewalls_then_the_manager_publishes(
        monkeypatch):
    three = {**CLUSTER, "nodes": {**CLUSTER["nodes"],
                                  "nuc3": {"address": "198.18.9.13", "labels": []}}}
    ret, jobs = swarm_event(monkeypatch, "nuc3", tag="ag/swarm/token/wanted", pillar=three)
    assert jobs == [(["nuc2"], "state.sls", ["firewall"], {"queue": True}, "list"),
                    ("nuc1", "state.sls", ["firewall,swarm.initialized"], {"queue": True})]
    assert ret.startswith("for nuc3's ag/swarm/token/wanted: firewall on nuc2 (job ")


def test_an_outsider_s_event_starts_nothing(monkeypatch):
    ret, jobs = swarm_event(monkeypatch, "lab-printer")
    assert jobs == [] and ret["retcode"] == 1
    assert "does not name lab-printer a node of a cluster nuc1 manages" in ret["error"]


def test_an_event_naming_another_manager_starts_nothing(monkeypatch):
    ret, jobs = swarm_event(monkeypatch, "nuc1", manager="nuc2")
    assert jobs == [] and ret["retcode"] == 1


def test_an_unknown_tag_starts_nothing(monkeypatch):
    ret, jobs = swarm_event(monkeypatch, "nuc2", tag="ag/swarm/anything")
    assert jobs == [] and "not a swarm event" in ret["error"]


def test_a_job_outcome_counts_changes_and_failures():
    ret = {"a": {"result": True, "changes": {"x": 1}}, "b": {"result": False, "changes": {}},
           "c": {"result": True, "changes": {}}}
    assert runner._job_outcome(ret) == "1 changed, 1 FAILED"
    assert runner._job_outcome(["Rendering SLS failed"]).startswith("error: ")


def test_plan_says_what_it_cannot_know_after_a_change_the_later_steps_depend_on():
    lines = planned(step("tweaks", ["nuc1 ag-tweaks-site-domain-env: Changes would have been made"]),
                    step("secrets"), step("images"), step("stack"), step("migrate"))
    assert lines[:2] == ["tweaks: nuc1 ag-tweaks-site-domain-env: Changes would have been made",
                         "secrets: no change"]
    assert lines[2].startswith("images: not known yet: it depends on tweaks above")
    assert lines[2].endswith("the deploy may rebuild and push images")
    assert lines[3].startswith("stack: not known yet: it depends on tweaks, images above")
    assert lines[4].startswith("migrate: not known yet: it depends on tweaks, images, stack above")


def test_plan_says_a_new_secret_may_reach_the_database_and_the_stack():
    lines = planned(step("secrets", ["nuc1 ag-secrets-email-password: would be copied"]),
                    step("database"), step("stack"))
    assert lines[1].startswith("database: not known yet: it depends on secrets above")
    assert lines[2].startswith("stack: not known yet: it depends on secrets above")
    assert "secrets changed" in lines[2]


def test_preflight_of_an_invalid_pillar_names_its_errors_and_asks_no_node(monkeypatch):
    cluster = master(monkeypatch, ["nuc1", "nuc2"], ["nuc2: unknown label 'gpu'"])
    ret = runner.preflight()
    assert ret == {"errors": ["nuc2: unknown label 'gpu'"], "unanswered": []}
    assert cluster.jobs == []


def test_preflight_of_a_valid_pillar_names_the_nodes_that_do_not_answer(monkeypatch):
    cluster = master(monkeypatch, ["nuc1", "nuc2"], cluster=Cluster(answering=["nuc1"]))
    assert runner.preflight() == {"errors": [], "unanswered": ["nuc2"]}
    # who answers comes from the job that reads the nodes' addresses: no ping of its own
    assert sorted(cluster.jobs) == [("ag_swarm.label_holders", "nuc1"),
                                    ("grains.item", ["nuc1", "nuc2"])]


def test_validate_refuses_a_data_label_the_pillar_moves_off_its_data(monkeypatch):
    # the swarm has database on nuc2, the pillar puts it on nuc1: its data lives on nuc2
    master(monkeypatch, ["nuc1", "nuc2"], cluster=Cluster(holders={"database": ["nuc2"]}))
    ret = runner.validate()
    assert ret["valid"] is False
    assert ret["errors"] == ["label database would move from nuc2 to nuc1, but its data lives "
                             "on nuc2; move the data first, then approve this move once: add "
                             "'database: nuc2 -> nuc1' to autograder:cluster:allow_label_moves"]


def test_validate_refuses_an_address_on_no_interface_of_its_node(monkeypatch):
    addrs = {"nuc1": ["127.0.0.1", "198.18.9.11"], "nuc2": ["127.0.0.1", "198.18.9.77"]}
    master(monkeypatch, ["nuc1", "nuc2"], cluster=Cluster(addrs=addrs))
    assert runner.validate()["errors"] == [
        "autograder:cluster:nodes:nuc2:address: 198.18.9.12 is on no interface of nuc2 (it has "
        "198.18.9.77)"]


def test_a_loopback_address_is_on_its_node(monkeypatch):
    # a one-node cluster may advertise 127.0.0.1 (as the master-install test's does)
    addrs = {"nuc1": ["127.0.0.1"], "nuc2": ["127.0.0.1"]}
    pillar = {"manager": "nuc1", "nodes": {n: dict(v, address="127.0.0.1")
                                           for n, v in CLUSTER["nodes"].items()}}
    master(monkeypatch, ["nuc1", "nuc2"], cluster=Cluster(addrs=addrs), pillar=pillar)
    assert runner.validate()["errors"] == []


def test_validate_passes_what_the_live_cluster_agrees_with_and_skips_who_cannot_answer(
        monkeypatch):
    # as it is; a fresh cluster (no swarm); a manager without the project's modules yet
    # (synced later in the deploy) and a node down
    for holders, answering in ((None, ("nuc1", "nuc2")), ({}, ("nuc1", "nuc2")),
                               ("'ag_swarm.label_holders' is not available.", ("nuc1",))):
        master(monkeypatch, ["nuc1", "nuc2"], cluster=Cluster(holders=holders,
                                                               answering=answering))
        assert runner.validate() == {"valid": True, "errors": [], "minions": ["nuc1", "nuc2"],
                                     "retcode": 0}


def test_only_the_checks_before_a_change_ask_the_live_cluster(monkeypatch):
    # the reactor's answer to every join and ag.unanswered would otherwise wait on them
    cluster = master(monkeypatch, ["nuc1", "nuc2"])
    monkeypatch.setattr(runner.salt.client, "get_local_client", lambda mopts: LocalClient())
    runner.swarm_event("ag/swarm/node/joined", "nuc2", "nuc1")
    runner.unanswered()
    assert cluster.jobs == [("test.ping", ["nuc1", "nuc2"])]
    runner.preflight()
    assert {fun for fun, _ in cluster.jobs} == {"test.ping", "ag_swarm.label_holders", "grains.item"}


@pytest.mark.parametrize("command", ["preflight", "unanswered"])
@pytest.mark.parametrize("timeout", [0, -5, 2.5, "10", True])
def test_a_bad_timeout_is_refused_before_any_pillar_is_compiled(monkeypatch, command, timeout):
    master(monkeypatch, ["nuc1", "nuc2"])
    compiled = []
    runner.__salt__["pillar.show_pillar"] = compiled.append
    ret = getattr(runner, command)(timeout=timeout)
    assert ret == {"error": f"ag.{command}: timeout must be a whole number of seconds, "
                            f"not {timeout!r}", "retcode": 1}
    assert compiled == []


SALT_RENDER_ERROR = "Rendering SLS '{}' failed. Please see master log for details."


def test_a_pillar_file_the_master_cannot_render_is_named_with_its_line(monkeypatch, tmp_path):
    """Salt keeps a render error's cause for the master's log: ag.validate reads the file
    and names its line, and says nothing about the keys the broken file would have set."""
    (tmp_path / "site").mkdir()
    broken = tmp_path / "site" / "autograder.sls"
    broken.write_text("autograder:\n  cluster:\n    manager: nuc1\n   nodes: {}\n")
    (tmp_path / "templated.sls").write_text("{% set x = 1 %}\nkey: [\n")
    master(monkeypatch, ["nuc1", "nuc2"])
    runner.__opts__ = {"pillar_roots": {"base": [str(tmp_path)]}}
    errors = [SALT_RENDER_ERROR.format("site.autograder"), SALT_RENDER_ERROR.format("templated")]
    runner.__salt__["pillar.show_pillar"] = lambda target: {"_errors": errors}
    check = runner.validate()
    assert check["retcode"] == 1
    assert check["errors"] == [f"pillar: {errors[0]}",
                               f"{broken}:4: YAML: while parsing a block mapping; expected "
                               "<block end>, but found '<block mapping start>'",
                               f"pillar: {errors[1]}"]  # after Jinja, lines are not the file's


def test_an_invalid_pillar_is_a_sentence_from_the_runners_that_need_a_valid_one(monkeypatch):
    """salt-run prints a traceback for what a runner raises: these return the errors."""
    master(monkeypatch, ["nuc1"])
    runner.__salt__["pillar.show_pillar"] = lambda target: {}
    for command in (runner.unanswered, runner.status):
        ret = command()
        assert ret["retcode"] == 1
        assert ret["error"].startswith(f"ag.{command.__name__}: invalid autograder pillar:\nno "
                                       "pillar of any accepted minion has the autograder key")


def test_salt_s_leak_notices_are_kept_out_of_the_deploy_s_output_and_nothing_else():
    def record(level, msg):
        return logging.LogRecord("salt.runner", level, __file__, 1, msg, None, None)

    notice = ("unclosed RunnerClient <salt.runner.RunnerClient object at 0x7fc812531d50>; call "
              "``destroy()`` or use as a context manager")
    assert runner._salt_leak_notice(record(logging.WARNING, notice))
    assert not runner._salt_leak_notice(record(logging.WARNING, "unclosed quote in the pillar"))
    assert not runner._salt_leak_notice(record(logging.ERROR, "Minion nuc2 did not respond"))


class FakeCluster:
    """The manager and nodes as ag.roll reaches them through salt.execute: each node's
    dockerd restarts when ROLLED_SLS is applied there for real, its tasks end once drained."""

    def __init__(self, due, members=("nuc1", "nuc2", "nuc3"), manager="nuc1"):
        self.due, self.manager, self.log, self.jobs = set(due), manager, [], []
        self.nodes = {m: {"id": f"id-{m}", "hostname": m, "availability": "active",
                          "state": "ready", "role": "manager" if m == manager else "worker"}
                      for m in members}

    def execute(self, tgt, fun, arg=(), tgt_type="glob", kwarg=None, timeout=None):
        arg = list(arg)
        self.jobs.append(fun)
        if fun == "state.apply":
            test = kwarg["test"]
            self.log += [] if test else [("apply", n) for n in tgt]
            ret = {n: {"d": {"__id__": "docker-config-daemon-json-merged",
                             "result": None if test and n in self.due else True,
                             "changes": {"diff": 1} if n in self.due else {}, "comment": ""}}
                   for n in tgt}
            if not test:
                self.due -= set(tgt)
            return ret
        assert tgt == self.manager, fun
        return {tgt: self.on_manager(fun, *arg)}

    def on_manager(self, fun, *arg):
        if fun == "ag_swarm.swarm_info":
            return {"state": "active" if self.nodes else "inactive"}
        if fun == "ag_swarm.nodes":
            return [dict(n) for n in self.nodes.values()]
        if fun == "ag_swarm.node_update":
            node = next(n for n in self.nodes.values() if n["id"] == arg[0])
            node["availability"] = arg[1]
            self.log.append((arg[1], node["hostname"]))
            return dict(node)
        if fun == "ag_app.tasks":
            return []
        raise AssertionError(fun)


def roll(monkeypatch, cluster, test=False):
    monkeypatch.setattr(runner, "_cluster_pillar", lambda: {
        "cluster": {"manager": cluster.manager, "nodes": {m: {} for m in ("nuc1", "nuc2", "nuc3")}}})
    monkeypatch.setattr(runner, "__salt__", {"salt.execute": cluster.execute}, raising=False)
    clock = FakeClock()
    monkeypatch.setattr(runner, "time", SimpleNamespace(monotonic=clock.monotonic,
                                                        sleep=clock.sleep, strftime=time.strftime))
    return runner.roll(test=test)


def test_roll_drains_restarts_and_reactivates_one_node_at_a_time_the_manager_last(monkeypatch):
    cluster = FakeCluster(due=("nuc1", "nuc3"))
    rolled = roll(monkeypatch, cluster)
    assert list(rolled) == ["nuc3", "nuc1"]
    assert cluster.log == [("drain", "nuc3"), ("apply", "nuc3"), ("active", "nuc3"),
                           ("drain", "nuc1"), ("apply", "nuc1"), ("active", "nuc1")]
    assert roll(monkeypatch, cluster) == {}  # nothing left to restart


def test_roll_in_test_mode_names_the_nodes_and_changes_nothing(monkeypatch):
    cluster = FakeCluster(due=("nuc2",))
    assert list(roll(monkeypatch, cluster, test=True)) == ["nuc2"]
    assert cluster.log == [] and cluster.due == {"nuc2"}


def test_roll_of_a_node_whose_tasks_do_not_end_gives_it_back_and_restarts_nothing(monkeypatch):
    cluster = FakeCluster(due=("nuc2",))
    on_manager = cluster.on_manager
    cluster.on_manager = lambda fun, *arg: (
        [{"state": "running"}] if fun == "ag_app.tasks" else on_manager(fun, *arg))
    ret = roll(monkeypatch, cluster)
    assert ret["retcode"] == 1 and "nuc2" in ret["error"] and "drain_timeout" in ret["error"]
    assert cluster.log == [("drain", "nuc2"), ("active", "nuc2")]


def test_plan_names_the_nodes_the_roll_would_restart():
    assert planned(step("roll", ["nuc2: would be drained, its dockerd restarted, made active again"]),
                   step("swarm")) == [
        "roll: nuc2: would be drained, its dockerd restarted, made active again", "swarm: no change"]


def test_roll_with_nothing_due_asks_the_nodes_once(monkeypatch):
    cluster = FakeCluster(due=())
    assert roll(monkeypatch, cluster) == {} and cluster.jobs == ["state.apply"]


def test_roll_leaves_a_node_outside_the_swarm_to_the_node_states(monkeypatch):
    cluster = FakeCluster(due=("nuc3",), members=("nuc1", "nuc2"))
    assert roll(monkeypatch, cluster) == {} and cluster.log == []


def test_roll_before_there_is_a_swarm_leaves_the_restarts_to_the_node_states(monkeypatch):
    cluster = FakeCluster(due=("nuc1", "nuc2"), members=())
    assert roll(monkeypatch, cluster) == {} and cluster.log == []


class Upgrade(Cluster):
    """A cluster whose stack last ran `deployed` (None: never deployed by the product) and
    whose checkout now holds `checkout`."""

    def __init__(self, deployed, checkout):
        super().__init__()
        self.deployed, self.checkout, self.backups = deployed, checkout, []

    def execute(self, tgt, fun, arg=(), tgt_type="glob", timeout=None):
        answers = {
            "ag_app.revisions": lambda: {"deployed": self.deployed, "checkout": self.checkout},
            "ag_app.backup": lambda: self.backups.append(arg) or {
                "name": arg[4], "parts": {f"/srv/b/{arg[4]}/postgres.sql": 42}},
        }
        if fun not in answers:
            return super().execute(tgt, fun, arg, tgt_type, timeout)
        self.jobs.append((fun, tgt))
        return {tgt: answers[fun]()}


@pytest.mark.parametrize(("deployed", "checkout"),
                         [(None, "b" * 40), ("a" * 40, None), ("a" * 40, "a" * 40)])
def test_no_upgrade_no_backup(monkeypatch, deployed, checkout):
    cluster = master(monkeypatch, ["nuc1", "nuc2"], cluster=Upgrade(deployed, checkout))
    assert runner.upgrade_backup() == {} and cluster.backups == []
    assert [fun for fun, _ in cluster.jobs] == ["ag_app.revisions"]  # one call, to the manager


def test_an_upgrade_is_backed_up_on_the_database_node_first(monkeypatch):
    cluster = master(monkeypatch, ["nuc1", "nuc2"], cluster=Upgrade("a" * 40, "b" * 40))
    planned = runner.upgrade_backup(test=True)
    assert planned == {"backup": f"would be made on nuc1 ({'a' * 12} -> {'b' * 12})"}
    assert cluster.backups == []
    done = runner.upgrade_backup()
    ((backup_dir, keep, stack, checkout, name, revision),) = cluster.backups
    assert (backup_dir, keep, stack) == ("/srv/autograder-backups", 7, "ag-stack")
    assert revision == "a" * 40  # what the stack ran, for ag.rollback
    assert [fun for fun, _ in cluster.jobs].count("ag_app.revisions") == 2  # one per run
    assert name.endswith("-before-upgrade") and ("ag_app.backup", "nuc1") in cluster.jobs
    assert done == {"backup": f"{name} ({'a' * 12} -> {'b' * 12}): "
                              f"/srv/b/{name}/postgres.sql 42 bytes"}


OLD, NEW = "a" * 40, "b" * 40


class Rollback(Upgrade):
    """A cluster upgraded from OLD to NEW, with the backups `made` ({name: revision}) on the
    database node; the states applied, in order, with the pillar given them."""

    def __init__(self, made):
        super().__init__(NEW, NEW)
        self.made, self.applied = made, []

    def execute(self, tgt, fun, arg=(), tgt_type="glob", timeout=None, kwarg=None):
        answers = {
            "ag_app.backups_made": lambda: self.made,
            "git.describe": lambda: "2021.05.v4",
            "ag_app.restore": lambda: {"name": arg[-1], "files restored": 3},
            "state.apply": lambda: self.applied.append((tgt[0], arg[0], kwarg.get("pillar")))
            or {"s": {"__id__": "s", "result": True, "comment": "", "changes": {}}},
        }
        if fun not in answers:
            return super().execute(tgt, fun, arg, tgt_type, timeout)
        self.jobs.append((fun, tgt))
        return {tgt if isinstance(tgt, str) else tgt[0]: answers[fun]()}


def rollback(monkeypatch, made, **kwargs):
    cluster = master(monkeypatch, ["nuc1", "nuc2"], cluster=Rollback(made))
    autograder = {"cluster": CLUSTER, "app": {"git_url": "git://198.18.0.1/full-stack"}}
    runner.__salt__["pillar.show_pillar"] = lambda minion: {"autograder": autograder}
    return cluster, runner.rollback(**kwargs)


def test_a_rollback_backs_up_then_deploys_the_old_revision_then_restores_its_backup(monkeypatch):
    made = {"20261207-100000-before-upgrade": OLD, "20261207-110000": NEW,
            "20261207-100000": None}
    cluster, done = rollback(monkeypatch, made)
    (now,) = [arg for arg in cluster.backups]
    assert now[4].endswith("-before-rollback") and now[5] == NEW  # what was made since is kept
    old = {"autograder": {"app": {"revision": OLD}}}
    assert cluster.applied == [("nuc1", "ag.checkout", old), ("nuc1", "ag.tweaks", old),
                               ("nuc1", "ag.images", old), ("nuc1", "ag.secrets", old),
                               ("nuc1", "ag.stack", None), ("nuc1", "ag.stack", None)]
    assert [f for f, _ in cluster.jobs].index("ag_app.restore") > [
        f for f, _ in cluster.jobs].index("state.apply")  # the old release runs before its data
    assert "2021.05.v4" in done["rollback"] and "autograder:app:revision" in done["rollback"]
    assert now[4] in done["rollback"] and "20261207-100000-before-upgrade" in done["rollback"]


def test_a_rollback_in_test_mode_or_with_nothing_to_go_back_to_changes_nothing(monkeypatch):
    made = {"20261207-100000-before-upgrade": OLD}
    cluster, planned = rollback(monkeypatch, made, test=True)
    assert len(planned["rollback"]) == 4 and "2021.05.v4" in planned["rollback"][1]
    assert cluster.backups == [] and cluster.applied == []
    cluster, none = rollback(monkeypatch, {"20261207-100000": None})
    assert none["retcode"] == 1 and "no backup made before an upgrade" in none["error"]
    cluster, unknown = rollback(monkeypatch, made, name="20261207-120000")
    assert unknown["retcode"] == 1 and "is not there" in unknown["error"]
    cluster, same = rollback(monkeypatch, {"20261207-100000-before-upgrade": NEW})
    assert "already" in same["rollback"]
    assert cluster.backups == [] and cluster.applied == []


def test_plan_says_a_backup_before_the_upgrade_may_follow_a_checkout_it_cannot_make():
    assert planned(step("checkout", ["nuc1 ag-checkout: would move"]), step("backup"))[-1].startswith(
        "backup: not known yet: it depends on checkout above")


def state(sid, sls, run, result=True, changes=None, comment="ok"):
    return {f"x_|-{sid}_|-{sid}_|-f": {"__id__": sid, "__sls__": sls, "__run_num__": run,
                                       "result": result, "changes": changes or {},
                                       "comment": comment}}


class CheckingNodes:
    """Minions answering ag.check_steps' test jobs with `returns` {node: return}; the jobs."""

    def __init__(self, returns):
        self.returns, self.jobs = returns, []

    def client(self, mopts):
        return SimpleNamespace(cmd=self.cmd, destroy=lambda: None)

    def cmd(self, tgt, fun, arg, tgt_type, kwarg, timeout):
        self.jobs.append((tuple(tgt), arg[0], kwarg["test"], tuple(kwarg["sync_mods"])))
        return {node: self.returns[node] for node in tgt}


DEPLOY_STEPS = [("ag-deploy-roll", "ag_master.dockerd_rolled", "master"),
                ("ag-deploy-node-states", ["docker", "limits"], ["nuc1", "nuc2"]),
                ("ag-deploy-swarm", ["swarm"], ["nuc1", "nuc2"]),
                ("ag-deploy-tls", ["ag.tls"], []),
                ("ag-deploy-backup", "ag_master.backed_up_before_upgrade", "master"),
                ("ag-deploy-stack", ["ag.stack"], "nuc1")]


def check(monkeypatch, returns, due=None, upgrade=None):
    nodes = CheckingNodes(returns)
    monkeypatch.setattr(runner.salt.client, "get_local_client", nodes.client)
    asked = []
    monkeypatch.setattr(runner, "roll", lambda test: asked.append("roll") or (due or {}))
    monkeypatch.setattr(runner, "upgrade_backup",
                        lambda test: asked.append("backup") or (upgrade or {}))
    runner.__opts__ = {}
    return runner.check_steps(DEPLOY_STEPS), nodes.jobs, asked


def worker(**swarm):
    return {**state("docker-config", "docker.config", 0), **state("swarm-joined", "swarm.joined", 1, **swarm)}


def manager(**stack):
    return {**worker(), **state("docker-sdk-importable", "docker.sdk", 2),
            **state("ag-stack-deployed", "ag.stack", 3, **stack)}


def test_the_check_tests_each_node_s_steps_in_one_job_and_runs_nothing_when_nothing_would_change(
        monkeypatch):
    ret, jobs, asked = check(monkeypatch, {"nuc1": manager(), "nuc2": worker()})
    assert sorted(jobs) == [(("nuc1",), "docker,limits,swarm,ag.stack", True,
                             ("utils", "modules", "states")),
                            (("nuc2",), "docker,limits,swarm", True, ("utils", "modules", "states"))]
    assert [s["id"] for s in ret["steps"]] == ["ag-deploy-roll", "ag-deploy-node-states",
                                               "ag-deploy-swarm", "ag-deploy-backup",
                                               "ag-deploy-stack"]
    assert all(s["result"] is True for s in ret["steps"]) and ret["run"] == []
    # no state that restarts dockerd would change: the roll needs no job
    assert asked == ["backup"]


def test_the_deploy_runs_from_the_first_step_that_would_change_something(monkeypatch):
    joining = worker(result=None, changes={"swarm": "x"}, comment="nuc2 would join")
    ret, _, _ = check(monkeypatch, {"nuc1": manager(), "nuc2": joining})
    steps = {s["id"]: s for s in ret["steps"]}
    assert steps["ag-deploy-swarm"]["changes"] == ["nuc2 swarm-joined: nuc2 would join"]
    assert steps["ag-deploy-swarm"]["result"] is None
    assert ret["run"] == ["ag-deploy-swarm", "ag-deploy-backup", "ag-deploy-stack"]


def test_a_step_that_would_fail_runs_so_its_own_error_stops_the_deploy(monkeypatch):
    failing = manager(result=False, comment="no checkout at /srv/ag")
    ret, _, _ = check(monkeypatch, {"nuc1": failing, "nuc2": worker()})
    assert ret["run"] == ["ag-deploy-stack"]
    assert ret["steps"][-1]["comment"] == "nuc1 ag-stack-deployed: no checkout at /srv/ag"
    # SLS that do not compile together on a node (no docker SDK for ag_app's states yet): not
    # known, so the deploy runs from its first step, whose own run tells
    ret, _, _ = check(monkeypatch, {"nuc1": ["State 'ag_app.stack_deployed' was not found"],
                                    "nuc2": worker()})
    assert ret["run"][0] == "ag-deploy-node-states" and ret["steps"][1]["result"] is None
    assert ret["steps"][1]["changes"] == ["nuc1: not known yet, its steps did not test together: "
                                          "State 'ag_app.stack_deployed' was not found"]
    assert ret["steps"][-1]["changes"] == ["nuc1: not known yet (see ag-deploy-node-states)"]


def test_an_included_sls_counts_for_the_step_of_its_own_name_or_the_node_s_first(monkeypatch):
    returns = {"nuc1": {**manager(), **state("docker-sdk-importable", "docker.sdk", 2, result=None)},
               "nuc2": worker()}
    ret, _, _ = check(monkeypatch, returns)
    assert ret["run"][0] == "ag-deploy-node-states"  # docker.sdk is docker's, a node state


def test_the_roll_is_asked_only_when_a_dockerd_restarting_state_would_change(monkeypatch):
    daemon_json = {**state("docker-config-daemon-json-merged", "docker.config", 0, result=None,
                           changes={"diff": "x"})}
    ret, _, asked = check(monkeypatch, {"nuc1": manager(), "nuc2": {**worker(), **daemon_json}},
                          due={"nuc2": "would be drained, its dockerd restarted, made active again"})
    assert asked == ["roll", "backup"]
    assert ret["steps"][0]["changes"] == ["nuc2: would be drained, its dockerd restarted, made active again"]
    assert ret["run"][0] == "ag-deploy-roll"


ag_master = load("_states/ag_master.py", "ag_master")


def test_the_check_step_names_the_steps_that_need_nothing_and_where_the_deploy_runs_from():
    calm, due = step("roll"), step("swarm", ["nuc2 swarm-joined: nuc2 would join"])
    ag_master.__opts__ = {"test": False}
    ret = ag_master.checked("ag-deploy-check", [calm, due])
    assert ret == {"name": "ag-deploy-check", "result": True, "changes": {},
                   "comment": "nothing to change in roll; running from swarm on"}
    assert ag_master.checked("ag-deploy-check", [calm])["comment"] == (
        "every step checked, nothing to change: roll")
    ag_master.__opts__ = {"test": True}
    ret = ag_master.checked("ag-deploy-check", [calm, due])
    assert ret["result"] is None and ret["changes"] == {"steps": [calm, due]}
    assert ag_master.checked("ag-deploy-check", [calm])["changes"] == {}
    failing = step("tls", result=False, comment="no TLS key")
    assert ag_master.checked("ag-deploy-check", [calm, failing])["result"] is False


def test_an_upgrade_the_checkout_holds_is_the_step_the_deploy_runs_from(monkeypatch):
    ret, _, _ = check(monkeypatch, {"nuc1": manager(), "nuc2": worker()},
                      upgrade={"backup": "would be made on nuc1 (000000000000 -> 1234abcd1234)"})
    assert ret["run"] == ["ag-deploy-backup", "ag-deploy-stack"]
    assert ret["steps"][3]["changes"] == ["backup: would be made on nuc1 (000000000000 -> 1234abcd1234)"]


def test_salt_s_own_entries_without_an_id_count_for_the_node_s_first_step(monkeypatch):
    """A fresh node: Salt reports a state function it cannot load (no docker SDK yet) under
    a key of its own, without __id__ or __sls__."""
    missing = {"ag_app_|-ag-stack-deployed_|-ag-stack_|-stack_deployed": {
        "result": False, "changes": {}, "__run_num__": 9,
        "comment": "State 'ag_app.stack_deployed' was not found"}}
    ret, _, _ = check(monkeypatch, {"nuc1": {**manager(), **missing}, "nuc2": worker()})
    assert ret["run"][0] == "ag-deploy-node-states" and ret["steps"][1]["result"] is None
    assert ret["steps"][1]["changes"] == [
        "nuc1 ag-stack-deployed: not known yet: State 'ag_app.stack_deployed' was not found"]
