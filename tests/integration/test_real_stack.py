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

import email
import email.policy
import http.client
import json
import re
import ssl
import time
import uuid

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
    teardown,
    with_bootstrap,
)
from browser import signed_in_page

from bed import config, images, netns, npm_rebuilt, pillar, upstream
from bed.util import wait_for
from tests import standin

pytestmark = pytest.mark.real_stack

RELEASE = "2022.01.v1"
# the bed's copy of RELEASE: the website's lock takes the bed's rebuild of a package the npm
# registry lost (bed/README.md)
BED_RELEASE = RELEASE + npm_rebuilt.BED_SUFFIX
DEPLOY_TIMEOUT = 7200  # the first build of the real images, with cold caches
SITE = config.SITE_DOMAIN
# on the NFS server node, as a site keeps its mail password (app:email:password_file)
EMAIL_PASSWORD_FILE = "/etc/autograder-email-password"
SCREENSHOT = config.ROOT / "artifacts/real-stack-course-list.png"
STUDENT = "student@example.edu"


def wipe_checkout(bed):
    """The shared checkout emptied (the stand-in's or the release's: one path for both)."""
    sh(bed, MANAGER, f"find {CHECKOUT} -mindepth 1 -maxdepth 1 -exec rm -rf {{}} +")


@pytest.fixture(scope="module")
def bed(netns_bed):
    """The release deployed by ag.deploy from nodes without a swarm (its first run in .first,
    its time in .seconds); afterwards the stand-in's images, checkout and pillar are back."""
    if not any(config.UPSTREAM_BUNDLES.glob("*.bundle")):
        pytest.skip(f"no release bundles in {config.UPSTREAM_BUNDLES}")
    started = upstream.up()
    images.build_all("real")
    for node in netns_bed.nodes:
        images.load_into(netns.node_exec, node, group="real")
    teardown(netns_bed)
    wipe_checkout(netns_bed)
    original = netns_bed.read_pillar()
    pillar = with_bootstrap(original)
    pillar["autograder"]["app"].update(
        git_url=upstream.UPSTREAM_GIT_URL, revision=BED_RELEASE, site_domain=SITE,
        email={"from_addr": f"autograder@{SITE}", "host": upstream.SMTP_HOST,
               "port": upstream.SMTP.port, "user": upstream.SMTP_USER,
               "password_file": EMAIL_PASSWORD_FILE})
    netns_bed.exec(MANAGER, "install", "-m", "600", str(upstream.SMTP_PASSWORD_FILE),
                   EMAIL_PASSWORD_FILE)
    netns_bed.pillar = pillar
    netns_bed.write_pillar(pillar)
    began = time.monotonic()
    # cloned first, as a site does before it adds its own compose file: the bed's (no IPVS)
    netns_bed.salt(MANAGER, "saltutil.sync_all")  # ag.checkout's ag_app state
    checkout = netns_bed.salt(MANAGER, "state.sls", "ag.checkout", timeout=1800)[MANAGER]
    assert all(state["result"] for state in checkout.values()), checkout
    netns_bed.exec(MANAGER, "cp", str(standin.BED_OVERRIDE), CHECKOUT)
    netns_bed.first = deploy(netns_bed, timeout=DEPLOY_TIMEOUT)
    netns_bed.seconds = time.monotonic() - began
    try:
        yield netns_bed
    finally:
        netns_bed.write_pillar(original)
        netns_bed.pillar = original
        netns_bed.exec(MANAGER, "rm", "-f", EMAIL_PASSWORD_FILE)
        teardown(netns_bed)
        wipe_checkout(netns_bed)
        for node in netns_bed.nodes:
            images.load_into(netns.node_exec, node)
        for daemon in started:
            daemon.stop()


def test_the_release_deploys_every_service_where_its_label_is(bed, measured):
    code, steps, output = bed.first
    assert code == 0, output[-6000:]
    measured(f"ag.deploy of the real {RELEASE} from no swarm: {bed.seconds:.0f} s")
    compose = sh(bed, MANAGER, f"docker stack config -c {CHECKOUT}/docker-compose.yml")
    assert compose  # the CLI reads the release's compose file as the deploy did
    deployed = services(bed)
    assert len(deployed) == 19, sorted(deployed)
    assert placement_errors(bed, bed.pillar) == []
    assert_migrated_and_bootstrapped_once(bed, steps, output)


def django_shell(bed, code: str) -> list:
    """CODE run by `manage.py shell` in the django task's container → what it printed on lines
    starting with 'AG ' (the rest is the app's logging)."""
    (node,) = services(bed)[f"{STACK}_django"][1]
    container = sh(bed, node, f"docker ps -q -f label=com.docker.swarm.service.name={STACK}_django")
    out = sh(bed, node, f'docker exec {container} python3 manage.py shell -c "{code}"')
    return [line[3:] for line in out.splitlines() if line.startswith("AG ")]


def test_the_real_models_hold_the_bootstrap(bed):
    (admins,) = django_shell(bed, "import json; from autograder.core.models import Course; "
                                  f"c = Course.objects.get(name={COURSE!r}); "
                                  "print('AG', json.dumps(sorted(u.username for u in c.admins.all())))")
    assert json.loads(admins) == [ADMIN]


def api_token(bed, username: str) -> str:
    """USERNAME's API token, as the site's sign-in would give it (DRF's Token model)."""
    (key,) = django_shell(bed, "from rest_framework.authtoken.models import Token; "
                               "from django.contrib.auth.models import User; "
                               f"u = User.objects.get(username={username!r}); "
                               "print('AG', Token.objects.get_or_create(user=u)[0].key)")
    return key


