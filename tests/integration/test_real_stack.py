"""Issue 17.4 to 17.7: `salt-run state.orchestrate ag.deploy`, unchanged, takes the tier 1 bed
from nodes without a swarm to the REAL autograder-full-stack 2022.01.v1 (the bed's copy,
served by its git daemon, built from its own Dockerfiles on the look-alike bases of
bed/real_bases.py):
every service of its compose file where the labels say, the real `manage.py migrate` on the
real postgres, the bootstrap through the real models; a browser on the bed shows the admin
the course; a submission is graded in a real sandbox and its receipts reach the site's mail
server signed; a second deploy changes nothing.
Marked real_stack (the first build of the real images takes long; cached after): run with
`AG_BED_ID=4 ./testbed test -m real_stack`. The browser's screenshot is kept in SCREENSHOT."""

import json
import re
import time

import pytest
from agdeploy import (
    ADMIN,
    CHECKOUT,
    COURSE,
    MANAGER,
    STACK,
    assert_migrated_and_bootstrapped_once,
    changed_steps,
    deploy,
    placement_errors,
    services,
    sh,
    task_ids,
)
from agreal import (
    RELEASE,
    SITE,
    STUDENT,
    Api,
    admin_course,
    api_token,
    bed_release,
    django_shell,
    graded_project,
    receipts,
    release_deployed,
    submit_and_grade,
    verification,
)
from browser import signed_in_page

from bed import config, netns, pillar

pytestmark = pytest.mark.real_stack

SCREENSHOT = config.ROOT / "artifacts/real-stack-course-list.png"


@pytest.fixture(scope="module")
def bed(netns_bed):
    with release_deployed(netns_bed, bed_release(RELEASE)) as deployed:
        yield deployed


def test_the_release_deploys_every_service_where_its_label_is(bed, measured):
    code, steps, output = bed.first
    assert code == 0, output[-6000:]
    measured(f"ag.deploy of the real {RELEASE} from no swarm: {bed.seconds:.0f} s; its steps "
             "over a second: " + ", ".join(f"{sid} {step['duration'] / 1000:.0f} s"
                                          for sid, step in steps.items()
                                          if step["duration"] >= 1000))
    compose = sh(bed, MANAGER, f"docker stack config -c {CHECKOUT}/docker-compose.yml")
    assert compose  # the CLI reads the release's compose file as the deploy did
    deployed = services(bed)
    assert len(deployed) == 19, sorted(deployed)
    assert placement_errors(bed, bed.pillar) == []
    assert_migrated_and_bootstrapped_once(bed, steps, output)


def test_the_real_models_hold_the_bootstrap(bed):
    (admins,) = django_shell(bed, "import json; from autograder.core.models import Course; "
                                  f"c = Course.objects.get(name={COURSE!r}); "
                                  "print('AG', json.dumps(sorted(u.username for u in c.admins.all())))")
    assert json.loads(admins) == [ADMIN]


def test_a_browser_on_the_bed_shows_the_admin_the_course(bed, measured):
    """What the admin sees: the real website, signed in (the site's token cookie), its course
    list read through nginx, gunicorn and django. The browser runs on a grading node's
    network, as a lab machine on the campus network would."""
    campus = bed.nodes[-1]
    text = signed_in_page(netns.netns(campus), SITE, pillar.web_address(),
                          {"token": api_token(bed, ADMIN)}, COURSE, SCREENSHOT,
                          config.BED_DIR / "chromium-profile")
    assert "New Course" in text  # the admin's view of the course list
    assert SCREENSHOT.read_bytes().startswith(b"\x89PNG")
    measured(f"the signed-in course list as Chromium showed it: {SCREENSHOT}")


def test_the_api_answers_through_nginx_with_the_course(bed):
    admin = Api(api_token(bed, ADMIN))
    res, _ = admin.request("GET", "users/current/")
    assert res.getheader("Server", "").startswith("nginx")
    assert admin_course(admin)["name"] == COURSE
    res, body = Api().request("GET", "gpg_public_key/")  # signed out: the receipts' key
    assert b"BEGIN PGP PUBLIC KEY BLOCK" in body


