"""ag_app.converged tells a slow start from a crash loop: it waits as long as the stack gets
further (a service failing while another is still on its way included), fails at once when
every service left keeps failing, and after `timeout` seconds without progress; a failure
names each task's state, exit code, error and last log lines."""

import re

import pytest
from salt.exceptions import CommandExecutionError

from tests.extensions import FakeClock, load, module_fakes

RUNNING = 8  # ag_app.TASK_PROGRESS.index("running")
PREPARING = 5


def service(converged=False, running=0, furthest=-1, failed=(), tasks=()):
    return {"desired": 1, "running": running, "converged": converged, "update": None,
            "furthest": furthest, "failed": list(failed), "tasks": list(tasks)}


def failed_task(n, node="nuc1"):
    return {"id": f"task{n:08d}xyz", "node": node, "desired_state": "shutdown",
            "state": "failed", "since": 3, "exit_code": 1,
            "error": "task: non-zero exit (1)", "message": "started"}


class Stack:
    """The stack's status per poll, from a function of the poll's clock time."""

    def __init__(self, clock, at):
        self.clock, self.at, self.polls = clock, at, 0

    def status(self, name):
        self.polls += 1
        return self.at(self.clock.now)


READY = [{"hostname": n, "role": "worker", "state": "ready"} for n in ("nuc1", "nuc2")]


def converged(at, timeout=600, test=False, nodes=READY):
    clock = FakeClock()
    stack = Stack(clock, at)
    module = load("_states/ag_app.py", "ag_app")
    module.time = clock
    module.__opts__ = {"test": test}
    module.__salt__ = module_fakes({
        "ag_app.stack_status": stack.status,
        "ag_app.task_logs": lambda service, ids, tail: {
            i: ['nginx: [emerg] host not found in upstream "django"'] for i in ids},
        "ag_swarm.nodes": lambda: [dict(n, id=n["hostname"]) for n in nodes],
    })
    return module.converged("ag-stack", timeout=timeout, interval=2), clock


def nginx_failing(now):
    return service(furthest=RUNNING, failed=range(int(now // 10)),
                   tasks=[failed_task(n) for n in range(int(now // 10))][-3:])


def test_a_slow_start_is_waited_for_past_the_timeout_while_it_gets_further():
    # django pulls for 500 s, starts 300 s later (800 s > the 600 s timeout); nginx fails
    # every 10 s until django runs
    def at(now):
        if now < 500:
            django = service(furthest=PREPARING)
        elif now < 800:
            django = service(furthest=RUNNING - 1)
        else:
            django = service(converged=True, running=1, furthest=RUNNING)
        nginx = (nginx_failing(now) if now < 800
                 else service(converged=True, running=1, furthest=RUNNING))
        return {"django": django, "nginx": nginx}

    ret, clock = converged(at)
    assert ret["result"] is True, ret["comment"]
    assert ret["changes"] == {} and clock.now >= 800


def test_a_crash_loop_fails_soon_naming_exit_code_error_and_log():
    def at(now):
        return {"django": service(converged=True, running=1, furthest=RUNNING),
                "nginx": nginx_failing(now)}

    ret, clock = converged(at)
    assert ret["result"] is False and clock.now < 120
    comment = ret["comment"]
    assert "keeps failing" in comment and "ag-stack_nginx: 0/1 running" in comment
    assert re.search(r"\n  task task\d{8} on nuc1: failed 3s ago, exit 1, "
                     r"task: non-zero exit \(1\)\n", comment), comment
    assert '| nginx: [emerg] host not found in upstream "django"' in comment
    assert "ag-stack_django" not in comment


def test_no_progress_fails_after_the_timeout():
    def at(now):
        return {"django": service(converged=True, running=1, furthest=RUNNING),
                "postgres": service(furthest=PREPARING)}

    ret, clock = converged(at, timeout=60)
    assert ret["result"] is False and 60 < clock.now < 70
    assert "got no further for 60s" in ret["comment"]
    assert "ag-stack_postgres: 0/1 running; no task" in ret["comment"]


def test_failures_from_before_the_wait_do_not_count():
    def at(now):
        return {"nginx": service(furthest=RUNNING, failed=range(20)) if now < 30
                else service(converged=True, running=1, furthest=RUNNING)}

    ret, _ = converged(at)
    assert ret["result"] is True, ret["comment"]


def test_test_mode_reports_and_does_not_wait():
    ret, clock = converged(lambda now: {"nginx": nginx_failing(now)}, test=True)
    assert ret["result"] is None and clock.now == 0
    assert "would wait for stack ag-stack: ag-stack_nginx: 0/1 running" in ret["comment"]


@pytest.mark.parametrize("timeout", [30, 600])
def test_every_converged_service_succeeds_at_once(timeout):
    ret, clock = converged(lambda now: {"nginx": service(converged=True, running=1,
                                                         furthest=RUNNING)}, timeout=timeout)
    assert ret["result"] is True and clock.now == 0
    assert ret["comment"] == "all 1 services of ag-stack run their desired tasks"


BUSY = CommandExecutionError("reading stack ag-stack failed: rpc error: code = DeadlineExceeded "
                             "desc = context deadline exceeded")


def busy_until(seconds, then):
    """A manager whose engine does not answer in time for `seconds`, then says `then`."""
    def at(now):
        if now < seconds:
            raise BUSY
        return then
    return at


def test_an_engine_too_busy_to_answer_is_asked_again():
    ret, clock = converged(busy_until(120, {"django": service(converged=True, running=1,
                                                              furthest=RUNNING)}))
    assert ret["result"] is True and clock.now >= 120


def test_an_engine_that_never_answers_fails_after_the_timeout_naming_its_error():
    ret, clock = converged(busy_until(10_000, {}), timeout=60)
    assert ret["result"] is False and 60 < clock.now < 70
    assert "context deadline exceeded" in ret["comment"] and "Traceback" not in ret["comment"]


def test_a_node_the_swarm_marked_down_is_named_first():
    # seen on emulated guests: the manager, too busy starting the stack, missed its own
    # heartbeats; the swarm marked it Down and restarted every task on it, over and over
    manager_down = [{"hostname": "nuc1", "role": "manager", "state": "down"}, READY[1]]
    ret, _ = converged(lambda now: {"django": service(furthest=PREPARING)}, timeout=60,
                       nodes=manager_down)
    assert ret["result"] is False
    first = ret["comment"].splitlines()[1]
    assert first.startswith("node nuc1 (manager) is down: the swarm restarts its tasks")
    assert "autograder:swarm:dispatcher_heartbeat" in first
    assert "nuc2" not in ret["comment"]
