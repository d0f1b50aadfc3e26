"""States of the autograder application (salt/ag, run by the orchestration ag.deploy): the
registry service, the stack's images, the stack, its convergence, migrations and bootstrap;
and for a cluster's retirement (salt/ag/clean.sls), the stack and the registry service absent.

Each computes what should be, compares it with what is (through the ag_app execution module),
returns result None with the would-be changes under test=True, applies otherwise (the registry
service, the pushed images' digests and the deployed stack's services read back after, failed
when they are not as wanted), and returns True with no changes when nothing differs.
"""

import functools
import hashlib
import json
import logging
import os
import re
import secrets
import time

import yaml
from salt.exceptions import CommandExecutionError

__virtualname__ = "ag_app"

log = logging.getLogger(__name__)

# on the manager: the pinned override, the deployed hash, the revision (which the execution
# module's ag_app.revisions reads)
DEPLOYED_DIR = "/var/lib/ag-deploy"
PAUSE_MARGIN = 60  # seconds beyond their stop grace period for paused workers to stop
POSTGRES = "postgres"  # the compose file's database service
DJANGO = "django"  # the compose file's service that serves the app and owns its migrations
MIGRATE = ("migrate", "--noinput")


def __virtual__():
    if "ag_app.stack_status" not in __salt__:
        return False, ("ag_app needs the ag_app execution module: "
                       + __salt__.missing_fun_string("ag_app.stack_status"))
    if "ag_compose.builds" not in __utils__:
        return False, "ag_app needs _utils/ag_compose.py: run saltutil.sync_all on this minion"
    return __virtualname__


def _ret(name):
    return {"name": name, "result": True, "changes": {}, "comment": ""}


def _failing_as_sentences(state):
    """`state`, returning result False with the execution module's sentence and the node
    (a Docker error, a build that failed) where Salt would print a traceback."""
    @functools.wraps(state)
    def wrapper(name, *args, **kwargs):
        try:
            return state(name, *args, **kwargs)
        except CommandExecutionError as exc:
            return {**_ret(name), "result": False, "comment": f"on {__grains__['id']}: {exc}"}
    return wrapper


@_failing_as_sentences
def registry(name, image, port, publish_mode="ingress", volume="ag-registry",
             target="/var/lib/registry", constraint="node.labels.registry == true",
             timeout=120):
    """The guide's registry service (one replica where `constraint` holds, `port` published in
    `publish_mode`, the named `volume` at `target`), waited for until its task runs."""
    ret = _ret(name)
    wanted = {
        "image": image,
        "ports": [f"{port}:{port}/{publish_mode}"],
        "mounts": [f"{volume}:{target}"] if volume else [],
        "constraints": [constraint],
    }
    current = __salt__["ag_app.service_get"](name)
    changes = __utils__["ag_diff.changes"](current or {}, wanted)
    if changes and not __opts__["test"]:
        apply = "ag_app.service_create" if current is None else "ag_app.service_update"
        after = __salt__[apply](name, image, port, publish_mode=publish_mode, volume=volume,
                                target=target, constraints=[constraint])
    if not changes:
        ret["comment"] = f"service {name} is as configured"
    elif __opts__["test"]:
        ret.update(result=None, changes=changes, comment=f"service {name} would be set")
    else:
        ret.update(changes=changes, comment=f"service {name} set")
        left = __utils__["ag_diff.changes"](after or {}, wanted)
        if left:
            ret.update(result=False, comment=f"service {name} was set but reads back otherwise "
                                             f"({__utils__['ag_diff.described'](left)}); see "
                                             f"docker service inspect {name} on "
                                             f"{__grains__['id']} and re-apply")
            return ret
    if __opts__["test"]:
        return ret
    deadline = time.monotonic() + timeout
    while True:
        try:
            tasks = __salt__["ag_app.tasks"](service=name)
        except CommandExecutionError as exc:  # a manager too busy to answer: ask again
            if time.monotonic() > deadline:
                ret.update(result=False, comment=f"service {name}: {exc}")
                return ret
            tasks = []
        if any(t["state"] == "running" and t["desired_state"] == "running" for t in tasks):
            return ret
        if time.monotonic() > deadline:
            errors = "; ".join(f"{t['state']} {t['error'] or ''}".strip() for t in tasks)
            ret.update(result=False, comment=f"service {name} has no running task after "
                                             f"{timeout}s: {errors or 'no task scheduled'} "
                                             f"(is a node labelled for {constraint!r}?)")
            return ret
        time.sleep(1)


def _git(checkout, *argv):
    """`git -C checkout argv` on this node: (exit code, stdout)."""
    res = __salt__["cmd.run_all"](["git", "-C", checkout, *argv], python_shell=False,
                                  ignore_retcode=True)
    return res["retcode"], res["stdout"].rstrip()


def _edited_tracked_files(checkout):
    """The tracked files with local edits, in the checkout and its submodules (paths from the
    checkout's top)."""
    code, subs = _git(checkout, "submodule", "--quiet", "foreach", "--recursive",
                      "echo $displaypath")
    edited = []
    for sub in ["", *(subs.splitlines() if code == 0 else [])]:
        _, out = _git(os.path.join(checkout, sub), "status", "--porcelain",
                      "--untracked-files=no", "--ignore-submodules=all")
        edited += [os.path.join(sub, line[3:]) for line in out.splitlines()]
    return sorted(edited)