@pytest.fixture(scope="module")
def graded(bed, measured):
    """Through the real API: the admin makes a project whose one test runs the student's
    hello.sh and checks what it prints; a student submits it; then wait until it is graded.
    → the submission, its results (max feedback), the project, the images of the containers
    the grading nodes created meanwhile, and the receipts the mail server got."""
    admin = Api(api_token(bed, ADMIN))
    project = graded_project(admin)
    student = Api(api_token(bed, STUDENT))
    since = int(time.time())
    began = time.monotonic()
    submission = submit_and_grade(admin, student, project)
    measured(f"the grading round trip of one submission: {time.monotonic() - began:.0f} s")
    received = receipts(f"{COURSE} {project['name']}")
    sandboxes = {node: sh(bed, node, f"docker events --since {since} --until {int(time.time())} "
                                     "--filter type=container --filter event=create "
                                     "--format '{{.Actor.Attributes.image}}'").split()
                 for node in bed.nodes}
    return dict(submission=submission, project=project, sandboxes=sandboxes,
                receipts=received)


def test_a_submission_is_graded_in_a_real_sandbox(bed, graded):
    assert graded["submission"]["status"] == "finished_grading"
    results = graded["submission"]["results"]
    assert (float(results["total_points"]), float(results["total_points_possible"])) == (1, 1), \
        results
    graders = {node for node, spec in bed.pillar["autograder"]["cluster"]["nodes"].items()
               if "grader" in spec["labels"]}
    assert {n for n, created in graded["sandboxes"].items()
            if "jameslp/autograder-sandbox:3.1.2" in created} == graders, graded["sandboxes"]


def test_the_receipts_reach_the_mail_server_signed_and_verify_on_the_site(graded):
    """Both receipts (received, score summary) went to the student through the site's mail
    server (STARTTLS, its user and the password of app:email:password_file); the link each
    carries opens the app's verification page, which says the signature holds."""
    pk = graded["submission"]["pk"]
    assert sorted(m["Subject"].split(":")[0] for m in graded["receipts"]) == [
        "Submission Received", "Submission Summary"]
    for receipt in graded["receipts"]:
        assert receipt["To"] == STUDENT
        assert "BEGIN PGP SIGNED MESSAGE" in receipt.get_content()
        page = verification(receipt)
        assert page.startswith("Signature verification SUCCESS"), page[:500]
        assert f"The submission's database ID is {pk}." in page


def test_a_second_deploy_changes_nothing_and_restarts_no_task(bed, measured):
    before = task_ids(bed)
    began = time.monotonic()
    code, steps, output = deploy(bed)
    assert code == 0, output[-4000:]
    assert changed_steps(steps) == set(), output[-4000:]
    assert task_ids(bed) == before
    # the real images' size is no part of a no-op: it is the check alone (issue 21.4)
    assert list(steps) == ["ag-deploy-check"], output[-4000:]
    noop = time.monotonic() - began
    began = time.monotonic()
    code, steps, output = deploy(bed, "test=True")
    assert code == 0 and changed_steps(steps) == set(), output[-4000:]
    measured(f"a no-op ag.deploy of the real stack: {noop:.1f} s; its test=True run "
             f"{time.monotonic() - began:.1f} s")


UNITS = {"B": 1, "KiB": 2**10, "MiB": 2**20, "GiB": 2**30}


def test_the_memory_the_running_stack_takes(bed, measured):
    """What the release's containers use on each node (docker stats), for the site's sizing."""
    used = {}
    for node in bed.nodes:
        lines = sh(bed, node, "docker stats --no-stream --format '{{.Name}} {{.MemUsage}}'")
        for line in lines.splitlines():
            name, usage = line.split(" ", 1)
            if name.startswith(f"{STACK}_"):
                amount, unit = re.fullmatch(r"([\d.]+)(\w+)", usage.split(" / ")[0]).groups()
                used.setdefault(node, {})[name.split(".")[0]] = float(amount) * UNITS[unit]
    running = {service for per_node in used.values() for service in per_node}
    assert running == {name for name, (_, nodes) in services(bed).items() if nodes}
    for node, per_service in sorted(used.items()):
        measured(f"{node}: {sum(per_service.values()) / 2**20:.0f} MiB in "
                 f"{len(per_service)} containers of the real stack")
    measured(f"the real stack: {sum(sum(v.values()) for v in used.values()) / 2**20:.0f} MiB")
