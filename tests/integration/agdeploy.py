"""What the integration tests of both tiers share: applying states, running the
orchestration and the runners, and reading the stack's services and tasks from the manager."""

import contextlib
import copy
import json
import time

from bed.util import wait_for

STACK = "ag-stack"
MANAGER = "nuc1"
CHECKOUT = "/srv/autograder-full-stack"
OVERRIDE = f"/var/lib/ag-deploy/{STACK}.override.yml"  # on the manager
SECRETS = f"{CHECKOUT}/autograder-server/autograder/settings/secrets"
ADMIN, COURSE = "admin@example.edu", "EECS 280"


def deploy(bed, *args, timeout=900, follow=False, orchestration="ag.deploy"):
    """The orchestration (ag.deploy, or ag.retire) → (exit code, {step id: step return}, the
    CLI's whole output); with `follow`, run as `salt-run ag.deploy`, which prints each step as
    it goes."""
    command = ["ag.deploy"] if follow else ["state.orchestrate", orchestration]
    res = bed.salt_raw("salt-run", "--out=json", *command, *args, timeout=timeout)
    output = res.stdout + res.stderr
    try:
        data = json.loads(res.stdout)["data"]
    except (ValueError, KeyError) as exc:
        raise AssertionError(f"ag.deploy gave no JSON:\n{output}") from exc
    (steps,) = data.values()
    if isinstance(steps, list):  # the rendering stopped: the orchestration's errors
        return res.returncode, {}, output
    return res.returncode, {v["__id__"]: v for v in steps.values()}, output


def runner(bed, fun):
    res = bed.salt_raw("salt-run", fun)
    assert res.returncode == 0, res.stdout + res.stderr
    return res.stdout


def changed_steps(steps):
    """The steps that changed something on a node (the sync step: only when it brought
    something); in test mode the ones the check step says would change."""
    checked = (steps.get("ag-deploy-check", {}).get("changes") or {}).get("steps", [])
    return ({sid for sid, v in steps.items() if v["changes"] and sid != "ag-deploy-check"}
            | {step["id"] for step in checked if step["changes"]})


def minion_changes(step):
    """{(minion, state id): changes} of one salt.state step."""
    return {(minion, s["__id__"]): s["changes"]
            for minion, states in (step["changes"].get("ret") or {}).items()
            for s in states.values() if s["changes"]}


def apply(bed, *args, nodes=None, timeout=900):
    """state.apply ARGS (an SLS list, or none for the highstate) on `nodes` (default all) →
    {node: [state returns]}; fails on a render error or a failed state. Waits for the returns
    themselves (-t): busy emulated guests miss find_job's short timeout."""
    nodes = nodes or bed.nodes
    out = bed.salt("-t", str(timeout), "-L", ",".join(nodes), "state.apply", *args,
                   timeout=timeout + 60)
    assert set(out) == set(nodes), out
    for node, ret in out.items():
        assert isinstance(ret, dict), f"{node}: {ret}"
        failed = {k: v["comment"] for k, v in ret.items() if v["result"] is False}
        assert not failed, f"{node}: {failed}"
    return {node: list(ret.values()) for node, ret in out.items()}


def changed(states):
    """The IDs of the states that changed something."""
    return [s["__id__"] for s in states if s["changes"]]


def sh(bed, node, script, check=True):
    """`sh -ec SCRIPT` on `node` → its output, stripped."""
    return bed.exec(node, "sh", "-ec", script, check=check).stdout.strip()


def task_ids(bed):
    """service → sorted IDs of its tasks that should run."""
    out = sh(bed, MANAGER, f"docker stack ps {STACK} --filter desired-state=running "
                           "--format '{{.Name}} {{.ID}}'")
    found = {}
    for line in out.splitlines():
        name, task = line.split()
        found.setdefault(name.split(".")[0], []).append(task)
    return {service: sorted(ids) for service, ids in found.items()}


def swarm_labels(bed):
    """{hostname: (state, labels set to true)} as the manager sees the swarm's nodes."""
    ids = sh(bed, MANAGER, "docker node ls -q").split()
    found = {}
    for node in json.loads(sh(bed, MANAGER, "docker node inspect " + " ".join(ids))):
        labels = sorted(k for k, v in (node["Spec"].get("Labels") or {}).items() if v == "true")
        found[node["Description"]["Hostname"]] = (node["Status"]["State"], labels)
    return found


def services(bed):
    """service → (placement constraints, nodes its running tasks are on)."""
    ids = sh(bed, MANAGER, f"docker service ls -q --filter label=com.docker.stack.namespace={STACK}")
    specs = json.loads(sh(bed, MANAGER, "docker service inspect " + " ".join(ids.split())))
    found = {}
    for spec in specs:
        name = spec["Spec"]["Name"]
        nodes = sh(bed, MANAGER, f"docker service ps {name} --filter desired-state=running "
                                 "--format '{{.Node}} {{.CurrentState}}'")
        found[name] = (spec["Spec"]["TaskTemplate"].get("Placement", {}).get("Constraints", []),
                       {line.split()[0] for line in nodes.splitlines() if " Running " in f" {line} "})
    return found