@_failing_as_sentences
def checkout_pristine(name, revision):
    """Upstream's tracked files as upstream has them, in the checkout at `name` and its
    submodules, whenever the checkout is about to move to another `revision`: ag.tweaks edited
    some of them, and git refuses to update a checkout with local edits (it re-applies them
    after the update). Untracked files (the secrets dir, the product's override) stay. At the
    revision already, or with no checkout yet, nothing to do."""
    ret = _ret(name)
    node = __grains__["id"]
    if not os.path.isdir(os.path.join(name, ".git")):
        ret["comment"] = f"no checkout at {name} on {node} yet"
        return ret
    _, head = _git(name, "rev-parse", "HEAD")
    code, wanted = _git(name, "rev-parse", "--verify", "--quiet", f"{revision}^{{commit}}")
    if _git(name, "show-ref", "--verify", "--quiet", f"refs/remotes/origin/{revision}")[0] == 0:
        # a branch: where the remote has it now (git.latest fetches it next)
        code, out = _git(name, "ls-remote", "origin", f"refs/heads/{revision}")
        if code != 0:
            # unknown whether the branch moved: resetting the site's edits for an update
            # that cannot be fetched would leave the checkout untweaked
            raise CommandExecutionError(
                f"the checkout at {name} follows branch {revision}, but its remote origin did "
                f"not answer (git ls-remote, exit {code}); nothing was reset. Check that this "
                "node reaches app:git_url, then re-apply")
        wanted = out.split()[0] if out else ""
    if code == 0 and wanted == head:
        ret["comment"] = f"the checkout at {name} on {node} is at {revision}"
        return ret
    edited = _edited_tracked_files(name)
    if not edited:
        ret["comment"] = f"the checkout at {name} on {node} has no local edits to move with"
        return ret
    ret["changes"] = {"reset": edited}
    moving = f"the checkout at {name} on {node} moves to {revision}"
    if __opts__["test"]:
        ret.update(result=None, comment=f"{moving}: would reset {len(edited)} edited upstream "
                                        "file(s), to be edited again by ag.tweaks")
        return ret
    for argv in (["reset", "--hard", "--quiet"],
                 ["submodule", "--quiet", "foreach", "--recursive", "git reset --hard --quiet"]):
        code, out = _git(name, *argv)
        if code:
            raise CommandExecutionError(f"{moving}: git {' '.join(argv[:2])} failed: {out}")
    left = _edited_tracked_files(name)
    if left:
        raise CommandExecutionError(f"{moving}: still edited after the reset: {', '.join(left)}")
    ret["comment"] = (f"{moving}: reset {len(edited)} edited upstream file(s), to be edited "
                      "again by ag.tweaks")
    return ret


def _compose(checkout, compose_file):
    with open(os.path.join(checkout, compose_file)) as fh:
        return yaml.safe_load(fh)


def _builds(checkout, compose, postgres_version=None):
    """[(context dir, dockerfile, build args, images, content hash tag)] of what the compose
    file builds, its build args given app:postgres_version (ag_compose.build_variables)."""
    found = []
    variables = __utils__["ag_compose.build_variables"](postgres_version)
    for (context, dockerfile, args), images in __utils__["ag_compose.builds"](
            compose, variables).items():
        path = os.path.join(checkout, context)
        tag = __utils__["ag_compose.context_hash"](path, dockerfile, args)[:16]
        found.append((path, dockerfile, args, images, tag))
    return found


@_failing_as_sentences
def images_pushed(name, compose_file="docker-compose.yml", postgres_version=None):
    """Every image the compose file of checkout `name` builds is in the registry under the
    content hash of its build inputs (its build args included, `postgres_version` among
    them); only builds whose hash the registry lacks run. Each is pushed as :<hash> and
    :latest."""
    ret = _ret(name)
    compose = _compose(name, compose_file)
    todo = []
    for path, dockerfile, args, images, tag in _builds(name, compose, postgres_version):
        if any(__salt__["ag_app.image_digest"](f"{i}:{tag}") is None for i in images):
            todo.append((path, dockerfile, args, images, tag))
    if not todo:
        ret["comment"] = "every image of the stack is pushed at its content hash"
        return ret
    changes = {i: {"new": tag} for *_, images, tag in todo for i in images}
    if __opts__["test"]:
        ret.update(result=None, changes=changes,
                   comment=f"{len(changes)} image(s) would be built and pushed")
        return ret
    pushed = {}
    for path, dockerfile, args, images, tag in todo:
        # one build per context, Dockerfile and args, tagged and pushed under each image's names
        pushed.update(__salt__["ag_app.image_build_push"](
            path, dockerfile, [f"{image}:{version}" for image in images for version in (tag, "latest")],
            dict(args)))
    unlike = sorted(ref for ref, digest in pushed.items()
                    if __salt__["ag_app.image_digest"](ref) != digest)
    if unlike:
        ret.update(result=False, changes=changes,
                   comment=f"pushed, but the registry reads back otherwise: {', '.join(unlike)}")
        return ret
    ret.update(changes=changes, comment=f"{len(changes)} image(s) built and pushed")
    return ret


def _digest_of(paths, texts=()):
    """sha256 of the files `paths` and the strings `texts`, in order: what a record keeps."""
    digest = hashlib.sha256()
    for path in paths:
        with open(path, "rb") as fh:
            digest.update(hashlib.sha256(fh.read()).digest())
    for text in texts:
        digest.update(hashlib.sha256(text.encode()).digest())
    return digest.hexdigest()


def _recorded(record):
    """What the file `record` (in DEPLOYED_DIR) keeps, None when there is none."""
    try:
        with open(record) as fh:
            return fh.read().strip()
    except OSError:
        return None


