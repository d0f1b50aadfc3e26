"""The stand-in autograder-full-stack checkout deploys on tier 1 the way the guide deploys the
real one, done by hand with the docker CLI (test scaffolding, not the product): swarm and the
bed pillar's labels, the registry service (host mode on the registry node, a socat stand-in for
the routing mesh on the others), build + push of the compose file's images, `docker stack
deploy` of the unchanged compose file plus the bed override. Every service converges on the
nodes its label names; migrate and bootstrap leave persistent, idempotent results."""

import json
import shutil
import time

import pytest
import yaml
from agdeploy import sh

from bed import config, netns
from bed.util import wait_for
from tests import standin

STACK = "standin-test"  # not the product's ag-stack: its volumes never meet a product deploy
CHECKOUT = netns.CHECKOUT
SHIM_PIDFILE = "/run/standin-test-socat-5000.pid"
CERTS = ("/etc/ssl/certs/autograder.io.cert", "/etc/ssl/private/autograder.io.key.pem")


def tasks(bed, manager):
    """service → [(node, state, error)] of the tasks that should run."""
    out = sh(bed, manager, f"docker stack ps {STACK} --filter desired-state=running "
                           "--format '{{json .}}'")
    found = {}
    for line in out.splitlines():
        t = json.loads(line)
        service = t["Name"].split(".")[0][len(STACK) + 1:]
        found.setdefault(service, []).append((t["Node"], t["CurrentState"], t["Error"]))
    return found


def converged(bed, manager):
    out = sh(bed, manager, f"docker stack services {STACK} --format '{{{{.Name}}}} {{{{.Replicas}}}}'")
    replicas = dict(line.split()[:2] for line in out.splitlines())
    return bool(replicas) and all(r.split("/")[0] == r.split("/")[1] for r in replicas.values())


def container(bed, node, service):
    cid = sh(bed, node, f"docker ps -q -f label=com.docker.swarm.service.name={STACK}_{service}")
    assert cid.strip(), f"no {service} container on {node}"
    return cid.split()[0]


def teardown(bed, nodes, manager, made):
    """Undo what the fixture made, nothing else: a swarm, network or registry that was there
    before stays."""
    sh(bed, manager, f"docker stack rm {STACK} >/dev/null 2>&1 || true")
    if made["registry"]:
        sh(bed, manager, "docker service rm registry >/dev/null 2>&1 || true")
    volumes = f"{STACK}_" + ("|ag-registry$" if made["registry"] else "")
    for node in nodes:
        sh(bed, node, f"""
            [ -s {SHIM_PIDFILE} ] && kill $(cat {SHIM_PIDFILE}) 2>/dev/null || true
            rm -f {SHIM_PIDFILE} {' '.join(made["certs"].get(node, []))}
            for i in $(seq 60); do
              [ -z "$(docker ps -aq -f label=com.docker.stack.namespace={STACK})" ] && break
              sleep 0.5
            done
            docker volume ls -q | grep -E '^({volumes})' | xargs -r docker volume rm >/dev/null
            """)
    if made["swarm"]:
        for node in sorted(nodes, key=lambda n: n == manager):  # the manager last
            bed.leave_swarm(node)
    elif made["network"]:
        sh(bed, manager, "docker network rm ag-swarm-network >/dev/null 2>&1 || true")


@pytest.fixture(scope="module")
def stack(netns_bed):
    bed = netns_bed
    cluster = bed.read_pillar()["autograder"]["cluster"]
    manager, nodes = cluster["manager"], sorted(cluster["nodes"])
    labels = {n: cluster["nodes"][n].get("labels", []) for n in nodes}
    labelled = {lab: n for n in nodes for lab in labels[n]}
    made = {"swarm": False, "network": False, "registry": False, "certs": {}}
    try:
        info = _deploy(bed, manager, nodes, labels, labelled, made)
    except BaseException:
        teardown(bed, nodes, manager, made)
        raise
    yield {"bed": bed, "manager": manager, "nodes": nodes, "labels": labels,
           "labelled": labelled, **info}
    teardown(bed, nodes, manager, made)


def _swarm_state(bed, node):
    return sh(bed, node, "docker info -f '{{.Swarm.LocalNodeState}}'").strip()


