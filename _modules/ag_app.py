"""The autograder application through the Docker Engine API and CLI: the swarm's services
and tasks, the registry service, the stack's images (built, pushed, asked for by digest), the
stack (deployed with the docker CLI: the Engine API has no stacks), its status and its tasks'
logs, commands run in a task of this node, and the backups of the site's data (a task's
output streamed to a file, a file loaded into a task, the checkout's data directories packed
and unpacked). The ag_app states and the ag runner decide; these functions read, create,
update and remove.

Every function returns plain data (what a job return may hold).
"""

try:
    import docker
    import docker.errors

    HAS_DOCKER = True
except ImportError:
    HAS_DOCKER = False

import calendar
import contextlib
import os
import posixpath
import re
import shutil
import tarfile
import tempfile
import time

from salt.exceptions import CommandExecutionError

__virtualname__ = "ag_app"


def __virtual__():
    if "ag_engine.session" not in __utils__:
        return False, "ag_app needs _utils/ag_engine.py: run saltutil.sync_all on this minion"
    return __utils__["ag_engine.virtual"](__virtualname__, HAS_DOCKER)


def _engine(what, patient=False):
    return __utils__["ag_engine.session"](__context__, __salt__["config.get"], what,
                                          patient=patient)


# --- services and tasks -----------------------------------------------------------------------


def services():
    """The swarm's services: id, name, image, mode, replicas, constraints, labels.

    CLI Example: salt nuc1 ag_app.services
    """
    with _engine("listing services (this node must be a manager)") as client:
        found = client.api.services()
    result = []
    for attrs in found:
        spec = attrs["Spec"]
        task = spec.get("TaskTemplate") or {}
        mode = spec.get("Mode") or {}
        result.append({
            "id": attrs["ID"],
            "name": spec["Name"],
            "image": (task.get("ContainerSpec") or {}).get("Image"),
            "mode": "global" if "Global" in mode else "replicated",
            "replicas": (mode.get("Replicated") or {}).get("Replicas"),
            "constraints": (task.get("Placement") or {}).get("Constraints") or [],
            "labels": spec.get("Labels") or {},
        })
    return result


def tasks(service=None, node=None):
    """The swarm's tasks (of one service, by name or ID; on `node`, a node ID or a list of
    them): id, service_id, node_id, slot, desired_state, state, error.

    CLI Example: salt nuc1 ag_app.tasks service=ag_django
    """
    filters = {}
    if service:
        filters["service"] = service
    if node:
        filters["node"] = [node] if isinstance(node, str) else list(node)
    filters = filters or None
    with _engine("listing tasks (this node must be a manager)") as client:
        found = client.api.tasks(filters=filters)
    return [{
        "id": t["ID"],
        "service_id": t.get("ServiceID"),
        "node_id": t.get("NodeID"),
        "slot": t.get("Slot"),
        "desired_state": t.get("DesiredState"),
        "state": (t.get("Status") or {}).get("State"),
        "error": (t.get("Status") or {}).get("Err"),
    } for t in found]


# --- the registry service, images, the stack ------------------------------------------------


def _published_service(spec: dict) -> dict:
    """The parts of a service spec that service_create sets, in the terms service_get reports."""
    task = spec.get("TaskTemplate") or {}
    container = task.get("ContainerSpec") or {}
    ports = (spec.get("EndpointSpec") or {}).get("Ports") or []
    return {
        "image": container.get("Image"),
        "ports": sorted(f"{p.get('PublishedPort')}:{p.get('TargetPort')}/{p.get('PublishMode', 'ingress')}"
                        for p in ports),
        "mounts": sorted(f"{m.get('Source')}:{m.get('Target')}" for m in container.get("Mounts") or []),
        "constraints": sorted((task.get("Placement") or {}).get("Constraints") or []),
    }


def service_get(name):
    """The swarm service `name` as service_create sets it: image, ports (published:target/mode),
    mounts (volume:target), constraints; None when there is no such service.

    CLI Example: salt nuc1 ag_app.service_get registry
    """
    with _engine(f"inspecting service {name} (this node must be a manager)") as client:
        try:
            return _published_service(client.api.inspect_service(name)["Spec"])
        except docker.errors.NotFound:
            return None


def _service_args(name, port, publish_mode, volume, target, constraints):
    """The docker SDK's arguments for one replica publishing `port` (same port inside) in
    `publish_mode`, the named `volume` mounted at `target`, under `constraints`."""
    return {
        "name": name,
        "mode": docker.types.ServiceMode("replicated", replicas=1),
        "endpoint_spec": docker.types.EndpointSpec(ports={port: (port, "tcp", publish_mode)}),
        "constraints": sorted(constraints or []),
        "mounts": [docker.types.Mount(target, volume, type="volume")] if volume else [],
    }


def service_create(name, image, port, publish_mode="ingress", volume=None, target=None,
                   constraints=None):
    """Create the swarm service `name` running `image` (one replica) publishing `port` (same
    port inside) in `publish_mode`, with the named `volume` mounted at `target`, under
    `constraints`. Returns service_get after.

    CLI Example:
        salt nuc1 ag_app.service_create registry registry:2 5000 volume=ag-registry \\
            target=/var/lib/registry
    """
    args = _service_args(name, port, publish_mode, volume, target, constraints)
    with _engine(f"creating service {name}") as client:
        client.services.create(image, **args)
    return service_get(name)


