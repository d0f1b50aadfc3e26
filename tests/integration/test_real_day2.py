"""Issue 20 on the real stack: a site runs the real autograder-full-stack 2021.05.v4 (the bed's
copy) with a graded submission; setting app:revision to 2022.01.v1 and running ag.deploy
upgrades it (a backup first, the graders paused, the new release's migrations run before any
service rolls) and keeps every submission, and the new release grades; then `salt-run
ag.backup`, the site wiped, deployed again and `salt-run ag.restore` bring the submissions
and their files back, and a receipt signed before the wipe verifies again.
Marked real_stack: `AG_BED_ID=4 ./testbed test -m real_stack`."""

import copy
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
    deploy,
    minion_changes,
    services,
    sh,
    teardown,
    wait_converged,
)
from agreal import (
    DEPLOY_TIMEOUT,
    OLD_RELEASE,
    RELEASE,
    STUDENT,
    Api,
    api_token,
    bed_release,
    django_shell,
    graded,
    graded_project,
    receipts,
    release_deployed,
    submit,
    submit_and_grade,
    verification,
)

from bed.util import wait_for

pytestmark = pytest.mark.real_stack

SERVER = f"{CHECKOUT}/autograder-server"
GRADER = f"{STACK}_grader"


def nginx_renewed(bed):
    """Tier 1 only: nginx resolves django's name once, at its start, and without IPVS
    (endpoint_mode dnsrr, tests/standin/docker-compose.bed.yml) that name is the django
    task's own address, which a new django task changes; a site's VIP stays. So after a
    deploy that replaced django's task the bed restarts nginx, and waits until it answers."""
    sh(bed, MANAGER, f"docker service update -q --force {STACK}_nginx >/dev/null")
    wait_for(lambda: Api().request("GET", "gpg_public_key/", check=False)[0].status == 200, 120,
             "nginx answering with django behind it")


@pytest.fixture(scope="module")
def site(netns_bed, measured):
    """The old release deployed from no swarm, a project of the course graded once; the
    admin's and student's API in .admin and .student, the project and its submission (with
    its receipts) in .project and .first_submission."""
    with release_deployed(netns_bed, bed_release(OLD_RELEASE)) as bed:
        code, _, output = bed.first
        assert code == 0, output[-6000:]
        measured(f"ag.deploy of the real {OLD_RELEASE} from no swarm: {bed.seconds:.0f} s")
        bed.admin = Api(api_token(bed, ADMIN))
        bed.project = graded_project(bed.admin)  # enrols the student
        bed.student = Api(api_token(bed, STUDENT))
        bed.first_submission = submit_and_grade(bed.admin, bed.student, bed.project)
        bed.first_receipts = receipts(f"{COURSE} {bed.project['name']}")
        yield bed


def django_version(bed) -> str:
    (version,) = django_shell(bed, "import django; print('AG', django.get_version())")
    return version


def paused_seconds(bed, service: str) -> float:
    """How long SERVICE ran no task across the upgrade: from the end of its last task on the
    old release's image to the start of its first on the new one (Docker's task timestamps)."""
    image = sh(bed, MANAGER, f"docker service inspect -f "
                             f"'{{{{.Spec.TaskTemplate.ContainerSpec.Image}}}}' {service}")
    ids = sh(bed, MANAGER, f"docker service ps -q --no-trunc {service}").split()
    tasks = json.loads(sh(bed, MANAGER, "docker inspect " + " ".join(ids)))
    running = [t for t in tasks if t["Spec"]["ContainerSpec"]["Image"] == image
               and t["DesiredState"] == "running"]
    ended = [t for t in tasks if t["Spec"]["ContainerSpec"]["Image"] != image]
    assert running and ended, tasks

    def at(task):  # RFC 3339 with nanoseconds: seconds since the day began are enough here
        h, m, s = re.search(r"T(\d+):(\d+):([\d.]+)", task["Status"]["Timestamp"]).groups()
        return int(h) * 3600 + int(m) * 60 + float(s)

    return min(at(t) for t in running) - max(at(t) for t in ended)


def test_the_old_release_grades(site):
    assert site.first_submission["status"] == "finished_grading"
    assert float(site.first_submission["results"]["total_points"]) == 1
    assert django_version(site).startswith("3.1.")  # 2021.05.v4's Django