def _deploy(bed, manager, nodes, labels, labelled, made) -> dict:
    registry_node, web = labelled["registry"], labelled["webserver"]
    timings = {}
    started = time.monotonic()

    # a swarm left by another test is reused; a deployed stack would hold the ports
    if _swarm_state(bed, manager) == "active":
        stacks = set(sh(bed, manager, "docker stack ls --format '{{.Name}}'").split()) - {STACK}
        if stacks:
            pytest.fail(f"stack(s) {', '.join(sorted(stacks))} already deployed on the bed; "
                        f"they hold the ports this test publishes: docker stack rm them first")

    # the checkout on the shared path (the bed's stand-in for the NFS mount), the guide's
    # first steps: media_root, generate_secrets.py on the host, the TLS files nginx names
    root = standin.write(netns.SHARED_CHECKOUT)
    # nodes see the checkout, not this repo (which may sit under /tmp, private to each node)
    shutil.copy(standin.BED_OVERRIDE, root / standin.BED_OVERRIDE.name)
    (root / "autograder-server/media_root").mkdir(exist_ok=True)
    # the workers' records of earlier runs (other containers, maybe other nodes) would mix in
    shutil.rmtree(root / "autograder-server/media_root/standin/workers", ignore_errors=True)
    # generate_secrets.py in the guide's venv with Django and python-gnupg: the stand-in's
    sh(bed, manager, f"cd {CHECKOUT}/autograder-server && PYTHONPATH=standin "
                     "python3 generate_secrets.py >/dev/null")
    made["certs"][web] = [p for p in CERTS
                          if bed.exec(web, "test", "-e", p, check=False).returncode != 0]
    for path in made["certs"][web]:
        sh(bed, web, f"mkdir -p $(dirname {path}) && echo stand-in > {path}")

    # swarm, labels, network, as the bed pillar says
    if _swarm_state(bed, manager) != "active":
        sh(bed, manager, f"docker swarm init --advertise-addr {bed.addr(manager)} "
                         f"--default-addr-pool {config.SWARM_ADDR_POOL} "
                         "--default-addr-pool-mask-length 24 >/dev/null")
        made["swarm"] = True
    token = sh(bed, manager, "docker swarm join-token -q worker")
    for node in nodes:
        if node != manager and _swarm_state(bed, node) != "active":
            bed.exec(node, "docker", "swarm", "join", "--advertise-addr", bed.addr(node),
                     "--token", token, f"{bed.addr(manager)}:2377")
    sh(bed, manager, "; ".join(
        f"docker node update {' '.join(f'--label-add {lab}=true' for lab in labels[n])} {n} >/dev/null"
        for n in nodes if labels[n]))
    if bed.exec(manager, "docker", "network", "inspect", "ag-swarm-network",
                check=False).returncode != 0:
        sh(bed, manager, "docker network create -d overlay ag-swarm-network >/dev/null")
        made["network"] = True

    # the registry service (guide §8) in host mode, and the mesh stand-in on the other nodes
    if bed.exec(manager, "docker", "service", "inspect", "registry", check=False).returncode:
        sh(bed, manager, "docker service create -d --name registry "
                         "--publish mode=host,published=5000,target=5000 "
                         "--mount type=volume,source=ag-registry,destination=/var/lib/registry "
                         "--constraint 'node.labels.registry == true' registry:2 >/dev/null")
        made["registry"] = True
    for node in nodes:
        if node != registry_node and not sh(bed, node, "curl -sf -m 2 http://127.0.0.1:5000/v2/ "
                                                       "|| true"):
            sh(bed, node, f"setsid socat TCP-LISTEN:5000,bind=127.0.0.1,reuseaddr,fork "
                          f"TCP:{bed.addr(registry_node)}:5000 </dev/null >/dev/null 2>&1 & "
                          f"echo $! > {SHIM_PIDFILE}")
    for node in nodes:
        wait_for(lambda n=node: sh(bed, n, "curl -sf -m 2 http://127.0.0.1:5000/v2/ || true"), 60,
                 f"the registry at 127.0.0.1:5000 from {node}", interval=1)
    timings["swarm+registry"] = time.monotonic() - started

    # build and push what the compose file builds: one build per (context, dockerfile)
    t0 = time.monotonic()
    compose = yaml.safe_load((root / "docker-compose.yml").read_text())
    builds = {}
    for svc in compose["services"].values():
        if "build" in svc:
            build = svc["build"] if isinstance(svc["build"], dict) else {"context": svc["build"]}
            key = (build["context"], build.get("dockerfile", "Dockerfile"))
            builds.setdefault(key, set()).add(svc["image"])
    script = [f"cd {CHECKOUT}"]
    for (context, dockerfile), tags in sorted(builds.items()):
        tags = sorted(tags)
        script.append(f"DOCKER_BUILDKIT=0 /usr/bin/docker build -q -t {tags[0]} "
                      f"-f {context}/{dockerfile} {context} >/dev/null")
        script += [f"docker tag {tags[0]} {t}" for t in tags[1:]]
        script += [f"docker push -q {t} >/dev/null" for t in tags]
    sh(bed, manager, "\n".join(script))
    timings["build+push"] = time.monotonic() - t0

    t0 = time.monotonic()
    # today's docker refuses upstream's repeated `image:` of postgres and redis: by hand, the
    # first of each goes (older docker read the later one)
    sh(bed, manager, f"cd {CHECKOUT} && sed -i '/^    image: 127\\.0\\.0\\.1:5000\\/"
                     "\\(postgres\\|redis\\)$/d' docker-compose.yml && docker stack deploy "
                     f"-c docker-compose.yml -c {standin.BED_OVERRIDE.name} {STACK}")
    wait_for(lambda: converged(bed, manager), 180, f"every service of {STACK} to converge", interval=1)
    timings["deploy"] = time.monotonic() - t0
    print("stand-in stack timings (s):", {k: round(v, 1) for k, v in timings.items()})
    return {"compose": compose, "root": root}