def _record(record, value):
    """`value` kept in the file `record` in DEPLOYED_DIR, read by _recorded."""
    os.makedirs(DEPLOYED_DIR, mode=0o700, exist_ok=True)
    with open(record, "w") as fh:
        fh.write(value + "\n")


@_failing_as_sentences
def stack_deployed(name, checkout, compose_files, workers, concurrency, postgres_version=None,
                   web_on_webserver_only=True, worker_stop_grace_period=None):
    """Stack `name` runs `compose_files` (relative to `checkout`, upstream's first) with the
    override after upstream's (_utils/ag_compose.py: `workers` for gunicorn, `concurrency`
    per celery service, the secret files given as swarm secrets named by content, postgres
    reading the database password secret, `postgres_version`, 80/443 on the webserver node
    only with `web_on_webserver_only`, the celery workers' stop grace period) and every built
    image pinned by its registry digest; deployed only when that effective content differs
    from the last deploy or a service of it is missing, so a no-op restarts nothing. After a
    deploy, the stack's secrets no service is given any longer are removed. The override
    and the pins are written to DEPLOYED_DIR on this node; test=True judges the same content
    a deploy would use."""
    ret = _ret(name)
    absent_files = [path for path in compose_files
                    if not os.path.isfile(os.path.join(checkout, path))]
    if absent_files:
        ret.update(result=False, comment=(
            f"no {', '.join(absent_files)} in the checkout {checkout} on {__grains__['id']}: "
            "put it there, or take it out of autograder:app:extra_compose_files"))
        return ret
    override = __utils__["ag_compose.checkout_override"](checkout, workers, concurrency,
                                                         postgres_version, web_on_webserver_only,
                                                         worker_stop_grace_period)
    compose = _compose(checkout, compose_files[0])
    digests = {}
    missing = []
    for *_, images, tag in _builds(checkout, compose, postgres_version):
        for image in images:
            digest = __salt__["ag_app.image_digest"](f"{image}:{tag}")
            if digest is None:
                missing.append(f"{image}:{tag}")
            digests[image] = digest
    pins = __utils__["ag_compose.pinned"](compose, digests)
    generated = {
        "override": yaml.safe_dump(override, sort_keys=True),
        "images": yaml.safe_dump(pins, sort_keys=True),
    }
    content = _digest_of([os.path.join(checkout, path) for path in compose_files],
                         generated.values())
    record = os.path.join(DEPLOYED_DIR, f"{name}.sha256")
    revision = os.path.join(DEPLOYED_DIR, f"{name}.revision")
    deployed = _recorded(record)
    present = set(__salt__["ag_app.stack_status"](name))
    absent = sorted(set(compose.get("services") or {}) - present)
    if deployed == content and not absent and not missing:
        ret["comment"] = f"stack {name} runs this content already"
        # a release that changed none of it is still the one running: its revision recorded
        # (a change of its own, which the deploy's check sees)
        runs, recorded = _revision_of(checkout), _recorded(revision)
        if runs != recorded:
            ret["changes"] = {"revision": {"old": recorded, "new": runs}}
            if __opts__["test"]:
                ret.update(result=None, comment=ret["comment"] + "; would record its revision")
            else:
                _record_revision(revision, runs)
        return ret
    images = {s["name"]: s["image"] for s in __salt__["ag_app.services"]()}  # what runs now
    major = _postgres_major_wanted(compose, override, postgres_version)
    major_record = os.path.join(DEPLOYED_DIR, f"{name}.postgres-major")
    moving = _postgres_major_move(name, compose, major, images.get(f"{name}_{POSTGRES}"),
                                  major_record)
    if moving:
        ret.update(result=False, comment=moving)
        return ret
    changes = {"content": {"old": deployed, "new": content}}
    if absent:
        changes["services"] = {"new": absent}
    django = pins["services"].get(DJANGO, {})
    running = images.get(f"{name}_{DJANGO}")
    upgrade = running is not None and _digest(running) != _digest(django.get("image", ""))
    if upgrade:
        changes["migrations"] = {"new": f"run with the new {DJANGO} image before any service rolls"}
    if __opts__["test"]:
        ret.update(result=None, changes=changes, comment=f"stack {name} would be deployed")
        return ret
    if missing:
        ret.update(result=False, comment=f"the registry lacks {', '.join(missing)}: the images "
                                         "step (ag_app.images_pushed) must run first")
        return ret
    if upgrade:
        # no worker runs the old code against a database being migrated: the celery workers
        # stop (each finishing its task) and what is queued waits; the deploy resumes them
        workers = [f"{name}_{worker}" for worker in __utils__["ag_compose.celery_workers"](compose)
                   if worker in present]
        try:
            paused = __salt__["ag_app.services_paused"](
                workers, int(worker_stop_grace_period or 0) + PAUSE_MARGIN)
            job = __salt__["ag_app.job_like"](f"{name}_{DJANGO}", f"{name}_migrate",
                                              django["image"], ["python3", "manage.py", *MIGRATE])
        except CommandExecutionError:
            __salt__["ag_app.services_resumed"](workers)  # those paused before it failed
            raise
        if job["retcode"] != 0:
            __salt__["ag_app.services_resumed"](paused)
            ret.update(result=False, comment=(
                f"the migrations of the new release failed on {job['node']} (exit "
                f"{job['retcode']}), in a one-off task of the new {DJANGO} image:\n"
                f"{job['output'].strip()}\nThe stack was not deployed: the site still serves the "
                "old release (its celery workers resumed). Fix the cause, or set app:revision "
                "back, then deploy again"))
            return ret
        changes["migrations"]["new"] = _applied_migrations(job["output"])
        changes["paused"] = {"new": paused}
    os.makedirs(DEPLOYED_DIR, mode=0o700, exist_ok=True)
    files = {}
    for kind, text in generated.items():
        files[kind] = os.path.join(DEPLOYED_DIR, f"{name}.{kind}.yml")
        with open(files[kind], "w") as fh:
            fh.write(text)
    # upstream's file first (relative paths resolve against its directory), ours right after
    # it so a site's own extra files still win, the image pins last
    ordered = [compose_files[0], files["override"], *compose_files[1:], files["images"]]
    __salt__["ag_app.stack_deploy"](name, ordered, checkout)
    unread = sorted(set(compose.get("services") or {}) - set(__salt__["ag_app.stack_status"](name)))
    if unread:  # no record: the next run deploys again
        ret.update(result=False, changes=changes,
                   comment=f"stack {name} was deployed but reads back without {', '.join(unread)}")
        return ret
    _record(record, content)
    _record_revision(revision, _revision_of(checkout))
    if major:  # what a built postgres image's name does not say
        _record(major_record, major)
    pruned = __salt__["ag_app.stack_secrets_pruned"](name)
    if pruned:  # names made of digests, never a value
        changes["secrets"] = {"old": pruned}
    ret.update(changes=changes, comment=f"stack {name} deployed")
    return ret