def service_update(name, image, port, publish_mode="ingress", volume=None, target=None,
                   constraints=None):
    """Set the swarm service `name` to what service_create would make of these arguments;
    made again on the service as it is now when it changed since it was read (update out of
    sequence). Returns service_get after.

    CLI Example: salt nuc1 ag_app.service_update registry registry:3 5000
    """
    args = _service_args(name, port, publish_mode, volume, target, constraints)
    what = f"updating service {name}"
    with _engine(what) as client:
        # Service.update sends the version its get() read: each attempt gets it again
        __utils__["ag_engine.versioned_update"](
            what, lambda fresh: client.services.get(name).update(image=image, **args))
    return service_get(name)


def service_remove(name):
    """Remove the swarm service `name` (its tasks stop after). Returns True, or False when
    there was no such service.

    CLI Example: salt nuc1 ag_app.service_remove registry
    """
    with _engine(f"removing service {name} (this node must be a manager)") as client:
        try:
            client.api.remove_service(name)
        except docker.errors.NotFound:
            return False
    return True


# a label no node carries: a service constrained to it runs nowhere until the constraint goes
PAUSED = "node.labels.ag.paused == true"
# the task states of a container that is there: a paused service has none of them left
TASK_ON_A_NODE = ("assigned", "accepted", "preparing", "ready", "starting", "running")


def _placed(client, name, constraints_of):
    """Service `name`'s placement constraints set to constraints_of(its constraints), the
    rest of its spec as it is (read again when another writer came between)."""
    def update(fresh):
        service = client.api.inspect_service(name)
        template = service["Spec"]["TaskTemplate"]
        placement = template.get("Placement") or {}
        wanted = constraints_of(placement.get("Constraints") or [])
        if wanted == (placement.get("Constraints") or []):
            return False
        template["Placement"] = {**placement, "Constraints": wanted}
        client.api.update_service(service["ID"], service["Version"]["Index"],
                                  task_template=template, fetch_current_spec=True)
        return True
    return __utils__["ag_engine.versioned_update"](f"placing service {name}", update)


def services_paused(names, timeout):
    """Pause the swarm services `names` (an upgrade's celery workers, while its migrations
    run): each is constrained to run nowhere (PAUSED), so its tasks stop as a redeploy stops
    them, a celery worker finishing the task it runs within its stop_grace_period, and what
    is queued waits in the broker. Waits until none of their containers is left (at most
    `timeout` seconds). The next stack deploy resumes them (its spec has no such
    constraint); services_resumed does without one. Returns the names it paused.

    CLI Example: salt nuc1 ag_app.services_paused '[ag-stack_grader]' 360
    """
    with _engine(f"pausing {', '.join(names)}", patient=True) as client:
        paused = [name for name in names
                  if _placed(client, name, lambda now: sorted(set(now) | {PAUSED}))]
        deadline = time.monotonic() + timeout
        while True:
            left = sorted({t["ServiceID"] for name in names for t in client.api.tasks(
                filters={"service": name}) if t["Status"]["State"] in TASK_ON_A_NODE})
            if not left:
                return paused
            if time.monotonic() > deadline:
                raise CommandExecutionError(f"{len(left)} of the services paused still run a "
                                            f"task after {timeout} s")
            time.sleep(1)


def services_resumed(names):
    """Undo services_paused: the PAUSED constraint taken off the services `names`. Returns
    the names it resumed.

    CLI Example: salt nuc1 ag_app.services_resumed '[ag-stack_grader]'
    """
    with _engine(f"resuming {', '.join(names)}") as client:
        return [name for name in names
                if _placed(client, name, lambda now: [c for c in now if c != PAUSED])]


def image_digest(reference):
    """The registry's digest (sha256:...) of `reference` (repo:tag), or None when the registry
    does not hold it. Asked through this node's dockerd, which reaches 127.0.0.1:5000.

    CLI Example: salt nuc1 ag_app.image_digest 127.0.0.1:5000/django:latest
    """
    with _engine(f"asking the registry for {reference}") as client:
        try:
            return client.api.inspect_distribution(reference)["Descriptor"]["digest"]
        except docker.errors.APIError as exc:
            if exc.status_code in (401, 403, 404) or "not found" in str(exc).lower() \
                    or "manifest unknown" in str(exc).lower():
                return None
            raise


PUSH_PATIENCE = 180  # seconds a push waits for a registry that refuses connections


def image_build_push(path, dockerfile, tags, buildargs=None):
    """Build the context `path` with `dockerfile` (its .dockerignore honoured) and the build
    args `buildargs` ({name: value}), tag the image with every repo:tag of `tags` and push
    them. Returns {tag: registry digest}; on failure the error names the image and ends with
    the build or push output's tail.

    CLI Example: salt nuc1 ag_app.image_build_push /srv/x/nginx Dockerfile '[127.0.0.1:5000/nginx:latest]'
    """
    with _engine(f"building {tags[0]} from {path}/{dockerfile}") as client:
        try:
            image, _ = client.images.build(path=path, dockerfile=dockerfile, tag=tags[0], rm=True,
                                           forcerm=True, buildargs=buildargs or None)
        except docker.errors.BuildError as exc:
            tail = "".join(str(c.get("stream") or c.get("error") or "") for c in exc.build_log)[-2000:]
            raise CommandExecutionError(f"building {tags[0]} from {path}/{dockerfile} failed: "
                                        f"{exc.msg}\n{tail}") from exc
    digests = {}
    for tag in tags:
        repo, _, version = tag.rpartition(":")
        with _engine(f"pushing {tag}") as client:
            image.tag(repo, version)
            digests[tag] = _push(client, repo, version)
    return digests