def test_every_service_runs_where_its_label_is(stack):
    bed, compose, labels = stack["bed"], stack["compose"], stack["labels"]
    running = tasks(bed, stack["manager"])
    for name, svc in compose["services"].items():
        label = svc["deploy"]["placement"]["constraints"][0].split(".")[2].split(" ")[0]
        expected = sorted(n for n in stack["nodes"] if label in labels[n])
        if svc["deploy"].get("mode") != "global":
            expected = expected[:1]
        got = sorted(node for node, _, _ in running.get(name, []))
        assert got == expected, f"{name} (label {label}): tasks on {got}, expected {expected}"
        assert all(state.startswith("Running") for _, state, _ in running.get(name, [])), \
            f"{name}: {running.get(name)}"


def test_migrate_and_bootstrap_persist(stack):
    bed, manager = stack["bed"], stack["manager"]
    django_node = tasks(bed, manager)["django"][0][0]

    def manage(*args, stdin_code=None):
        cid = container(bed, django_node, "django")
        cmd = ["docker", "exec", cid, "python3", "manage.py", *args]
        if stdin_code is not None:
            cmd += ["-c", stdin_code]
        return bed.exec(django_node, *cmd, check=False)

    first = manage("migrate", "--noinput")
    assert first.returncode == 0, first.stderr
    assert "Applying core.0001_initial... OK" in first.stdout
    assert "No migrations to apply." in manage("migrate", "--noinput").stdout

    bootstrap = (
        "from django.contrib.auth.models import User\n"
        "from autograder.core.models import Course\n"
        "me = User.objects.get_or_create(username='admin@bed.test', is_superuser=True)[0]\n"
        "course, created = Course.objects.get_or_create(name='Bed Course')\n"
        "course.admins.add(me)\n"
        "print('created' if created else 'exists')\n"
    )
    assert manage("shell", stdin_code=bootstrap).stdout.strip() == "created"
    assert manage("shell", stdin_code=bootstrap).stdout.strip() == "exists"

    # the data lives in the postgres volume: a new postgres task still has it
    sh(bed, manager, f"docker service update -q --force {STACK}_postgres >/dev/null")
    wait_for(lambda: converged(bed, manager), 120, "postgres to come back", interval=1)
    assert "No migrations to apply." in manage("migrate", "--noinput").stdout
    cid = container(bed, django_node, "django")
    courses = bed.exec(django_node, "docker", "exec", cid, "python3", "-c",
                       "import urllib.request as u; print(u.urlopen(u.Request("
                       "'http://127.0.0.1:8000/api/courses/', "
                       "headers={'Host': 'autograder.io'})).read().decode())").stdout
    assert json.loads(courses) == [{"pk": 1, "name": "Bed Course", "admins": ["admin@bed.test"]}]


def test_workers_run_with_the_compose_concurrency(stack):
    records = {}
    for path in (stack["root"] / "autograder-server/media_root/standin/workers").glob("*.json"):
        record = json.loads(path.read_text())
        records.setdefault(record["name"].split("@")[0], []).append(record)
    assert {r["concurrency"] for r in records["small_tasks"]} == {4}
    assert {r["concurrency"] for r in records["submission_grader"]} == {2}
    assert {r["concurrency"] for r in records["image_builder"]} == {1}
    assert all(r["docker_sock"] for r in records["submission_grader"])
    assert records["periodic_tasks"][0]["beat"] is True


def test_web_side_answers(stack):
    bed, web = stack["bed"], stack["labelled"]["webserver"]
    page = sh(bed, web, "curl -sf http://127.0.0.1:80/ && curl -sf http://127.0.0.1:443/")
    assert page.count("server_name autograder.io;") == 4  # two server blocks, two ports
    assert "client_max_body_size 30M;" in page
    nginx = container(bed, web, "nginx")
    # by name over the overlay (dnsrr): what the production nginx proxies to
    constants = sh(bed, web, f"docker exec {nginx} wget -qO- http://website/constants.ts")
    assert "MAX_COMMAND_TIMEOUT = 90" in constants
    sandbox = stack["labelled"]["custom_image_registry"]
    assert sh(bed, sandbox, "curl -sf http://127.0.0.1:5001/v2/").strip() == "{}"
