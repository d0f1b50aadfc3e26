"""What the real-stack sessions share: the real release deployed by ag.deploy on tier 1 with
a site's settings (its domain, its mail server), and the site used as its people use it:
the REST API through nginx, a project graded, the receipts the mail server got."""

import contextlib
import email
import email.policy
import http.client
import json
import re
import ssl
import time
import uuid

import pytest
from agdeploy import CHECKOUT, COURSE, MANAGER, STACK, deploy, services, sh, teardown, with_bootstrap

from bed import config, images, netns, npm_rebuilt, pillar, upstream
from bed.util import wait_for
from tests import standin

OLD_RELEASE, RELEASE = "2021.05.v4", "2022.01.v1"


def bed_release(release: str) -> str:
    """The bed's copy of RELEASE: the website's lock takes the bed's rebuild of a package the
    npm registry lost (bed/README.md)."""
    return release + npm_rebuilt.BED_SUFFIX


DEPLOY_TIMEOUT = 7200  # the first build of the real images, with cold caches
SITE = config.SITE_DOMAIN
# on the NFS server node, as a site keeps its mail password (app:email:password_file)
EMAIL_PASSWORD_FILE = "/etc/autograder-email-password"
STUDENT = "student@example.edu"


def wipe_checkout(bed):
    """The shared checkout emptied (the stand-in's or the release's: one path for both)."""
    sh(bed, MANAGER, f"find {CHECKOUT} -mindepth 1 -maxdepth 1 -exec rm -rf {{}} +")


def site_pillar(original: dict, revision: str) -> dict:
    """The bed's pillar with the bootstrap, REVISION of the real full stack and the site's
    domain and mail server."""
    site = with_bootstrap(original)
    site["autograder"]["app"].update(
        git_url=upstream.UPSTREAM_GIT_URL, revision=revision, site_domain=SITE,
        email={"from_addr": f"autograder@{SITE}", "host": upstream.SMTP_HOST,
               "port": upstream.SMTP.port, "user": upstream.SMTP_USER,
               "password_file": EMAIL_PASSWORD_FILE})
    return site


@contextlib.contextmanager
def release_deployed(bed, revision: str):
    """REVISION deployed by ag.deploy from nodes without a swarm (its first run in bed.first,
    its time in bed.seconds); afterwards the stand-in's images, checkout and pillar are back."""
    if not any(config.UPSTREAM_BUNDLES.glob("*.bundle")):
        pytest.skip(f"no release bundles in {config.UPSTREAM_BUNDLES}")
    started = upstream.up()
    images.build_all("real")
    for node in bed.nodes:
        images.load_into(netns.node_exec, node, group="real")
    teardown(bed)
    wipe_checkout(bed)
    original = bed.read_pillar()
    bed.exec(MANAGER, "install", "-m", "600", str(upstream.SMTP_PASSWORD_FILE),
             EMAIL_PASSWORD_FILE)
    bed.pillar = site_pillar(original, revision)
    bed.write_pillar(bed.pillar)
    began = time.monotonic()
    # cloned first, as a site does before it adds its own compose file: the bed's (no IPVS)
    bed.salt(MANAGER, "saltutil.sync_all")  # ag.checkout's ag_app state
    checkout = bed.salt(MANAGER, "state.sls", "ag.checkout", timeout=1800)[MANAGER]
    assert all(state["result"] for state in checkout.values()), checkout
    bed.exec(MANAGER, "cp", str(standin.BED_OVERRIDE), CHECKOUT)
    bed.first = deploy(bed, timeout=DEPLOY_TIMEOUT)
    bed.seconds = time.monotonic() - began
    try:
        yield bed
    finally:
        bed.write_pillar(original)
        bed.pillar = original
        bed.exec(MANAGER, "rm", "-f", EMAIL_PASSWORD_FILE)
        teardown(bed)
        wipe_checkout(bed)
        for node in bed.nodes:
            images.load_into(netns.node_exec, node)
        for daemon in started:
            daemon.stop()