def _revision_of(checkout):
    """The git revision `checkout` holds; None when it is no git repository."""
    if os.path.isdir(os.path.join(checkout, ".git")):
        return __salt__["git.revision"](checkout)
    return None


def _record_revision(record, runs):
    """`runs`, the git revision of the checkout the stack now runs (_revision_of), in `record`,
    where ag.upgrade_backup compares the checkout's with it; None (no git repository): none."""
    if runs:
        _record(record, runs)
    elif os.path.exists(record):
        os.unlink(record)


SHADOWED = "# ag.tweaks: set again below (docker refuses a key twice; the later one counts): "


def compose_keys_once(name):
    """The compose file `name` sets each key of a mapping once: an earlier line its mapping
    sets again (upstream's postgres and redis `image:`) becomes a comment, as the later
    value is the one docker read before it refused repeated keys. Only such lines change."""
    ret = _ret(name)
    with open(name) as fh:
        lines = fh.read().splitlines(keepends=True)
    try:
        shadowed = __utils__["ag_compose.shadowed_lines"]("".join(lines))
    except (ValueError, yaml.YAMLError) as exc:
        ret.update(result=False, comment=f"{name} on {__grains__['id']}: {exc}")
        return ret
    if not shadowed:
        ret["comment"] = f"{name} sets each key once"
        return ret
    changes = {"shadowed": {"new": [f"line {n + 1}: {lines[n].strip()}" for n in shadowed]}}
    if __opts__["test"]:
        ret.update(result=None, changes=changes,
                   comment=f"{len(shadowed)} repeated key(s) of {name} would become comments")
        return ret
    for n in shadowed:
        indent = lines[n][:len(lines[n]) - len(lines[n].lstrip())]
        lines[n] = f"{indent}{SHADOWED}{lines[n].lstrip()}"
    with open(name, "w") as fh:
        fh.write("".join(lines))
    ret.update(changes=changes, comment=f"{len(shadowed)} repeated key(s) of {name} made comments")
    return ret


def tls_loaded(name, files):
    """The TLS `files` (the certificate and key on this node) are those the nginx task of
    service `name` here loaded: when they changed since (a renewed certificate), `nginx -s
    reload` in the task loads them without a restart. A digest of what was loaded (never
    their content) is kept in DEPLOYED_DIR; with no nginx task here, nginx reads them at its
    next start, so the digest is only noted."""
    ret = _ret(name)
    node = __grains__["id"]
    digest = _digest_of(files)
    record = os.path.join(DEPLOYED_DIR, f"{name}.tls.sha256")
    loaded = _recorded(record)
    if loaded == digest:
        ret["comment"] = f"{name} on {node} serves these TLS files"
        return ret
    renewed = {"tls": {"old": (loaded or "")[:12], "new": digest[:12]}}
    if __opts__["test"]:
        if loaded is not None and __salt__["ag_app.local_task_running"](name):
            ret.update(result=None, changes=renewed,
                       comment=f"{name} on {node} would reload the renewed TLS files")
        return ret
    # None: no task here, nginx reads the files at its next start
    res = None if loaded is None else __salt__["ag_app.local_task_exec"](
        name, ["nginx", "-s", "reload"])
    if res is not None and res["retcode"] != 0:
        ret.update(result=False, comment=f"nginx -s reload in {name} on {node} failed: "
                                         f"{_tail(res)}")
        return ret
    if res is not None:
        ret.update(changes=renewed, comment=f"{name} on {node} reloaded the renewed TLS files")
    _record(record, digest)
    return ret


CRASH_LOOP = 5  # failed tasks of a service, while nothing else of its stack got further
LOG_LINES = 5  # of each task shown in a convergence failure


def _unconverged(stack, status):
    """A line per service of `stack` not converged, by the name `docker service ps` takes."""
    return [f"{stack}_{service}: {s['running']}/{s['desired']} running"
            + (f", update {s['update']}" if s["update"] else "")
            for service, s in sorted(status.items()) if not s["converged"]]