def _push(client, repo, version, patience=PUSH_PATIENCE):
    """Push repo:version → its registry digest. While the registry refuses connections (its task
    being replaced, e.g. after its node missed a swarm heartbeat), try again for `patience`
    seconds."""
    deadline = time.monotonic() + patience
    while True:
        digest, error = None, None
        for line in client.api.push(repo, version, stream=True, decode=True):
            error = line.get("error") or error
            digest = (line.get("aux") or {}).get("Digest") or digest
        if not error:
            return digest
        if "connection refused" not in error or time.monotonic() > deadline:
            raise CommandExecutionError(f"pushing {repo}:{version} failed: {error}")
        time.sleep(5)


def stack_deploy(name, compose_files, cwd):
    """`docker stack deploy` of `compose_files` (in order, paths relative to `cwd`) as stack
    `name`, images used as the files name them (pin them by digest: an unchanged redeploy then
    restarts no task); a service of the stack that the files no longer name is removed (a
    release that dropped it: 2021.05.v4's apidocs). The docker CLI is the only way: the
    Engine API has no stacks. Returns the CLI's output; raises with it on failure.

    CLI Example: salt nuc1 ag_app.stack_deploy ag-stack '[docker-compose.yml]' /srv/autograder-full-stack
    """
    cmd = ["docker", "stack", "deploy", "--prune", "--resolve-image", "never"]
    for path in compose_files:
        cmd += ["-c", path]
    res = __salt__["cmd.run_all"](cmd + [name], cwd=cwd, python_shell=False,
                                  output_loglevel="quiet")
    if res["retcode"] != 0:
        raise CommandExecutionError(f"docker stack deploy {name} failed (exit {res['retcode']}): "
                                    f"{(res['stderr'] or res['stdout'])[-2000:]}")
    return res["stdout"]


# what `docker stack deploy` makes, each labelled with the stack's name, in the order
# `docker stack rm` removes them: the services first, whose tasks use the rest
STACK_KINDS = ("services", "networks", "secrets", "configs")
STACK_LABEL = "com.docker.stack.namespace"


def _stack_listing(api, kind, name):
    """The objects of `kind` of stack `name` as the engine lists them."""
    return getattr(api, kind)(filters={"label": f"{STACK_LABEL}={name}"})


def stack_objects(name):
    """What stack `name` holds: {services, networks, secrets, configs: [names], tasks: [IDs of
    its tasks the swarm still keeps, running or shutting down]}; every list empty when no such
    stack is deployed.

    CLI Example: salt nuc1 ag_app.stack_objects ag-stack
    """
    found = {}
    with _engine(f"reading stack {name} (this node must be a manager)") as client:
        for kind in STACK_KINDS:
            found[kind] = sorted((o.get("Spec") or o)["Name"]
                                 for o in _stack_listing(client.api, kind, name))
        found["tasks"] = sorted(t["ID"] for t in
                                client.api.tasks(filters={"label": f"{STACK_LABEL}={name}"}))
    return found


def stack_remove(name, kind):
    """Remove every object of `kind` (services, networks, secrets or configs) of stack
    `name`, as `docker stack rm` does, through the Engine API. Returns the names removed.

    CLI Example: salt nuc1 ag_app.stack_remove ag-stack services
    """
    if kind not in STACK_KINDS:
        raise CommandExecutionError(f"stack {name}: {kind!r} is none of {', '.join(STACK_KINDS)}")
    removed = []
    with _engine(f"removing the {kind} of stack {name}") as client:
        remove = {"services": client.api.remove_service, "networks": client.api.remove_network,
                  "secrets": client.api.remove_secret, "configs": client.api.remove_config}[kind]
        for obj in _stack_listing(client.api, kind, name):
            remove(obj.get("ID") or obj["Id"])
            removed.append((obj.get("Spec") or obj)["Name"])
    return sorted(removed)


def stack_secrets_pruned(name):
    """Remove the secrets of stack `name` that none of its services is given any longer (the
    deploy names secrets by content: a changed file leaves its old secret unused). Returns
    their names.

    CLI Example: salt nuc1 ag_app.stack_secrets_pruned ag-stack
    """
    removed = []
    with _engine(f"pruning the secrets of stack {name}") as client:
        given = {secret["SecretID"] for service in _stack_listing(client.api, "services", name)
                 for secret in service["Spec"]["TaskTemplate"]["ContainerSpec"].get("Secrets") or ()}
        for secret in _stack_listing(client.api, "secrets", name):
            if secret["ID"] not in given:
                client.api.remove_secret(secret["ID"])
                removed.append(secret["Spec"]["Name"])
    return sorted(removed)