def django_shell(bed, code: str) -> list:
    """CODE run by `manage.py shell` in the django task's container → what it printed on lines
    starting with 'AG ' (the rest is the app's logging)."""
    (node,) = services(bed)[f"{STACK}_django"][1]
    container = sh(bed, node, f"docker ps -q -f label=com.docker.swarm.service.name={STACK}_django")
    out = sh(bed, node, f'docker exec {container} python3 manage.py shell -c "{code}"')
    return [line[3:] for line in out.splitlines() if line.startswith("AG ")]


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

    def request(self, method: str, path: str, body=None, files=None, check=True):
        """→ (response, its body); `files`: {field: (file name, bytes)}, sent as a form;
        `check`: an answer other than 2xx fails."""
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
        assert not check or 200 <= res.status < 300, f"{method} /api/{path}: {res.status} {content[:3000]}"
        return res, content

    def __call__(self, method: str, path: str, body=None, files=None):
        return json.loads(self.request(method, path, body, files)[1] or "null")


def admin_course(admin: Api) -> dict:
    me = admin("GET", "users/current/")
    return next(c for c in admin("GET", f"users/{me['pk']}/courses_is_admin_for/")
                if c["name"] == COURSE)


def graded_project(admin: Api, time_limit: int = 10) -> dict:
    """A project of the bootstrap's course, made by its admin, whose one test runs the
    student's hello.sh (for at most TIME_LIMIT seconds, the app's default 10) and checks what
    it prints, the student enrolled; receipts on."""
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
        "expected_stdout_text": "hello\n", "points_for_correct_stdout": 1,
        "time_limit": time_limit})
    return project


def submit(student: Api, project: dict, script: bytes = b"echo hello\n") -> dict:
    """The student's hello.sh (SCRIPT) submitted to PROJECT, a group of one made the first
    time → the submission as the API made it."""
    groups = student("GET", f"users/{student('GET', 'users/current/')['pk']}/groups_is_member_of/")
    group = next((g for g in groups if g["project"] == project["pk"]), None) or student(
        "POST", f"projects/{project['pk']}/groups/solo_group/")
    return student("POST", f"groups/{group['pk']}/submissions/",
                   files={"submitted_files": ("hello.sh", script)})


def graded(admin: Api, submission: dict, timeout: float = 600) -> dict:
    """SUBMISSION once graded (or failed), with its results (max feedback) in 'results'."""
    def done():
        now = admin("GET", f"submissions/{submission['pk']}/")
        return now if now["status"] in ("finished_grading", "error") else None

    found = wait_for(done, timeout, f"submission {submission['pk']} graded")
    found["results"] = admin("GET", f"submissions/{submission['pk']}/results/"
                                    "?feedback_category=max")
    return found


def submit_and_grade(admin: Api, student: Api, project: dict, timeout: float = 600) -> dict:
    """The student's hello.sh submitted to PROJECT and graded (graded())."""
    return graded(admin, submit(student, project), timeout)


def receipts(subject: str, count: int = 2, timeout: float = 120) -> list:
    """The messages the bed's mail server kept whose subject ends with SUBJECT, once there are
    COUNT of them."""
    def kept():
        found = [email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
                 for path in sorted(upstream.SMTP_MAIL_DIR.glob("*.eml"))]
        found = [m for m in found if m["Subject"].endswith(subject)]
        return found if len(found) >= count else None

    return wait_for(kept, timeout, f"{count} receipts for {subject}")


def verification(receipt) -> str:
    """The app's verification page that the link in RECEIPT (a message of receipts()) opens,
    as a reader opens it, signed out."""
    (path,) = re.findall(r"/api/(check_email_submission_receipt_signature/[^/\s]+/)",
                         receipt.get_content())
    return Api().request("GET", path, check=False)[1].decode()