def _task_line(task):
    parts = [f"{task['state']} {task['since']}s ago"]
    if task["exit_code"]:
        parts.append(f"exit {task['exit_code']}")
    # Docker's message says where a task is ("pulling image"); its error, why it ended
    if task["error"] or task["message"]:
        parts.append(task["error"] or task["message"])
    return f"task {task['id'][:12]} on {task['node'] or 'no node'}: {', '.join(parts)}"


def _nodes_not_ready():
    """A line per swarm node that is not Ready: the swarm starts its tasks elsewhere, or
    nowhere, so nothing that runs there converges."""
    try:
        nodes = __salt__["ag_swarm.nodes"]()
    except CommandExecutionError as exc:
        return [f"(no node list: {exc})"]
    return [f"node {n['hostname']} ({n['role']}) is {n['state']}: the swarm restarts its "
            "tasks elsewhere or nowhere; if it is alive but busy, it missed its heartbeats "
            "(autograder:swarm:dispatcher_heartbeat)"
            for n in sorted(nodes, key=lambda n: n["hostname"] or "") if n["state"] != "ready"]


def _why_unconverged(stack, status):
    """The swarm nodes that are not Ready, then each service not converged with its recent
    tasks (state, exit code, Docker's error) and the last lines each task logged: what a
    sysadmin needs to tell a crash from a wait."""
    lines = _nodes_not_ready()
    for service, s in sorted(status.items()):
        if s["converged"]:
            continue
        lines.append(_unconverged(stack, {service: s})[0] + ("" if s["tasks"] else "; no task"))
        try:
            logs = __salt__["ag_app.task_logs"](f"{stack}_{service}",
                                                  [t["id"] for t in s["tasks"]], LOG_LINES)
        except CommandExecutionError as exc:
            logs, lines = {}, lines + [f"  (no logs: {exc})"]
        for task in s["tasks"]:
            lines.append("  " + _task_line(task))
            lines += [f"    | {line}" for line in logs.get(task["id"], [])]
    return "\n".join(lines)


def converged(name, timeout=600, interval=1):
    """Wait until every service of stack `name` runs its desired tasks, for as long as the
    stack gets further: a service converges, or its tasks run in greater number or get
    further towards running (pulled, started) than ever before. A service that fails while
    another is still on its way is waited for (nginx exits until django's name resolves).
    Fails, naming for each service not converged its recent tasks (node, state, exit code,
    Docker's error) and their last log lines:
    - at once when every service not converged keeps failing (CRASH_LOOP failed tasks each
      since the stack last got further): a crash loop, which waiting does not end;
    - after `timeout` seconds in which the stack got no further, or the engine did not
      answer (its error named).
    Changes nothing."""
    ret = _ret(name)
    start = last_progress = time.monotonic()
    best = {}  # service → the furthest (converged, running, furthest state) it got
    failed_before = None  # service → its failed tasks when the stack last got further
    while True:
        try:
            status = __salt__["ag_app.stack_status"](name)
        except CommandExecutionError as exc:
            # a manager too busy to answer in time while the stack starts (seen on emulated
            # guests: "rpc error: code = DeadlineExceeded") is no progress and no failure yet
            if __opts__["test"] or time.monotonic() - last_progress > timeout:
                ret.update(result=False, comment=f"stack {name}: {exc}")
                return ret
            log.warning("stack %s: %s; asking again in %ss", name, exc, interval)
            time.sleep(interval)
            continue
        pending = {service: s for service, s in status.items() if not s["converged"]}
        if status and not pending:
            ret["comment"] = f"all {len(status)} services of {name} run their desired tasks"
            return ret
        if __opts__["test"]:
            ret.update(result=None, comment=f"would wait for stack {name}: "
                                            + ("; ".join(_unconverged(name, status))
                                               or "not deployed yet"))
            return ret
        now = time.monotonic()
        marks = {service: (s["converged"], s["running"], s["furthest"])
                 for service, s in status.items()}
        if failed_before is None or any(mark > best.get(service, mark)
                                        for service, mark in marks.items()):
            last_progress = now
            failed_before = {service: set(s["failed"]) for service, s in status.items()}
        for service, mark in marks.items():
            best[service] = max(mark, best.get(service, mark))
        failing = {service: len(set(s["failed"]) - failed_before.get(service, set()))
                   for service, s in pending.items()}
        if pending and min(failing.values()) >= CRASH_LOOP:
            why = (f"every service not running keeps failing ({CRASH_LOOP} or more failed "
                   f"tasks each since the stack last got further, {now - start:.0f}s into the "
                   "wait): waiting will not fix it, their tasks say why")
        elif now - last_progress > timeout:
            why = (f"it got no further for {timeout}s ({now - start:.0f}s into the wait; "
                   "autograder:app:converge_timeout)")
        else:
            time.sleep(interval)
            continue
        ret.update(result=False, comment=f"stack {name} did not converge: {why}\n"
                                         + (_why_unconverged(name, status)
                                            or "no service deployed"))
        return ret


def _digest(reference):
    """The sha256:... of an image reference pinned by digest (the reference itself when not)."""
    return reference.rpartition("@")[2]


def _postgres_major(image):
    """The postgres major version an image reference names ('9.5', '14'), None when its tag
    names none (latest, a digest alone)."""
    tag = (image or "").split("@")[0].rpartition("/")[2].partition(":")[2]
    found = re.match(r"(\d+)(?:\.(\d+))?", tag)
    if not found:
        return None
    return found.group(0) if int(found.group(1)) < 10 and found.group(2) else found.group(1)