class Api:
    """autograder.io's REST API as the website calls it: https://SITE/api/ through nginx on the
    webserver node, the site's certificate checked, as USER's token (None: signed out)."""

    def __init__(self, token=None):
        self.address = pillar.web_address()
        self.token = token
        self.tls = ssl.create_default_context(
            cafile=str(netns.node_dir(MANAGER) / "etc" / config.SITE_TLS_FILES[0]))
        self.tls.check_hostname = False  # the bed's address, not SITE, is dialled

    def request(self, method: str, path: str, body=None, files=None):
        """→ (response, its body); `files`: {field: (file name, bytes)}, sent as a form."""
        headers = {"Host": SITE}
        if self.token:
            headers["Authorization"] = f"Token {self.token}"
        data = None
        if files:
            boundary = uuid.uuid4().hex
            data = b"".join(
                f'--{boundary}\r\nContent-Disposition: form-data; name="{field}"; '
                f'filename="{name}"\r\nContent-Type: application/octet-stream\r\n\r\n'.encode()
                + content + b"\r\n" for field, (name, content) in files.items()
            ) + f"--{boundary}--\r\n".encode()
            headers["Content-Type"] = f"multipart/form-data; boundary={boundary}"
        elif body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        conn = http.client.HTTPSConnection(self.address, 443, context=self.tls, timeout=60)
        try:
            conn.request(method, f"/api/{path}", data, headers)
            res = conn.getresponse()
            content = res.read()
        finally:
            conn.close()
        assert 200 <= res.status < 300, f"{method} /api/{path}: {res.status} {content[:3000]}"
        return res, content

    def __call__(self, method: str, path: str, body=None, files=None):
        return json.loads(self.request(method, path, body, files)[1] or "null")


def admin_course(admin: Api) -> dict:
    me = admin("GET", "users/current/")
    return next(c for c in admin("GET", f"users/{me['pk']}/courses_is_admin_for/")
                if c["name"] == COURSE)


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
    course = admin_course(admin)
    admin("POST", f"courses/{course['pk']}/students/", {"new_students": [STUDENT]})
    project = admin("POST", f"courses/{course['pk']}/projects/", {
        "name": f"hello {uuid.uuid4().hex[:8]}", "visible_to_students": True,
        "send_email_on_submission_received": True,
        "send_email_on_non_deferred_tests_finished": True})
    expected = admin("POST", f"projects/{project['pk']}/expected_student_files/",
                     {"pattern": "hello.sh"})
    suite = admin("POST", f"projects/{project['pk']}/ag_test_suites/",
                  {"name": "it runs", "student_files_needed": [expected]})
    case = admin("POST", f"ag_test_suites/{suite['pk']}/ag_test_cases/", {"name": "says hello"})
    admin("POST", f"ag_test_cases/{case['pk']}/ag_test_commands/", {
        "name": "sh hello.sh", "cmd": "sh hello.sh", "expected_stdout_source": "text",
        "expected_stdout_text": "hello\n", "points_for_correct_stdout": 1})
    student = Api(api_token(bed, STUDENT))
    group = student("POST", f"projects/{project['pk']}/groups/solo_group/")
    since = int(time.time())
    began = time.monotonic()
    submission = student("POST", f"groups/{group['pk']}/submissions/",
                         files={"submitted_files": ("hello.sh", b"echo hello\n")})

    def done():
        status = admin("GET", f"submissions/{submission['pk']}/")["status"]
        return status if status in ("finished_grading", "error") else None

    status = wait_for(done, 600, f"submission {submission['pk']} graded")
    measured(f"the grading round trip of one submission: {time.monotonic() - began:.0f} s")
    subject = f"{COURSE} {project['name']}"
    receipts = wait_for(lambda: received(subject, 2), 120, f"two receipts for {subject}")
    sandboxes = {node: sh(bed, node, f"docker events --since {since} --until {int(time.time())} "
                                     "--filter type=container --filter event=create "
                                     "--format '{{.Actor.Attributes.image}}'").split()
                 for node in bed.nodes}
    results = admin("GET", f"submissions/{submission['pk']}/results/?feedback_category=max")
    return dict(status=status, submission=submission, results=results, project=project,
                sandboxes=sandboxes, receipts=receipts)


def received(subject: str, count: int):
    """The messages the bed's mail server kept whose subject ends with SUBJECT, once there are
    COUNT of them."""
    found = [email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
             for path in sorted(upstream.SMTP_MAIL_DIR.glob("*.eml"))]
    found = [m for m in found if m["Subject"].endswith(subject)]
    return found if len(found) >= count else None


def test_a_submission_is_graded_in_a_real_sandbox(bed, graded):
    assert graded["status"] == "finished_grading"
    results = graded["results"]
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
        body = receipt.get_content()
        assert "BEGIN PGP SIGNED MESSAGE" in body
        (path,) = re.findall(r"/api/(check_email_submission_receipt_signature/[^/\s]+/)", body)
        _, page = Api().request("GET", path)
        assert page.decode().startswith("Signature verification SUCCESS"), page[:500]
        assert f"The submission's database ID is {pk}." in page.decode()


def test_a_second_deploy_changes_nothing_and_restarts_no_task(bed):
    before = task_ids(bed)
    code, steps, output = deploy(bed)
    assert code == 0, output[-4000:]
    assert changed_steps(steps) == set(), output[-4000:]
    assert task_ids(bed) == before
    code, steps, output = deploy(bed, "test=True")
    assert code == 0 and changed_steps(steps) == set(), output[-4000:]


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