def placement_errors(bed, pillar):
    """Services whose running tasks are not on exactly the nodes their labels allow ([] if
    all are); a tiny_* service whose label no node carries runs nowhere, as it should."""
    labels = {node: set(spec["labels"]) for node, spec in
              pillar["autograder"]["cluster"]["nodes"].items()}
    errors = []
    for service, (constraints, nodes) in services(bed).items():
        allowed = set(labels)
        for constraint in constraints:
            label = constraint.removeprefix("node.labels.").split("==")[0].strip()
            allowed &= {node for node in labels if label in labels[node]}
        if not (nodes <= allowed and bool(nodes) == bool(allowed)):
            errors.append((service, constraints, sorted(nodes)))
    return errors


def with_bootstrap(pillar):
    """The pillar plus the bootstrap the deploy tests check."""
    pillar = copy.deepcopy(pillar)
    pillar["autograder"]["app"]["bootstrap"] = {"admins": [ADMIN], "course": COURSE}
    return pillar


@contextlib.contextmanager
def deployed_with_bootstrap(bed):
    """The bed deployed from nodes without a swarm, its pillar with the bootstrap (in
    bed.pillar); after, the pillar it had and those nodes again."""
    teardown(bed)
    original = bed.read_pillar()
    bed.pillar = with_bootstrap(original)
    bed.write_pillar(bed.pillar)
    code, _, output = deploy(bed)
    assert code == 0, output
    try:
        yield bed
    finally:
        bed.write_pillar(original)
        teardown(bed)


@contextlib.contextmanager
def in_checkout(bed, path, text):
    """`text` in the checkout's file `path` (on the manager) while the block runs; then the
    file removed and the deploy run again, its (exit code, steps, output) in the list the
    block got."""
    redeployed = []
    sh(bed, MANAGER, f"cat > {path} <<'EOF'\n{text}\nEOF")
    try:
        yield redeployed
    finally:
        sh(bed, MANAGER, f"rm -f {path}")
        redeployed.extend(deploy(bed))


def assert_migrated_and_bootstrapped_once(bed, steps, output):
    """The first deploy migrated and bootstrapped in the django task, on its node only."""
    changes = minion_changes(steps["ag-deploy-migrate"])
    django_node = services(bed)[f"{STACK}_django"][1]
    assert {m for m, _ in changes} == django_node, output
    (node,) = django_node
    assert changes[(node, "ag-migrated")]["migrations"]["new"], output
    assert set(changes[(node, "ag-bootstrapped")]["bootstrap"]["new"]) == {
        f"superuser {ADMIN}", f"course {COURSE}", f"admin {ADMIN} of {COURSE}"}


def teardown(bed):
    """Back to nodes without a swarm, as the other tier-1 tests expect; the checkout's generated
    secrets and edits stay (a site's checkout keeps them too)."""
    sh(bed, MANAGER, f"docker stack rm {STACK} >/dev/null 2>&1 || true; "
                     "docker service rm registry >/dev/null 2>&1 || true; rm -rf /var/lib/ag-deploy/*")
    for node in sorted(bed.nodes, key=lambda n: n == MANAGER):  # the manager last
        sh(bed, node, """
            for i in $(seq 60); do
              [ -z "$(docker ps -aq -f label=com.docker.swarm.task)" ] && break
              sleep 0.5
            done""")
        bed.leave_swarm(node)
        sh(bed, node, f"""
            docker volume ls -q | grep -E '^({STACK}_|ag-registry$)' \
              | xargs -r docker volume rm >/dev/null 2>&1 || true
            """)


def unconverged(bed):
    """The stack's services that do not run all their desired tasks yet (the manager's view,
    as ag.deploy's wait sees it); every service when the manager does not answer."""
    status = bed.salt(MANAGER, "ag_app.stack_status", STACK, timeout=60).get(MANAGER)
    if not isinstance(status, dict) or not status:
        return ["the manager gave no stack status"]
    return sorted(name for name, service in status.items() if not service["converged"])


def wait_converged(bed, timeout=300):
    """Seconds until every service of the stack runs its desired tasks; fails naming the
    services that did not within `timeout`."""
    started = time.monotonic()
    wait_for(lambda: not unconverged(bed), timeout,
             lambda: f"the stack to converge: {unconverged(bed)}", interval=2)
    return time.monotonic() - started


REGISTRY_CONTENT = """
import json, urllib.request
def get(path):
    return json.load(urllib.request.urlopen("http://127.0.0.1:5000/v2/" + path, timeout=10))
print(json.dumps({repo: sorted(get(repo + "/tags/list")["tags"] or [])
                  for repo in get("_catalog")["repositories"]}))
"""
COURSES = ("import urllib.request as u; print(u.urlopen(u.Request('http://127.0.0.1:8000/api/"
           "courses/', headers={'Host': 'autograder.io'}), timeout=10).read().decode())")


def kept_data(bed):
    """What a fault must not lose: the courses in the django stand-in's database (its API, in
    the django task) and every repository and tag in the registry."""
    (django_node,) = services(bed)[f"{STACK}_django"][1]
    container = sh(bed, django_node, f"docker ps -q -f label=com.docker.swarm.service.name="
                                     f"{STACK}_django").split()[0]
    courses = json.loads(bed.exec(django_node, "docker", "exec", container, "python3", "-c",
                                  COURSES).stdout)
    registry = json.loads(bed.exec(MANAGER, "python3", "-c", REGISTRY_CONTENT).stdout)
    return {"courses": courses, "registry": registry}