def _postgres_major_wanted(compose, override, postgres_version):
    """The postgres major version the deploy gives the stack: its image's tag, or for a
    release that builds postgres (2025.08 on) `postgres_version`, its build arg; None when
    neither names one."""
    service = compose.get("services", {}).get(POSTGRES) or {}
    if service.get("build"):
        return _postgres_major(f"postgres:{postgres_version}") if postgres_version else None
    return _postgres_major((override.get("services", {}).get(POSTGRES) or {}).get("image")
                           or service.get("image"))


def _postgres_major_move(name, compose, new, running, record):
    """A sentence when the deploy would give the postgres service of stack `name`, which
    runs the image `running` (None: none runs), another major version than `new`: it
    refuses the data files the old one made (and a new server must never be pointed at
    them), so the move goes through a dump and a restore; the steps. The running major is
    its image's tag, or for an image without one (built, named by digest) what the last
    deploy recorded in `record`. None when the major version stays or is not known."""
    service = compose.get("services", {}).get(POSTGRES) or {}
    untagged = running and ":" not in running.split("@")[0].rpartition("/")[2]
    old = _recorded(record) if untagged else _postgres_major(running)
    if not (old and new) or old == new:
        return None
    volumes = [parts[0] for parts in (str(v).split(":") for v in service.get("volumes") or [])
               if len(parts) > 1 and parts[1].rstrip("/") == "/var/lib/postgresql/data"]
    volume = f"{name}_{volumes[0]}" if volumes else "the database's volume"
    return (f"postgres would move from major version {old} to {new}, whose server refuses the "
            f"data files {old} made; nothing was changed. Keep app:postgres_version at {old}, "
            f"or move the data by dump and restore: 1. salt-run ag.backup (note its name); "
            f"2. docker service rm {name}_{POSTGRES} on the manager, then docker volume rm "
            f"{volume} on the node labelled database; 3. salt-run ag.deploy with the new "
            f"app:postgres_version (an empty database, migrated); 4. salt-run ag.restore "
            f"name=<the backup's name>")


def _manage(service, *args):
    return __salt__["ag_app.local_task_exec"](service, ["python3", "manage.py", *args])


def _tail(res):
    return "\n".join((res["stdout"] + res["stderr"]).strip().splitlines()[-20:])


def _applied_migrations(output):
    """The migrations `manage.py migrate` says it applied ("Applying app.name... OK")."""
    return [line.strip()[len("Applying "):].split("...")[0] for line in output.splitlines()
            if line.strip().startswith("Applying ")]


def _unapplied(showmigrations):
    """The unapplied migrations as migrate names them (app.name): showmigrations prints each
    app unindented, then its migrations below it, the unapplied ones " [ ] name"."""
    found, app = [], None
    for line in showmigrations.splitlines():
        if not line.startswith(" "):
            app = line.strip()
        elif line.strip().startswith("[ ]"):
            found.append(f"{app}.{line.strip()[3:].strip()}")
    return found


SECRET_FILES = ("secret_key", "gpg_key_id_file", "gpg_key_password")  # generate_secrets.py's
DB_PASSWORD = "db_password"  # made here: upstream's default 'postgres' never survives a deploy
APP_DIR = "/usr/src/app"  # the server images' WORKDIR, where generate_secrets.py is


def _env_value(env_file, key):
    """`key`'s value in the env file (KEY=VALUE lines), or None."""
    with open(env_file) as fh:
        for line in fh:
            name, sep, value = line.strip().partition("=")
            if sep and name == key:
                return value
    return None


