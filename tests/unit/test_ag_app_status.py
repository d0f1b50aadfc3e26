"""ag_app.stack_status on a fake engine (autospecced docker clients): a global service's
task that the swarm restarts (desired "ready" during its restart delay) is a wanted task
that does not run, so the service has not converged; its failed tasks are shown. An update
Docker paused after a new task failed has ended once every task runs the current spec."""

from unittest import mock

import docker

from tests.extensions import load, on_engine

ag_app = load("_modules/ag_app.py", "ag_app_status")
STACK = "com.docker.stack.namespace=ag-stack"
IMAGE = "127.0.0.1:5000/grader@sha256:1"


TEMPLATE = {"ContainerSpec": {"Image": IMAGE, "Env": ["A=2"]}}


def task(ident, desired, state, error=None, template=TEMPLATE):
    return {"ID": ident, "ServiceID": "svc1", "NodeID": "n2", "DesiredState": desired,
            "UpdatedAt": f"2026-12-07T05:00:0{ident[-1]}Z",
            # Docker fills in the task's runtime
            "Spec": {**template, "Runtime": "container"},
            "Status": {"State": state, "Timestamp": "2026-12-07T05:00:00Z",
                       **({"Err": error} if error else {})}}


def status(tasks, update=None):
    client = mock.create_autospec(docker.DockerClient, instance=True)
    client.api = mock.create_autospec(docker.APIClient, instance=True)
    client.api.timeout = 60
    client.api.services.return_value = [{"ID": "svc1", "Spec": {
        "Name": "ag-stack_grader", "Mode": {"Global": {}}, "TaskTemplate": TEMPLATE},
        **({"UpdateStatus": {"State": update}} if update else {})}]
    client.api.nodes.return_value = [{"ID": "n2", "Description": {"Hostname": "nuc2"}}]
    client.api.tasks.return_value = tasks
    on_engine(ag_app, client)
    return ag_app.stack_status("ag-stack")["grader"]


def test_a_global_task_waiting_out_its_restart_delay_is_wanted_and_not_running():
    grader = status([task("t1", "shutdown", "rejected", "No such image: " + IMAGE),
                     task("t2", "ready", "ready")])
    assert (grader["desired"], grader["running"], grader["converged"]) == (1, 0, False)
    assert grader["failed"] == ["t1"]
    assert [(t["id"], t["desired_state"]) for t in grader["tasks"]] == [("t2", "ready"),
                                                                        ("t1", "shutdown")]


def test_a_global_service_whose_tasks_run_has_converged():
    grader = status([task("t1", "running", "running")])
    assert (grader["desired"], grader["running"], grader["converged"]) == (1, 1, True)


def test_an_update_paused_by_a_failed_task_has_ended_when_the_current_spec_runs():
    grader = status([task("t1", "shutdown", "failed", "task: non-zero exit (1)"),
                     task("t2", "running", "running")], update="paused")
    assert (grader["running"], grader["converged"], grader["update"]) == (1, True, "paused")


def test_a_paused_update_whose_task_runs_the_old_spec_has_not_converged():
    old = {"ContainerSpec": {"Image": IMAGE, "Env": ["A=1"]}}  # same image, older settings
    grader = status([task("t1", "shutdown", "failed", "task: non-zero exit (1)"),
                     task("t2", "running", "running", template=old)], update="paused")
    assert (grader["running"], grader["converged"]) == (1, False)
