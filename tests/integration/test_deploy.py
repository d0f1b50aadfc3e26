"""Tier 1: `salt-run state.orchestrate ag.deploy` from nodes without a swarm to the stand-in
autograder running where the bed pillar's labels say, migrated and bootstrapped (issue 6). The
tests run in file order on one deploy: re-runs and test=True change nothing, a tweak rolls only
the service it concerns, bad input stops the run before any change, no secret is shown or
built into an image."""

import copy
import json

import pytest

STACK = "ag-stack"
MANAGER = "nuc1"
CHECKOUT = "/srv/autograder-full-stack"
OVERRIDE = f"/var/lib/ag-deploy/{STACK}.override.yml"  # on the manager
SECRETS = f"{CHECKOUT}/autograder-server/autograder/settings/secrets"
ADMIN, COURSE = "admin@example.edu", "EECS 280"


def deploy(bed, *args):
    """The orchestration → (exit code, {step id: step return}, the CLI's whole output)."""
    res = bed.salt_raw("salt-run", "--out=json", "state.orchestrate", "ag.deploy", *args)
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
    """The steps that changed something on a node (the sync step always reports its run)."""
    return {sid for sid, v in steps.items() if v["changes"] and sid != "ag-deploy-sync"}


def minion_changes(step):
    """{(minion, state id): changes} of one salt.state step."""
    return {(minion, s["__id__"]): s["changes"]
            for minion, states in (step["changes"].get("ret") or {}).items()
            for s in states.values() if s["changes"]}


def sh(bed, node, script, check=True):
    return bed.exec(node, "sh", "-ec", script, check=check).stdout


def task_ids(bed):
    """service → sorted IDs of its tasks that should run."""
    out = sh(bed, MANAGER, f"docker stack ps {STACK} --filter desired-state=running "
                           "--format '{{.Name}} {{.ID}}'")
    found = {}
    for line in out.splitlines():
        name, task = line.split()
        found.setdefault(name.split(".")[0], []).append(task)
    return {service: sorted(ids) for service, ids in found.items()}


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


def teardown(bed):
    """Back to nodes without a swarm, as the other tier-1 tests expect; the checkout's generated
    secrets and edits stay (a site's checkout keeps them too)."""
    sh(bed, MANAGER, f"docker stack rm {STACK} >/dev/null 2>&1 || true; "
                     "docker service rm registry >/dev/null 2>&1 || true; rm -rf /var/lib/ag-deploy")
    for node in sorted(bed.nodes, key=lambda n: n == MANAGER):  # the manager last
        sh(bed, node, f"""
            for i in $(seq 60); do
              [ -z "$(docker ps -aq -f label=com.docker.swarm.task)" ] && break
              sleep 0.5
            done
            docker swarm leave --force >/dev/null 2>&1 || true
            docker volume ls -q | grep -E '^({STACK}_|ag-registry$)' \
              | xargs -r docker volume rm >/dev/null 2>&1 || true
            """)


@pytest.fixture(scope="module")
def bed(netns_bed):
    """The bed pillar plus a bootstrap; the first deploy's result (on nodes without a swarm)
    in bed.first."""
    teardown(netns_bed)
    original = netns_bed.read_pillar()
    pillar = copy.deepcopy(original)
    pillar["autograder"]["app"]["bootstrap"] = {"admins": [ADMIN], "course": COURSE}
    netns_bed.write_pillar(pillar)
    netns_bed.pillar = pillar
    netns_bed.first = deploy(netns_bed)
    yield netns_bed
    netns_bed.write_pillar(original)
    teardown(netns_bed)


def test_deploy_runs_every_service_where_its_label_is(bed):
    code, steps, output = bed.first
    assert code == 0, output
    assert all(v["result"] is True for v in steps.values()), output
    assert list(steps)[-1] == "ag-deploy-migrate"
    labels = {node: set(spec["labels"]) for node, spec in
              bed.pillar["autograder"]["cluster"]["nodes"].items()}
    found = services(bed)
    assert f"{STACK}_django" in found and f"{STACK}_grader" in found and "registry" not in found
    for service, (constraints, nodes) in found.items():
        allowed = set(labels)
        for constraint in constraints:
            label = constraint.removeprefix("node.labels.").split("==")[0].strip()
            allowed &= {node for node in labels if label in labels[node]}
        # a tiny_* service whose label no node carries runs nowhere, as it should
        assert nodes <= allowed and bool(nodes) == bool(allowed), (service, constraints, nodes)


def test_migrations_and_bootstrap_ran_on_the_django_node(bed):
    _, steps, output = bed.first
    changes = minion_changes(steps["ag-deploy-migrate"])
    django_node = services(bed)[f"{STACK}_django"][1]
    assert {m for m, _ in changes} == django_node, output
    (node,) = django_node
    assert changes[(node, "ag-migrated")]["migrations"]["new"], output
    assert set(changes[(node, "ag-bootstrapped")]["bootstrap"]["new"]) == {
        f"superuser {ADMIN}", f"course {COURSE}", f"admin {ADMIN} of {COURSE}"}


def test_second_deploy_changes_nothing_and_restarts_no_task(bed):
    before = task_ids(bed)
    code, steps, output = deploy(bed)
    assert code == 0, output
    assert changed_steps(steps) == set(), output
    assert task_ids(bed) == before