def test_a_database_made_with_upstream_s_password_takes_the_generated_one(site):
    """Issue 20.5 on the real postgres: a site that adopts the product has a database made
    with upstream's 'postgres' (here: set so in the running one, whose app then fails), and
    the deploy sets the generated password there before the stack rolls: the app answers."""
    (node,) = services(site)[f"{STACK}_postgres"][1]
    container = sh(site, node, f"docker ps -q -f label=com.docker.swarm.service.name={STACK}_postgres")
    site.exec(node, "docker", "exec", container, "sh", "-c",
              "echo \"ALTER ROLE CURRENT_USER PASSWORD 'postgres';\" | psql -q -U postgres postgres")
    assert site.admin.request("GET", "users/current/", check=False)[0].status >= 500
    code, steps, output = deploy(site, timeout=DEPLOY_TIMEOUT)
    assert code == 0, output[-6000:]
    assert list(minion_changes(steps["ag-deploy-database"])) == [(node, "ag-database-password")]
    assert site.admin("GET", "users/current/")["username"] == ADMIN


def test_a_dockerd_restarting_change_rolls_while_a_submission_is_graded(site, measured):
    """Issue 20.4 on the real stack: a daemon.json change while a submission (40 s of work)
    is being graded: ag.deploy's roll drains each node before its dockerd restarts, the
    grader node first, whose grader finishes the submission before it stops (its stop grace
    period); the submission is graded in full and the site serves again."""
    project = graded_project(site.admin, time_limit=60)
    submission = submit(site.student, project, b"sleep 40; echo hello\n")
    wait_for(lambda: site.admin("GET", f"submissions/{submission['pk']}/")["status"]
             == "being_graded", 120, "the grading to start")
    current = json.loads(sh(site, MANAGER, "cat /etc/docker/daemon.json"))
    uploads = 7 if current.get("max-concurrent-uploads") == 6 else 6  # a change on any bed
    pillar = copy.deepcopy(site.pillar)
    pillar["autograder"].setdefault("docker", {}).setdefault("daemon", {})[
        "max-concurrent-uploads"] = uploads
    site.write_pillar(pillar)
    began = time.monotonic()
    code, steps, output = deploy(site, timeout=DEPLOY_TIMEOUT, follow=True)
    rolled = time.monotonic() - began
    assert code == 0, output[-6000:]
    assert list(steps["ag-deploy-roll"]["changes"]) == [*sorted(set(site.nodes) - {MANAGER}),
                                                         MANAGER], output[-3000:]
    nginx_renewed(site)
    wait_converged(site)
    done = graded(site.admin, submission)
    assert done["status"] == "finished_grading", done
    assert float(done["results"]["total_points"]) == 1, done["results"]
    drains = re.findall(r"ag\.roll: (\S+): drained in (\d+) s", output)
    measured(f"ag.deploy rolling dockerd over {len(site.nodes)} nodes during a grading: "
             f"{rolled:.0f} s; drains {', '.join(f'{n} {s} s' for n, s in drains)}")
    site.pillar = pillar


def test_an_upgrade_keeps_every_submission_and_the_new_release_grades(site, measured):
    site.pillar = copy.deepcopy(site.pillar)
    site.pillar["autograder"]["app"]["revision"] = bed_release(RELEASE)
    site.write_pillar(site.pillar)
    began = time.monotonic()
    code, steps, output = deploy(site, timeout=DEPLOY_TIMEOUT)
    upgraded = time.monotonic() - began
    assert code == 0, output[-6000:]
    assert "-before-upgrade" in json.dumps(steps["ag-deploy-backup"]["changes"]), output[-3000:]
    (stack,) = [c for (_, sid), c in minion_changes(steps["ag-deploy-stack"]).items()
                if "content" in c]
    applied = stack["migrations"]["new"]
    assert applied and all(isinstance(name, str) for name in applied), stack
    assert GRADER in stack["paused"]["new"], stack
    assert f"{STACK}_apidocs" not in services(site)  # 2022.01.v1 dropped it
    nginx_renewed(site)
    wait_converged(site)
    assert django_version(site).startswith("3.2.")  # 2022.01.v1's Django

    before = site.first_submission
    kept = site.admin("GET", f"submissions/{before['pk']}/results/?feedback_category=max")
    assert kept["total_points"] == before["results"]["total_points"]
    graded = submit_and_grade(site.admin, site.student, site.project)
    assert graded["status"] == "finished_grading"
    assert float(graded["results"]["total_points"]) == 1, graded["results"]
    measured(f"the upgrade {OLD_RELEASE} -> {RELEASE}: ag.deploy {upgraded:.0f} s, to the first "
             f"grade of the new release {time.monotonic() - began:.0f} s; the grader paused "
             f"{paused_seconds(site, GRADER):.0f} s; {len(applied)} migrations applied")
    site.second_submission = graded