@_failing_as_sentences
def secrets_generated(name, service="django", compose_file="docker-compose.yml"):
    """Upstream's secrets (the Django secret key, the GPG key, its fingerprint and passphrase)
    in the secrets dir of the checkout `name`, made once by upstream's generate_secrets.py
    run in the image of `service` (its `latest`, built by ag.images): it needs Django,
    python-gnupg and gpg, which the image has and a bare node has not. Then the database
    password, made once here (readable by root only). Existing secrets are kept (a new GPG
    key would void every receipt sent); nothing of them is returned."""
    ret = _ret(name)
    node = __grains__["id"]
    spec = _compose(name, compose_file)["services"][service]
    context = spec["build"]["context"] if isinstance(spec["build"], dict) else spec["build"]
    server = os.path.normpath(os.path.join(name, context))
    secrets_dir = os.path.join(server, "autograder", "settings", "secrets")
    missing = [f for f in SECRET_FILES + (DB_PASSWORD,)
               if not os.path.exists(os.path.join(secrets_dir, f))]
    if not missing:
        ret["comment"] = f"the app's secrets are in {secrets_dir} on {node}"
        return ret
    image = f"{spec['image']}:latest"
    upstream = [f for f in missing if f in SECRET_FILES]
    ret["changes"] = {"generated": missing}
    if __opts__["test"]:
        ret.update(result=None, comment=f"{', '.join(missing)} would be made in {secrets_dir} "
                                        f"on {node}" + (f", by generate_secrets.py in {image}"
                                                        if upstream else ""))
        return ret
    os.makedirs(secrets_dir, mode=0o700, exist_ok=True)
    if upstream:
        failed = _generate_secrets(ret, image, server, secrets_dir)
        if failed:
            return failed
    if DB_PASSWORD in missing:
        with os.fdopen(os.open(os.path.join(secrets_dir, DB_PASSWORD),
                               os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as fh:
            fh.write(secrets.token_urlsafe(32) + "\n")
    ret["comment"] = f"{', '.join(missing)} made in {secrets_dir} on {node}"
    return ret


def _generate_secrets(ret, image, server, secrets_dir):
    """Upstream's generate_secrets.py run in `image` with the secrets dir bound where it
    writes; the failed `ret` when it failed or left a file missing, else None."""
    node = __grains__["id"]
    sender = _env_value(os.path.join(server, "_prod.env"), "EMAIL_FROM_ADDR")
    res = __salt__["ag_app.image_run"](
        image, ["python3", "generate_secrets.py"],
        {secrets_dir: f"{APP_DIR}/autograder/settings/secrets"},
        {"EMAIL_FROM_ADDR": sender} if sender else {}, APP_DIR)
    left = [f for f in SECRET_FILES if not os.path.exists(os.path.join(secrets_dir, f))]
    if not res["retcode"] and not left:
        return None
    why = (f"exited {res['retcode']}: {res['output'].strip()[-500:]}" if res["retcode"]
           else f"ran, but {', '.join(left)} is still missing")
    ret.update(result=False, changes={}, comment=f"generate_secrets.py in {image} on {node} {why}")
    return ret


@_failing_as_sentences
def database_password(name, password_file):
    """The database of this node's running task of swarm service `name` (the stack's
    postgres) lets its user in with the password in `password_file` (the generated
    db_password), as the app will connect. A database made before the product deployed it (an
    install it adopts: upstream's 'postgres') keeps the password it was made with, whatever a
    new POSTGRES_PASSWORD_FILE says, so it is set in the running database, before the stack
    rolls the app onto the new one. Nothing where no task of it runs here (a new database is
    made with it) or the file is not made yet. The password is read from the file where it is
    used, never passed or returned."""
    ret = _ret(name)
    node = __grains__["id"]
    if not os.path.isfile(password_file):
        ret["comment"] = f"no {password_file} on {node} yet: the secrets step makes it"
        return ret
    works = __salt__["ag_app.local_task_password_works"](name, password_file)
    if works is None:
        ret["comment"] = f"no task of {name} runs on {node}: a new database takes the password"
        return ret
    if works:
        ret["comment"] = f"the database of {name} on {node} takes the password in {password_file}"
        return ret
    changes = {"password": {"old": "another one (made before this deploy)",
                            "new": f"the one in {password_file}"}}
    if __opts__["test"]:
        ret.update(result=None, changes=changes, comment=(
            f"the database of {name} on {node} would take the password in {password_file}"))
        return ret
    __salt__["ag_app.local_task_password_set"](name, password_file)
    if not __salt__["ag_app.local_task_password_works"](name, password_file):
        return _fail(ret, f"the database of {name} on {node} was given the password in "
                          f"{password_file}, but still refuses it", changes)
    ret.update(changes=changes, comment=(
        f"the database of {name} on {node} takes the password in {password_file} now"))
    return ret


@_failing_as_sentences
def migrated(name):
    """`manage.py migrate --noinput` in this node's task of service `name` (the stack's
    django); nothing where no task of it runs. Fails with the output's tail on a non-zero
    exit. test=True asks `manage.py showmigrations` what would be applied."""
    ret = _ret(name)
    node = __grains__["id"]
    test = __opts__["test"]
    command = ("showmigrations",) if test else MIGRATE
    res = _manage(name, *command)
    if res is None:
        ret["comment"] = f"no task of {name} runs on {node}"
        return ret
    if res["retcode"] != 0:
        ret.update(result=False, comment=f"manage.py {command[0]} in {name} on {node} failed "
                                         f"(exit {res['retcode']}):\n{_tail(res)}")
        return ret
    migrations = _unapplied(res["stdout"]) if test else _applied_migrations(res["stdout"])
    if not migrations:
        ret["comment"] = f"no migrations to apply on {node}"
        return ret
    ret["changes"] = {"migrations": {"new": migrations}}
    if test:
        ret.update(result=None, comment=f"{len(migrations)} migration(s) would be applied on {node}")
    else:
        ret["comment"] = f"applied {len(migrations)} migration(s) on {node}"
    return ret


BOOTSTRAP = """
import json
from django.contrib.auth.models import User
from autograder.core.models import Course
DRY = {dry!r}
todo = []
users = []
for name in {admins!r}:
    user = User.objects.filter(username=name).first()
    if user is None:
        todo.append('superuser ' + name)
        if not DRY:
            user = User.objects.create(username=name, is_superuser=True)
    elif not user.is_superuser:
        todo.append('superuser flag of ' + name)
        if not DRY:
            user.is_superuser = True
            user.save()
    users.append((name, user))
if {course!r}:
    course = Course.objects.filter(name={course!r}).first()
    if course is None:
        todo.append('course ' + {course!r})
        if not DRY:
            course = Course.objects.create(name={course!r})
    have = set(u.pk for u in course.admins.all()) if course is not None else set()
    for name, user in users:
        if user is None or user.pk not in have:
            todo.append('admin ' + name + ' of ' + {course!r})
            if not DRY:
                course.admins.add(user)
print('AG-BOOTSTRAP ' + json.dumps(todo))
"""


@_failing_as_sentences
def bootstrapped(name, admins=(), course=None):
    """The bootstrap of the guide through this node's task of service `name` (django):
    `admins` are superusers and admins of the course named `course`; what exists is left
    alone. Nothing where no task of it runs."""
    ret = _ret(name)
    node = __grains__["id"]
    if not admins and not course:
        ret["comment"] = "no bootstrap in the pillar"
        return ret
    code = BOOTSTRAP.format(dry=bool(__opts__["test"]), admins=list(admins), course=course)
    res = _manage(name, "shell", "-c", code)
    if res is None:
        ret["comment"] = f"no task of {name} runs on {node}"
        return ret
    marker = [line for line in res["stdout"].splitlines() if line.startswith("AG-BOOTSTRAP ")]
    if res["retcode"] != 0 or not marker:
        ret.update(result=False, comment=f"the bootstrap in {name} on {node} failed "
                                         f"(exit {res['retcode']}):\n{_tail(res)}")
        return ret
    done = json.loads(marker[-1][len("AG-BOOTSTRAP "):])
    if done:
        ret["changes"] = {"bootstrap": {"new": done}}
        if __opts__["test"]:
            ret["result"] = None
    ret["comment"] = (f"bootstrap on {node}: " + ", ".join(done) if done
                      else f"bootstrap present on {node}")
    return ret


# --- clean: what the deploy made, removed (salt/ag/clean.sls) -----------------------------

GONE_POLL = 1  # seconds between two looks at the tasks of what was removed


def _fail(ret, comment, changes=None):
    ret.update(result=False, comment=comment, changes=changes or {})
    return ret


def _wait_gone(tasks, timeout):
    """Poll `tasks()` (what is still there) until it is empty or `timeout` seconds pass;
    returns what is left then."""
    deadline = time.monotonic() + timeout
    while True:
        left = tasks()
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(GONE_POLL)


@_failing_as_sentences
def service_absent(name, timeout=120):
    """No swarm service `name` (the registry), and none of its tasks left (waited for at most
    `timeout` seconds, so its port is free again). Its volume, and the images in it, stay."""
    ret = _ret(name)
    node = __grains__["id"]
    found = [s["id"] for s in __salt__["ag_app.services"]() if s["name"] == name]
    if not found:
        ret["comment"] = f"no service {name} in the swarm of {node}"
        return ret
    changes = {"service": {"old": name, "new": None}}
    if __opts__["test"]:
        ret.update(result=None, changes=changes, comment=f"service {name} would be removed")
        return ret
    __salt__["ag_app.service_remove"](name)
    # by ID: a task filter naming a removed service finds nothing
    left = _wait_gone(lambda: [t["id"] for t in __salt__["ag_app.tasks"]()
                               if t["service_id"] in found], timeout)
    after = __salt__["ag_app.service_get"](name)
    if after is not None or left:
        return _fail(ret, f"service {name} was removed on {node}, but "
                          + ("it is back" if after is not None else
                             f"{len(left)} of its tasks did not stop within {timeout}s")
                          + f": see docker service ps {name} and re-apply", changes)
    ret.update(changes=changes, comment=f"service {name} removed")
    return ret


def _stack_records(name):
    """The files of stack `name` in DEPLOYED_DIR on this node: its own (`name.sha256`, the
    override, the pins, the revision) and its services' (`name_nginx.tls.sha256`)."""
    try:
        found = os.listdir(DEPLOYED_DIR)
    except FileNotFoundError:
        return []
    return sorted(os.path.join(DEPLOYED_DIR, f) for f in found
                  if f.startswith((f"{name}.", f"{name}_")))


def records_absent(name):
    """No file the deploy keeps of stack `name` on this node (in DEPLOYED_DIR: the manager's
    digest, override, pins and revision; a webserver node's TLS digest), so a deploy after
    deploys and loads everything again."""
    ret = _ret(name)
    node = __grains__["id"]
    records = _stack_records(name)
    if not records:
        ret["comment"] = f"no file of stack {name} on {node}"
        return ret
    ret["changes"] = {"files": {"old": records, "new": []}}
    if __opts__["test"]:
        ret.update(result=None, comment=f"{len(records)} file(s) of stack {name} on {node} "
                                        "would be removed")
        return ret
    for path in records:
        os.remove(path)
    ret["comment"] = f"{len(records)} file(s) of stack {name} on {node} removed"
    return ret


@_failing_as_sentences
def stack_absent(name, timeout=120):
    """No stack `name`: its services removed, then, once their tasks are gone (waited for at
    most `timeout` seconds), its networks, secrets and configs, as `docker stack rm` does. Its
    named volumes (the database's among them) stay on the nodes that ran it; the deploy's
    files of it go by records_absent."""
    ret = _ret(name)
    node = __grains__["id"]
    current = __salt__["ag_app.stack_objects"](name)
    held = {kind: names for kind, names in current.items() if names and kind != "tasks"}
    if not held:
        ret["comment"] = f"no stack {name} in the swarm of {node}"
        return ret
    changes = {kind: {"old": names, "new": []} for kind, names in held.items()}
    if __opts__["test"]:
        ret.update(result=None, changes=changes, comment=f"stack {name} would be removed")
        return ret
    __salt__["ag_app.stack_remove"](name, "services")
    tasks = _wait_gone(lambda: __salt__["ag_app.stack_objects"](name)["tasks"], timeout)
    if tasks:
        return _fail(ret, f"the services of stack {name} were removed on {node}, but "
                          f"{len(tasks)} of its tasks did not stop within {timeout}s, so its "
                          f"networks stay: see docker stack ps {name} and re-apply", changes)
    for kind in ("networks", "secrets", "configs"):
        __salt__["ag_app.stack_remove"](name, kind)
    left = {kind: names for kind, names in __salt__["ag_app.stack_objects"](name).items()
            if names}
    if left:
        shown = "; ".join(f"{kind} {', '.join(names)}" for kind, names in sorted(left.items()))
        return _fail(ret, f"stack {name} was removed on {node}, but the swarm still holds "
                          f"{shown}: something deployed it again? re-apply", changes)
    ret.update(changes=changes, comment=f"stack {name} removed")
    return ret