def test_test_mode_changes_nothing_when_nothing_is_to_do(bed):
    before = task_ids(bed)
    code, steps, output = deploy(bed, "test=True")
    assert code == 0, output
    assert all(v["result"] in (True, None) for v in steps.values()), output
    assert changed_steps(steps) == set(), output
    assert task_ids(bed) == before


def test_a_tweak_is_planned_truthfully_then_rolls_only_its_service(bed):
    pillar = copy.deepcopy(bed.pillar)
    pillar["autograder"]["app"]["gunicorn_workers"] = 2
    bed.write_pillar(pillar)
    try:
        before = task_ids(bed)
        override = sh(bed, MANAGER, f"cat {OVERRIDE}")
        code, steps, output = deploy(bed, "test=True")
        assert code == 0, output
        assert changed_steps(steps) == {"ag-deploy-stack"}, output
        assert sh(bed, MANAGER, f"cat {OVERRIDE}") == override
        assert task_ids(bed) == before
        plan = runner(bed, "ag.plan")
        assert f"stack: {MANAGER} ag-stack-deployed: stack {STACK} would be deployed" in plan, plan
        assert "images: no change" in plan and "tweaks: no change" in plan, plan

        code, steps, output = deploy(bed)
        assert code == 0, output
        assert "--workers=2" in sh(bed, MANAGER, f"cat {OVERRIDE}")
        after = task_ids(bed)
        rolled = {s for s in before if after.get(s) != before[s]}
        assert rolled == {f"{STACK}_django"}, rolled
    finally:
        bed.write_pillar(bed.pillar)
        code, _, output = deploy(bed)
        assert code == 0, output


def test_a_changed_source_file_rebuilds_and_rolls_only_its_image(bed):
    added = f"{CHECKOUT}/ag-website-vue/src/ag-test-change.ts"
    before = task_ids(bed)
    sh(bed, MANAGER, f"echo 'export const CHANGED = 1;' > {added}")
    try:
        code, steps, output = deploy(bed)
        assert code == 0, output
        built = minion_changes(steps["ag-deploy-images"])[(MANAGER, "ag-images")]
        assert set(built) == {"127.0.0.1:5000/website"}, output
        after = task_ids(bed)
        assert {s for s in before if after.get(s) != before[s]} == {f"{STACK}_website"}
    finally:
        sh(bed, MANAGER, f"rm -f {added}")
        code, steps, output = deploy(bed)
    # back to the first content: its image is still in the registry, nothing is built
    assert code == 0 and "ag-deploy-images" not in changed_steps(steps), output


def test_status_shows_nodes_labels_and_where_services_run(bed):
    table = runner(bed, "ag.status")
    rows = {line.split()[0]: line.split() for line in table.splitlines() if line.strip()}
    for node, spec in bed.pillar["autograder"]["cluster"]["nodes"].items():
        assert rows[node][4] == ",".join(sorted(spec["labels"])), table
    assert rows["nuc1"][1:4] == ["manager", "active", "ready"], table
    assert rows["django"][1:4] == ["1/1", "yes", "nuc1"], table
    assert rows["grader"][3] == "nuc2" and rows["tiny_grader"][1] == "0/0", table


def test_plan_says_nothing_would_change(bed):
    plan = runner(bed, "ag.plan").splitlines()
    assert plan and all(line.endswith(": no change") for line in plan), plan
    assert [line.split(":")[0] for line in plan][-2:] == ["stack", "migrate"]


def test_bad_pillar_stops_before_any_change(bed):
    before = task_ids(bed)
    pillar = copy.deepcopy(bed.pillar)
    pillar["autograder"]["cluster"]["nodes"]["nuc2"]["labels"].append("database")
    bed.write_pillar(pillar)
    try:
        code, steps, output = deploy(bed)
    finally:
        bed.write_pillar(bed.pillar)
    assert code != 0 and steps == {}, output
    assert "database" in output and "nuc2" in output and "nothing was changed" in output
    assert task_ids(bed) == before


def test_missing_tls_key_stops_the_deploy_naming_node_and_file(bed):
    key = bed.pillar["autograder"]["app"].get("tls_key", "/etc/ssl/private/autograder.io.key.pem")
    sh(bed, MANAGER, f"mv {key} {key}.aside")
    try:
        code, steps, output = deploy(bed)
    finally:
        sh(bed, MANAGER, f"mv {key}.aside {key}")
    assert code != 0, output
    assert steps["ag-deploy-tls"]["result"] is False
    assert f"no TLS key at {key} on {MANAGER}" in output
    assert "ag-deploy-stack" not in steps or steps["ag-deploy-stack"]["result"] is False


def test_no_secret_in_the_output_or_any_image(bed):
    secrets = [sh(bed, MANAGER, f"cat {SECRETS}/{name}").strip() for name in ("secret_key", "db_password")]
    assert all(len(secret) >= 32 for secret in secrets)
    # the generated password is what the app uses, so the upstream default is gone
    assert f"AG_DB_PASSWORD={secrets[1]}\n" in sh(bed, MANAGER, f"cat {CHECKOUT}/autograder-server/_prod.env")
    _, _, output = deploy(bed, "test=True")
    plan = runner(bed, "ag.plan")
    for secret in secrets:
        assert secret not in output + plan + bed.first[2]
        for image in ("django", "grader"):
            found = sh(bed, MANAGER, f"docker save 127.0.0.1:5000/{image}:latest | grep -acF "
                                     f"'{secret}' || true").strip()
            assert found == "0", f"a secret is in the {image} image"