def test_a_backup_restored_onto_a_wiped_site_brings_the_submissions_and_receipts_back(
        site, measured):
    receipt = site.first_receipts[0]
    assert verification(receipt).startswith("Signature verification SUCCESS")
    began = time.monotonic()
    res = site.salt_raw("salt-run", "--out=json", "ag.backup")
    assert res.returncode == 0, res.stdout + res.stderr
    taken = json.loads(res.stdout)
    measured(f"ag.backup of the real {RELEASE}: {time.monotonic() - began:.0f} s, "
             + ", ".join(f"{part} {size / 2**20:.1f} MiB" for part, size in taken["parts"].items()))

    # the site lost: no swarm, no volumes (the database), no media_root or secrets dir
    teardown(site)
    sh(site, MANAGER, f"rm -rf {SERVER}/media_root {SERVER}/autograder/settings/secrets")
    code, _, output = deploy(site, timeout=DEPLOY_TIMEOUT)
    assert code == 0, output[-6000:]
    nginx_renewed(site)
    assert verification(receipt).startswith("Signature verification FAILED")  # a new GPG key

    began = time.monotonic()
    res = site.salt_raw("salt-run", "--out=json", "ag.restore", f"name={taken['name']}")
    assert res.returncode == 0, res.stdout + res.stderr
    nginx_renewed(site)
    wait_converged(site)
    measured(f"ag.restore onto the wiped site, until nginx answered again: "
             f"{time.monotonic() - began:.0f} s")
    admin = Api(api_token(site, ADMIN))
    for submission in (site.first_submission, site.second_submission):
        back = admin("GET", f"submissions/{submission['pk']}/results/?feedback_category=max")
        assert back["total_points"] == submission["results"]["total_points"]
        _, content = admin.request(
            "GET", f"submissions/{submission['pk']}/file/?filename=hello.sh")
        assert content == b"echo hello\n"  # media_root came back
    assert verification(receipt).startswith("Signature verification SUCCESS")


def test_a_rollback_brings_the_old_release_back_with_the_data_it_had(site, measured):
    """Issue 20.2: `salt-run ag.rollback` after the upgrade: the old release serves again (its
    images, its apidocs service), with the database as the upgrade's backup kept it (the
    submission made before the upgrade, not the one after, which the backup taken first
    keeps), and it grades; the pillar set to the release it names, a deploy changes nothing."""
    began = time.monotonic()
    res = site.salt_raw("salt-run", "--out=json", "ag.rollback", timeout=DEPLOY_TIMEOUT)
    assert res.returncode == 0, res.stdout + res.stderr
    said = json.loads(res.stdout)["rollback"]
    rolled = time.monotonic() - began
    nginx_renewed(site)
    wait_converged(site)
    assert django_version(site).startswith("3.1.")  # 2021.05.v4's Django
    assert f"{STACK}_apidocs" in services(site)
    admin, student = Api(api_token(site, ADMIN)), Api(api_token(site, STUDENT))
    before, after = site.first_submission, site.second_submission
    kept = admin("GET", f"submissions/{before['pk']}/results/?feedback_category=max")
    assert kept["total_points"] == before["results"]["total_points"]
    assert admin.request("GET", f"submissions/{after['pk']}/", check=False)[0].status == 404
    saved = re.search(r"in backup (\S+-before-rollback)", said).group(1)
    (database,) = [node for node, spec in site.pillar["autograder"]["cluster"]["nodes"].items()
                   if "database" in spec["labels"]]
    made = site.salt(database, "ag_app.backups_made", "/srv/autograder-backups")[database]
    upgraded = [name for name in made if name.endswith("-before-upgrade")][-1]
    assert made[saved] and made[saved] != made[upgraded]  # it ran the new release
    graded = submit_and_grade(admin, student, site.project)
    assert float(graded["results"]["total_points"]) == 1, graded["results"]
    measured(f"ag.rollback {RELEASE} -> {OLD_RELEASE}: {rolled:.0f} s, to the first grade of the "
             f"old release again {time.monotonic() - began:.0f} s; the newer data kept in {saved}")

    release = re.search(r"revision to (\S+) in the pillar", said).group(1)
    site.pillar["autograder"]["app"]["revision"] = release
    site.write_pillar(site.pillar)
    code, steps, output = deploy(site, timeout=DEPLOY_TIMEOUT)
    assert code == 0, output[-6000:]
    assert not [s for s, v in steps.items() if v["changes"]], output[-3000:]