def _running_for(task: dict) -> float:
    """Seconds since `task` last changed state (the engine's RFC 3339 time, in nanoseconds)."""
    stamp = (task.get("Status") or {}).get("Timestamp") or ""
    match = re.match(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?", stamp)
    if not match:
        return 0.0
    since = calendar.timegm(time.strptime(match.group(1), "%Y-%m-%dT%H:%M:%S"))
    return time.time() - since - float(match.group(2) or 0)


# a task's states in the order the swarm moves it towards running
TASK_PROGRESS = ("new", "allocated", "pending", "assigned", "accepted", "preparing", "ready",
                 "starting", "running")
TASK_FAILED = ("failed", "rejected")
# the desired states of a task the swarm means to run: a task it restarts waits out its restart
# delay desired "ready" (a global service's task on a node that rejects every one would else
# count as none)
WANTED = ("ready", "running")


def _task(task: dict, hostnames: dict) -> dict:
    status = task.get("Status") or {}
    return {"id": task["ID"], "node": hostnames.get(task.get("NodeID")),
            "desired_state": task.get("DesiredState"),
            "state": status.get("State"),
            "since": round(_running_for(task)),
            "exit_code": (status.get("ContainerStatus") or {}).get("ExitCode"),
            "error": status.get("Err"),
            "message": status.get("Message")}


def stack_status(name, settle=5):
    """Each service of stack `name`: {service: {desired, running, converged, update, furthest,
    failed, tasks}}. A service has converged when every task it wants has run for `settle`
    seconds on the image its spec names and no update is in progress (a task that crashes at
    start is running only for a moment); an update Docker paused when a new task failed has
    ended once the restart policy got every task running on the current spec (nginx that
    started before django's name resolved). `furthest`: how far towards running its tasks on
    that image got (an index of TASK_PROGRESS, -1 for none); `failed`: the IDs of its tasks
    that failed or were rejected, as far as the swarm's task history goes; `tasks`: [{id,
    node, desired_state, state, since (seconds in that state), exit_code, error, message}] of
    the tasks that should run and the three that ended last. {} when no such stack is
    deployed.

    CLI Example: salt nuc1 ag_app.stack_status ag-stack
    """
    with _engine(f"reading stack {name} (this node must be a manager)") as client:
        found = client.api.services(filters={"label": f"com.docker.stack.namespace={name}"})
        hostnames = {n["ID"]: (n.get("Description") or {}).get("Hostname")
                     for n in client.api.nodes()}
        all_tasks = client.api.tasks(filters={"label": f"com.docker.stack.namespace={name}"})
    status = {}
    for attrs in found:
        spec = attrs["Spec"]
        short = spec["Name"][len(name) + 1:]
        image = spec["TaskTemplate"]["ContainerSpec"]["Image"]
        mine = [t for t in all_tasks if t.get("ServiceID") == attrs["ID"]]
        wanted = [t for t in mine if t.get("DesiredState") in WANTED]
        current = [(t.get("Status") or {}).get("State") for t in wanted
                   if t["Spec"]["ContainerSpec"]["Image"] == image]
        running = [t for t in wanted if (t.get("Status") or {}).get("State") == "running"
                   and t["Spec"]["ContainerSpec"]["Image"] == image
                   and _running_for(t) >= settle]
        replicas = ((spec.get("Mode") or {}).get("Replicated") or {}).get("Replicas")
        desired = len(wanted) if replicas is None else replicas
        update = (attrs.get("UpdateStatus") or {}).get("State")
        shown = wanted + sorted((t for t in mine if t.get("DesiredState") not in WANTED),
                                key=lambda t: t.get("UpdatedAt", ""), reverse=True)[:3]
        status[short] = {
            "desired": desired,
            "running": len(running),
            "converged": len(running) == desired,
            "update": update,
            "furthest": max((TASK_PROGRESS.index(s) for s in current if s in TASK_PROGRESS),
                            default=-1),
            "failed": sorted(t["ID"] for t in mine
                             if (t.get("Status") or {}).get("State") in TASK_FAILED),
            "tasks": [_task(t, hostnames) for t in shown],
        }
        if update in ("updating", "rollback_started", "rollback_paused") or (
                update == "paused" and not all(_runs_template(t, spec) for t in running)):
            status[short]["converged"] = False
    return status


def _runs_template(task, spec):
    """Whether `task` was made from the service's current task template. Docker fills in the
    task's Runtime; nothing else differs."""
    def template(t):
        return {k: v for k, v in t.items() if k != "Runtime"}
    return template(task["Spec"]) == template(spec["TaskTemplate"])


def task_logs(service, task_ids, tail=5):
    """The last `tail` lines each task of `task_ids` (of swarm service `service`) logged:
    {task ID: [lines]}; a task that logged nothing (or whose node does not answer) is left
    out.

    CLI Example: salt nuc1 ag_app.task_logs ag-stack_nginx '[u3k...]'
    """
    wanted = set(task_ids)
    with _engine(f"reading the logs of service {service}") as client:
        # details: each line starts with its context, com.docker.swarm.task.id=... among it
        chunks = client.api.service_logs(service, details=True, stdout=True, stderr=True,
                                         tail=tail)
        text = b"".join(chunks).decode(errors="replace")
    found = {}
    for line in text.splitlines():
        context, _, message = line.partition(" ")
        attrs = dict(part.partition("=")[::2] for part in context.split(","))
        task = attrs.get("com.docker.swarm.task.id")
        if task in wanted and message.strip():
            found.setdefault(task, []).append(message.rstrip())
    return {task: lines[-tail:] for task, lines in found.items()}


def _local_task(client, service):
    """This node's running container of swarm service `service`, or None."""
    found = client.containers.list(
        filters={"label": f"com.docker.swarm.service.name={service}", "status": "running"})
    return found[0] if found else None


def _exec_result(container, result, tail=None) -> dict:
    out, err = result.output
    out, err = ((b or b"").decode(errors="replace") for b in (out, err))
    return {"container": container.short_id, "retcode": result.exit_code,
            "stdout": out[-tail:] if tail else out, "stderr": err[-tail:] if tail else err}


def local_task_running(service):
    """Whether a container of swarm service `service` runs on this node.

    CLI Example: salt nuc1 ag_app.local_task_running ag-stack_nginx
    """
    with _engine(f"looking for a task of {service}") as client:
        return _local_task(client, service) is not None


def local_task_exec(service, cmd):
    """Run `cmd` (a list) in this node's running container of swarm service `service`.
    Returns {container, retcode, stdout, stderr}, or None when no task of it runs here.

    CLI Example: salt nuc1 ag_app.local_task_exec ag-stack_django '[python3, manage.py, check]'
    """
    # patient: a migration may print nothing for longer than the client's read timeout
    with _engine(f"running {cmd[0]} in the {service} container", patient=True) as client:
        container = _local_task(client, service)
        if container is None:
            return None
        return _exec_result(container, container.exec_run(cmd, demux=True))


def _password(password_file):
    with open(password_file) as fh:
        return fh.read().strip()


def local_task_password_works(service, password_file):
    """Whether the database in this node's running task of swarm service `service` (postgres)
    lets its user in with the password in `password_file` from the network, as the app
    connects; None when no task of it runs here. Raises when psql fails otherwise (the server
    does not answer). The password goes to psql in its environment, never in an argument.

    CLI Example: salt nuc1 ag_app.local_task_password_works ag-stack_postgres /srv/x/db_password
    """
    password = _password(password_file)
    with _engine(f"checking the database password in the {service} container") as client:
        container = _local_task(client, service)
        if container is None:
            return None
        res = _exec_result(container, container.exec_run(
            PASSWORD_CHECK, environment={"PGPASSWORD": password}, demux=True))
    if res["retcode"] == 0:
        return True
    if "password authentication failed" in res["stderr"]:
        return False
    raise CommandExecutionError(f"checking the database password in the {service} container on "
                                f"{__grains__['id']} failed (psql exit {res['retcode']}): "
                                f"{res['stderr'].strip()[-600:]}")


def local_task_password_set(service, password_file):
    """The database user's password in this node's running task of swarm service `service`
    (postgres) set to the one in `password_file`, through the local socket (which needs
    none): the statement goes in as a file only root reads, removed after, never on a command
    line or in a return.

    CLI Example: salt nuc1 ag_app.local_task_password_set ag-stack_postgres /srv/x/db_password
    """
    password = _password(password_file)
    with tempfile.NamedTemporaryFile("w", suffix=".sql") as sql:
        sql.write("ALTER ROLE CURRENT_USER PASSWORD '" + password.replace("'", "''") + "';\n")
        sql.flush()
        res = restore_task_input(service, sql.name, PASSWORD_SET, [
            "sh", "-c", f"exec psql -v ON_ERROR_STOP=1 -q -f {PASSWORD_SET} {_DATABASE}"])
    if res["retcode"] != 0:  # psql may quote the statement's line: never the password
        said = res["stderr"].replace(password, "<password>").strip()[-600:]
        raise CommandExecutionError(f"setting the database password in the {service} container "
                                    f"on {__grains__['id']} failed (psql exit {res['retcode']}): "
                                    f"{said}")


# --- backups: ag_app.backup on the node labelled database (salt-run ag.backup, the schedule) --

DATABASE_SERVICE = "postgres"  # the compose file's database service
# the database as the image's entrypoint made it (POSTGRES_USER and POSTGRES_DB, else its
# defaults); a plain SQL dump that drops each object before it makes it again
_DATABASE = '-U "${POSTGRES_USER:-postgres}" "${POSTGRES_DB:-${POSTGRES_USER:-postgres}}"'
DUMP_CMD = ["sh", "-c", f"exec pg_dump --clean --if-exists --no-owner {_DATABASE}"]
LOADED = "/tmp/ag-restore.sql"
LOAD_CMD = ["sh", "-c", f"exec psql -v ON_ERROR_STOP=1 --single-transaction -q -f {LOADED} {_DATABASE}"]
# put before the dump, so it loads into a database emptied first, in the same transaction: the
# one a deploy migrated may hold what the dump's own DROPs miss (a table or constraint of
# another name that depends on one of the dump's, which the real postgres then refuses to
# drop). In the loaded file, not a `psql -c`: upstream's postgres 9.5 takes no -c beside -f
EMPTIED = b"DROP SCHEMA public CASCADE; CREATE SCHEMA public; GRANT ALL ON SCHEMA public TO PUBLIC;\n"
# whether the database lets its user in with a password, asked as the app connects: over the
# network (the image lets every address in by password; its local socket lets anyone in)
PASSWORD_CHECK = ["sh", "-c", 'exec psql -w -h "$(hostname -i | cut -d" " -f1)" -c "SELECT 1" '
                  + _DATABASE]
PASSWORD_SET = "/tmp/ag-password.sql"
SERVER = "autograder-server"
# what the checkout holds that no deploy makes again: every submission and result file, and the
# secrets (the GPG key that signed every receipt, the secret key of every session)
SECRETS_DIR = f"{SERVER}/autograder/settings/secrets"  # restored as it was: a key made since goes
BACKED_UP_DIRS = (f"{SERVER}/media_root", SECRETS_DIR)
# the live database's password stays: the running postgres was made with it
KEPT_LIVE = (f"{SECRETS_DIR}/db_password",)
REVISION_PART = "revision"  # a backup's record of the git revision the stack ran


# what the ag_app states deployed, on the manager (_states/ag_app.py: DEPLOYED_DIR)
DEPLOYED_REVISION = "/var/lib/ag-deploy/{stack}.revision"


def revisions(stack, checkout):
    """{deployed: the git revision of `checkout` that stack `stack` was last deployed from
    (the ag_app.stack_deployed state's record on this manager), checkout: the one `checkout`
    holds now}; None for either when there is none (no deploy recorded, or a checkout that is
    no git repository). One call tells ag.upgrade_backup whether a deploy is an upgrade.

    CLI Example: salt nuc1 ag_app.revisions ag-stack /srv/autograder-full-stack
    """
    try:
        with open(DEPLOYED_REVISION.format(stack=stack)) as fh:
            deployed = fh.read().strip() or None
    except FileNotFoundError:
        deployed = None
    is_git = os.path.isdir(os.path.join(checkout, ".git"))
    return {"deployed": deployed, "checkout": __salt__["git.revision"](checkout) if is_git else None}


def backup(backup_dir, keep, stack, checkout, name=None, revision=None):
    """A backup of the site's data named `name` (default: the time, YYYYmmdd-HHMMSS) in
    `backup_dir` on this node, which runs the postgres task of `stack` (the node labelled
    database): the database dumped live by pg_dump in that task (postgres.sql) and the
    `checkout`'s media_root and secrets dir (files.tar.gz, read through this node's mount of
    it), and the git `revision` the stack runs when given (revision, which ag.rollback goes
    back to); then only the `keep` newest backups kept. Returns {name, parts: {file: bytes},
    pruned}; never a file's content. salt-run ag.backup and backup:schedule run it.

    CLI Example: salt nuc1 ag_app.backup /srv/autograder-backups 7 ag-stack /srv/autograder-full-stack
    """
    name = name or time.strftime("%Y%m%d-%H%M%S")
    where, service = os.path.join(backup_dir, name), f"{stack}_{DATABASE_SERVICE}"
    dumped = backup_task_output(service, DUMP_CMD, f"{where}/postgres.sql", keep)
    packed = backup_files(f"{where}/files.tar.gz", checkout, list(BACKED_UP_DIRS), keep)
    if revision:
        with _backup_file(f"{where}/{REVISION_PART}") as fh:
            fh.write(f"{revision}\n".encode())
    return {"name": name, "parts": {part["file"]: part["bytes"] for part in (dumped, packed)},
            f"removed as older than the newest {keep}": sorted(
                set(dumped["pruned"]) | set(packed["pruned"]))}


def backups_made(backup_dir):
    """{name: the git revision the stack ran when it was made, or None} of every backup in
    `backup_dir` on this node (ag_app.backup), oldest first (names sort by time).

    CLI Example: salt nuc1 ag_app.backups_made /srv/autograder-backups
    """
    try:
        names = sorted(n for n in os.listdir(backup_dir)
                       if os.path.isdir(os.path.join(backup_dir, n)))
    except FileNotFoundError:
        return {}
    made = {}
    for name in names:
        try:
            with open(os.path.join(backup_dir, name, REVISION_PART)) as fh:
                made[name] = fh.read().strip() or None
        except FileNotFoundError:
            made[name] = None
    return made


def restore(backup_dir, stack, checkout, name):
    """The backup `name` in `backup_dir` on this node (ag_app.backup) brought back: media_root
    and the secrets dir unpacked into the `checkout` (the live database password stays),
    then the dump loaded into the database in this node's postgres task of `stack`, in one
    transaction, into the database emptied first. Raises naming what is missing or failed.

    CLI Example: salt nuc1 ag_app.restore /srv/b ag-stack /srv/autograder-full-stack 20261206-031500
    """
    where, service = os.path.join(backup_dir, name), f"{stack}_{DATABASE_SERVICE}"
    for part in ("files.tar.gz", "postgres.sql"):
        if not os.path.isfile(f"{where}/{part}"):
            raise CommandExecutionError(f"no backup {name} on {__grains__['id']}: {where}/{part} "
                                        "is missing; nothing was restored")
    count = restore_files(f"{where}/files.tar.gz", checkout, KEPT_LIVE, [SECRETS_DIR])
    with tempfile.NamedTemporaryFile(suffix=".sql") as emptied_first:
        emptied_first.write(EMPTIED)
        with open(f"{where}/postgres.sql", "rb") as dump:
            shutil.copyfileobj(dump, emptied_first)
        emptied_first.flush()
        loaded = restore_task_input(service, emptied_first.name, LOADED, LOAD_CMD)
    if loaded["retcode"] != 0:
        # psql's ERROR and DETAIL lines say what failed; its HINT after them, only what to try
        said = [line for line in loaded["stderr"].splitlines() if "ERROR:" in line
                or "DETAIL:" in line] or [loaded["stderr"].strip()]
        raise CommandExecutionError(
            f"loading the database of backup {name} on {__grains__['id']} failed (psql exit "
            f"{loaded['retcode']}; the database is as it was): {' '.join(said)[-600:]}; the "
            "files were restored, the stack not deployed again")
    return {"name": name, "files restored": count, "database": f"loaded on {__grains__['id']}"}


@contextlib.contextmanager
def _backup_file(dest):
    """`dest` open for writing, mode 0600, in its backup's directory and the backups'
    directory above it, both readable by root only."""
    for folder in (os.path.dirname(os.path.dirname(dest)), os.path.dirname(dest)):
        os.makedirs(folder, mode=0o700, exist_ok=True)
        os.chmod(folder, 0o700)
    with os.fdopen(os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as fh:
        yield fh


def _pruned(dest, keep):
    """Remove all but the `keep` newest backups (directories named by time) beside the one
    `dest` is in; returns their names."""
    parent = os.path.dirname(os.path.dirname(dest))
    names = sorted(n for n in os.listdir(parent) if os.path.isdir(os.path.join(parent, n)))
    for name in names[:-keep]:
        shutil.rmtree(os.path.join(parent, name))
    return names[:-keep]


def backup_task_output(service, cmd, dest, keep):
    """Run `cmd` (a list) in this node's running container of swarm service `service`, its
    standard output streamed into the file `dest` (mode 0600, in a directory only root
    reads; never into the job's return or the log: a database dump holds every user's
    data); then keep only the `keep` newest backups beside dest's directory. Returns {file,
    bytes, pruned}; raises when no task of `service` runs here or `cmd` fails.

    CLI Example: salt nuc1 ag_app.backup_task_output ag-stack_postgres '[pg_dump]' /srv/b/1/db.sql 7
    """
    with _engine(f"running {cmd[0]} in the {service} container", patient=True) as client:
        container = _local_task(client, service)
        if container is None:
            raise CommandExecutionError(f"no task of {service} runs on {__grains__['id']}")
        exec_id = client.api.exec_create(container.id, cmd)["Id"]
        size, err = 0, b""
        with _backup_file(dest) as fh:
            for out, more in client.api.exec_start(exec_id, stream=True, demux=True):
                fh.write(out or b"")
                size += len(out or b"")
                err = (err + (more or b""))[-2000:]
        retcode = client.api.exec_inspect(exec_id)["ExitCode"]
    if retcode != 0:
        os.unlink(dest)
        raise CommandExecutionError(f"{cmd[0]} in the {service} container on "
                                    f"{__grains__['id']} failed (exit {retcode}): "
                                    f"{err.decode(errors='replace').strip()}")
    return {"file": dest, "bytes": size, "pruned": _pruned(dest, keep)}


def restore_task_input(service, src, inside, cmd):
    """Copy the file `src` into this node's running container of swarm service `service` as
    `inside` (a path under /tmp), run `cmd` (a list, which reads it) there, remove the copy.
    Returns {container, retcode, stdout, stderr} (their last 2000 characters); raises when no
    task of `service` runs here.

    CLI Example: salt nuc1 ag_app.restore_task_input ag-stack_postgres /srv/b/1/db.sql /tmp/db.sql '[psql]'
    """
    with _engine(f"loading {src} into the {service} container", patient=True) as client:
        container = _local_task(client, service)
        if container is None:
            raise CommandExecutionError(f"no task of {service} runs on {__grains__['id']}")
        with tempfile.TemporaryFile() as packed:
            with tarfile.open(fileobj=packed, mode="w") as tar:
                tar.add(src, arcname=os.path.basename(inside))
            packed.seek(0)
            container.put_archive(os.path.dirname(inside), packed)
        try:
            return _exec_result(container, container.exec_run(cmd, demux=True), tail=2000)
        finally:
            container.exec_run(["rm", "-f", inside])


def backup_files(dest, root, paths, keep):
    """The directories `paths` (relative to `root`) packed into the file `dest` (tar.gz, mode
    0600, in a directory only root reads); then keep only the `keep` newest backups beside
    dest's directory. Returns {file, bytes, pruned}.

    CLI Example: salt nuc1 ag_app.backup_files /srv/b/1/files.tar.gz /srv/full-stack '[media_root]' 7
    """
    with _backup_file(dest) as fh, tarfile.open(fileobj=fh, mode="w:gz") as tar:
        for path in paths:
            if os.path.exists(os.path.join(root, path)):
                tar.add(os.path.join(root, path), arcname=path)
    return {"file": dest, "bytes": os.path.getsize(dest), "pruned": _pruned(dest, keep)}


def restore_files(src, root, keep_live=(), mirrored=()):
    """The tar.gz `src` (from backup_files) unpacked under `root`, over what is there; the
    files `keep_live` (relative paths) stay as they are, and in the directories `mirrored`
    (relative paths) a file the backup does not hold is removed (the secrets dir: a key made
    since must not outlive the restore). Refuses members that would land outside `root` or
    are links. Returns the number of files restored.

    CLI Example: salt nuc1 ag_app.restore_files /srv/b/1/files.tar.gz /srv/full-stack
    """
    with tarfile.open(src, mode="r:gz") as tar:
        members = tar.getmembers()
        for member in members:  # all checked before the first is written
            if (posixpath.normpath(member.name).startswith(("/", ".."))
                    or not (member.isfile() or member.isdir())):
                raise CommandExecutionError(f"{src} holds {member.name!r}, which is not a plain "
                                            f"file or directory under {root}; nothing restored")
        held = {posixpath.normpath(m.name) for m in members} | set(keep_live)
        for top in mirrored:
            for folder, _, names in os.walk(os.path.join(root, top)):
                for name in names:
                    path = os.path.join(folder, name)
                    if os.path.relpath(path, root) not in held:
                        os.unlink(path)
        wanted = [m for m in members if posixpath.normpath(m.name) not in keep_live]
        for member in wanted:
            tar.extract(member, root, set_attrs=True)
    return sum(m.isfile() for m in wanted)


# what a one-off task keeps of the service it is made like: how its containers run, not what
# they run or how the stack labels them
JOB_CONTAINER_KEYS = ("Env", "Mounts", "Secrets", "Dir", "User", "Hosts", "DNSConfig")
JOB_ENDED = ("complete", "failed", "rejected", "shutdown", "orphaned")


def job_like(service, name, image, cmd, timeout=3600):
    """Run `cmd` (a list) once as the one-off swarm service `name`, made like `service` (its
    environment, mounts, secrets, working dir, networks and placement) but from `image`: what must run
    with a release's new image before `service` itself rolls (an upgrade's migrations, which
    need the stack's network to reach the database). Waits until its task ends (at most
    `timeout` seconds), then removes it. Returns {retcode, node, output (its last 2000
    characters)}; manager only.

    CLI Example: salt nuc1 ag_app.job_like ag-stack_django ag-stack_check IMAGE '[python3, -V]'
    """
    with _engine(f"running {cmd[0]} as {name}, like {service}", patient=True) as client:
        spec = client.api.inspect_service(service)["Spec"]
        template = spec["TaskTemplate"]
        container = {k: v for k, v in template["ContainerSpec"].items() if k in JOB_CONTAINER_KEYS}
        task = {"ContainerSpec": {**container, "Image": image, "Command": list(cmd)},
                "Placement": template.get("Placement") or {},
                "Networks": template.get("Networks") or spec.get("Networks") or [],
                "RestartPolicy": {"Condition": "none"}}
        # no virtual IP: nothing connects to a one-off (and a VIP needs IPVS in the kernel)
        client.api.create_service(task, name=name, labels={"ag.job.like": service},
                                  endpoint_spec={"Mode": "dnsrr"})
        try:
            deadline = time.monotonic() + timeout
            while True:
                tasks = client.api.tasks(filters={"service": name})
                ended = [t for t in tasks if t["Status"]["State"] in JOB_ENDED]
                if ended:
                    break
                if time.monotonic() > deadline:
                    raise CommandExecutionError(f"{name} ({cmd[0]}, like {service}) did not end "
                                                f"within {timeout} s; it was removed")
                time.sleep(1)
            status = ended[0]["Status"]
            retcode = (status.get("ContainerStatus") or {}).get("ExitCode")
            logs = b"".join(client.api.service_logs(name, stdout=True, stderr=True))
            output = logs.decode(errors="replace") or status.get("Err") or ""
            node = client.api.inspect_node(ended[0]["NodeID"])["Description"]["Hostname"] \
                if ended[0].get("NodeID") else None
        finally:
            client.api.remove_service(name)
    return {"retcode": retcode if retcode is not None else -1, "node": node,
            "output": output[-2000:]}


def image_run(image, cmd, binds, environment=None, workdir=None):
    """Run `cmd` (a list) once in a container of the local `image`, with `binds`
    ({host path: container path}, read-write) and `environment` ({name: value}), and remove
    it. Returns {retcode, output} (the output's last 2000 characters).

    CLI Example: salt nuc1 ag_app.image_run 127.0.0.1:5000/django '[python3, -V]' '{}'
    """
    volumes = {host: {"bind": inside, "mode": "rw"} for host, inside in binds.items()}
    with _engine(f"running {cmd[0]} in a container of {image}", patient=True) as client:
        container = client.containers.run(image, cmd, volumes=volumes,
                                          environment=environment or {},
                                          working_dir=workdir, detach=True)
        try:
            retcode = container.wait()["StatusCode"]
            output = container.logs().decode(errors="replace")
        finally:
            container.remove(force=True)
    return {"retcode": retcode, "output": output[-2000:]}
