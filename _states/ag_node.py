"""Node states that Salt's own states get wrong for this project.

``ag_node.daemon_json``
    Merge the keys this project owns into /etc/docker/daemon.json, keeping every key the admin
    set; refuse live-restore (swarm mode forbids it). Changes only when the parsed config
    differs, so a ``watch`` on it restarts dockerd only for a real change.

``ag_node.nfs_mounted``
    An NFS mount with its fstab entry that never remounts a mount that is already right (Salt's
    mount.mounted remounts NFS on every run), corrects a wrong source or wrong options, and
    leaves fstab and the mount point alone when the server cannot be reached. A mount is read
    back from the kernel before fstab is written.

``ag_node.script_applied``
    Runs a script when its own check says what it builds is not live, then checks again (the
    firewall's rules).

Every function: desired → actual → diff → (test: result None + would-be changes) → apply.
"""

import json
import os
import socket
import time

NFS_PORT = 2049
# options the mount helper consumes: the kernel never lists them for a live mount
USERSPACE_OPTS = {"_netdev", "auto", "noauto", "defaults", "nofail", "user", "nouser", "users"}
# flags whose opposite the kernel lists when the flag itself is off
OPPOSITE_FLAGS = {
    "rw": "ro", "ro": "rw", "hard": "soft", "soft": "hard", "sync": "async", "async": "sync",
    "ac": "noac", "noac": "ac", "cto": "nocto", "nocto": "cto",
}
REFUSED_DAEMON_KEYS = {"live-restore": "swarm mode refuses to run with live-restore"}


def _ret(name):
    return {"name": name, "result": True, "changes": {}, "comment": ""}


# --- daemon.json ----------------------------------------------------------------------------


def merge_config(current: dict, owned: dict) -> dict:
    """``current`` with ``owned`` merged in: dicts merge key by key, anything else is replaced;
    keys only ``current`` has are kept."""
    merged = dict(current)
    for key, value in owned.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge_config(merged[key], value)
        else:
            merged[key] = value
    return merged


def refused_keys(owned: dict, current: dict) -> list:
    """Sentences for every refused key set by the pillar or, truthy, by the admin."""
    problems = []
    for key, why in REFUSED_DAEMON_KEYS.items():
        if key in owned:
            problems.append(f"the pillar sets {key} ({why}): remove it from autograder:docker:daemon")
        elif current.get(key):
            problems.append(f"{key} is true in the admin's daemon.json ({why}): remove it")
    return problems


def daemon_json(name, keys):
    """Merge ``keys`` (the daemon.json keys this project owns) into the JSON file ``name``."""
    ret = _ret(name)
    node = __grains__.get("id", "this node")
    current = {}
    if os.path.exists(name):
        try:
            with open(name, encoding="utf-8") as fh:
                text = fh.read()
            current = json.loads(text) if text.strip() else {}
        except ValueError as exc:
            ret["result"] = False
            ret["comment"] = f"{name} on {node} is not valid JSON ({exc}); fix or remove it."
            return ret
        if not isinstance(current, dict):
            ret["result"] = False
            ret["comment"] = f"{name} on {node} is not a JSON object; fix or remove it."
            return ret
    problems = refused_keys(keys, current)
    if problems:
        ret["result"] = False
        ret["comment"] = f"{name} on {node}: " + "; ".join(problems) + "."
        return ret

    merged = merge_config(current, keys)
    changes = __utils__["ag_diff.changes"](current, merged)
    if not changes:
        ret["comment"] = f"{name} already has the project's keys."
        return ret
    ret["changes"] = changes
    if __opts__["test"]:
        ret["result"] = None
        ret["comment"] = f"{name} would get these keys: {', '.join(sorted(changes))}."
        return ret
    try:
        _replace_file(name, json.dumps(merged, indent=2) + "\n")
    except OSError as exc:
        ret.update(result=False, changes={},
                   comment=f"writing {name} on {node} failed: {exc}; it was left as it was.")
        return ret
    ret["comment"] = f"{name} updated: {', '.join(sorted(changes))}."
    return ret


def _replace_file(path, text):
    """`path` holds `text` (its mode kept), replaced at once: a reader never sees half."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = f"{path}.salt-tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(text)
    if os.path.exists(path):
        os.chmod(tmp, os.stat(path).st_mode & 0o7777)
    os.replace(tmp, path)


# --- a script with a check ------------------------------------------------------------------


def script_applied(name, check="--check"):
    """What the script ``name`` builds is live: ``name check`` exits 0 when it is. Otherwise
    run ``name`` and check again, failing when the check still fails. (Salt's ``unless``
    would do the first check, but costs seconds in every run: looking ``cmd.retcode`` up
    loads every execution module.)"""
    ret = _ret(name)
    node = __grains__.get("id", "this node")
    run = __salt__["cmd.run_all"]

    def live():
        return run([name, check], python_shell=False, ignore_retcode=True)["retcode"] == 0

    if live():
        ret["comment"] = f"{name} {check}: what it builds is live on {node}"
        return ret
    ret["changes"] = {"applied": {"old": f"{name} {check} fails", "new": f"{name} {check} passes"}}
    if __opts__["test"]:
        ret["result"] = None
        ret["comment"] = f"{name} would run on {node} ({name} {check} fails)"
        return ret
    res = run([name], python_shell=False, ignore_retcode=True)
    if res["retcode"] or not live():
        ret["changes"] = {}
        ret["result"] = False
        why = (f"exited {res['retcode']}: {(res['stderr'] or res['stdout']).strip()[-500:]}"
               if res["retcode"] else f"ran, but {name} {check} still fails")
        ret["comment"] = f"{name} on {node} {why}"
        return ret
    ret["comment"] = f"{name} ran on {node}; {name} {check} passes"
    return ret


# --- NFS mount ------------------------------------------------------------------------------


def fstab_line(device, path, fstype, opts) -> str:
    return f"{device} {path} {fstype} {','.join(opts)} 0 0"


def fstab_entry(lines, path):
    """Index and fields of the (last) fstab line mounting ``path``, or (None, None)."""
    found = (None, None)
    for i, line in enumerate(lines):
        fields = line.split()
        if len(fields) >= 4 and not fields[0].startswith("#") and fields[1].rstrip("/") == path:
            found = (i, fields)
    return found


def fstab_wanted(lines, path, device, fstype, opts):
    """The fstab lines with ``path``'s entry right, and the old entry (None if none)."""
    index, fields = fstab_entry(lines, path)
    line = fstab_line(device, path, fstype, opts)
    if index is None:
        return lines + [line], None
    if fields[0] == device and fields[2] == fstype and fields[3].split(",") == list(opts):
        return lines, lines[index]
    return lines[:index] + [line] + lines[index + 1:], lines[index]


def _unescape(field: str) -> str:
    return field.replace("\\040", " ").replace("\\011", "\t").replace("\\134", "\\")


def live_mount(mountinfo_text, path):
    """(source, fstype, options) of the topmost mount on ``path`` from /proc/self/mountinfo."""
    found = None
    for line in mountinfo_text.splitlines():
        left, _, right = line.partition(" - ")
        fields, rfields = left.split(), right.split()
        if len(fields) < 6 or len(rfields) < 3:
            continue
        if _unescape(fields[4]).rstrip("/") == path:
            # per-mount options win over the superblock's (a ro bind of a rw filesystem)
            mount_opts = fields[5].split(",")
            super_opts = [o for o in rfields[2].split(",") if OPPOSITE_FLAGS.get(o) not in mount_opts]
            found = (_unescape(rfields[1]), rfields[0], mount_opts + super_opts)
    return found


def _mount_wrong(live, device, opts):
    """What is wrong with `live` (live_mount's view of the mount point) for `device` mounted
    with `opts`, in words; None when nothing is."""
    if live is None:
        return "not mounted"
    if live[0].rstrip("/") != device.rstrip("/") or not live[1].startswith("nfs"):
        return f"{live[0]} ({live[1]}) is mounted there"
    wrong = options_differ(opts, live[2])
    return f"mounted without {','.join(wrong)}" if wrong else None


def options_differ(wanted, live) -> list:
    """The wanted options a live mount contradicts. Only what the kernel reports is checked:
    userspace options are skipped, flags fail on their listed opposite, key=value on another
    value of the key."""
    live_set = set(live)
    live_kv = dict(opt.split("=", 1) for opt in live if "=" in opt)
    wrong = []
    for opt in wanted:
        if opt in USERSPACE_OPTS or opt.startswith("x-") or opt.startswith("comment="):
            continue
        if "=" in opt:
            key, value = opt.split("=", 1)
            if key in live_kv and live_kv[key] != value:
                wrong.append(opt)
        elif opt not in live_set and OPPOSITE_FLAGS.get(opt) in live_set:
            wrong.append(opt)
    return wrong


def server_reachable(host, wait=0, port=NFS_PORT) -> bool:
    """Whether ``host`` accepts a TCP connection on ``port``, trying for ``wait`` seconds."""
    deadline = time.monotonic() + wait
    while True:
        try:
            with socket.create_connection((host, port), timeout=5):
                return True
        except OSError:
            if time.monotonic() >= deadline:
                return False
            time.sleep(2)


def _read(path, default=""):
    try:
        with open(path, encoding="utf-8") as fh:
            return fh.read()
    except FileNotFoundError:
        return default


def nfs_mounted(name, device, options, fstype="nfs", fstab="/etc/fstab", server_wait=0,
                timeout=60):
    """Mount ``device`` (server:/export) on ``name`` now and at boot (fstab), with ``options``.
    Before mounting, wait up to ``server_wait`` seconds for the server to answer."""
    ret = _ret(name)
    name = name.rstrip("/") or "/"
    opts = list(options)
    node = __grains__.get("id", "this node")
    server = device.split(":", 1)[0]

    live = live_mount(_read("/proc/self/mountinfo"), name)
    mount_wrong = _mount_wrong(live, device, opts)

    lines = _read(fstab).splitlines()
    new_lines, old_entry = fstab_wanted(lines, name, device, fstype, opts)
    new_entry = fstab_line(device, name, fstype, opts)

    changes = {}
    if new_lines != lines:
        changes["fstab"] = {"old": old_entry, "new": new_entry}
    if mount_wrong:
        changes["mount"] = {"old": mount_wrong, "new": f"{device} ({','.join(opts)})"}
    if not changes:
        ret["comment"] = f"{device} is mounted on {name} and in {fstab}."
        return ret
    ret["changes"] = changes
    if __opts__["test"]:
        ret["result"] = None
        ret["comment"] = f"{name} would be " + " and ".join(
            {"fstab": f"written to {fstab}", "mount": f"(re)mounted from {device}"}[k]
            for k in changes)
        return ret

    if mount_wrong:
        deadline = time.monotonic() + server_wait
        if not server_reachable(server, wait=server_wait):
            ret["changes"] = {}
            ret["result"] = False
            ret["comment"] = (
                f"NFS server {server} does not answer on port {NFS_PORT} from {node} (waited "
                f"{server_wait} s), so "
                f"{device} cannot be mounted on {name}; {fstab} and {name} were left as they "
                "were. Check that the server is up and exports the path, then re-run."
            )
            return ret
        error = _mount(name, device, fstype, opts, unmount_first=live is not None,
                       deadline=deadline, timeout=timeout)
        if error:
            ret["changes"] = {}
            ret["result"] = False
            ret["comment"] = f"{node}: {error}; {fstab} was left as it was."
            return ret
        still = _mount_wrong(live_mount(_read("/proc/self/mountinfo"), name), device, opts)
        if still:
            ret["changes"] = {}
            ret["result"] = False
            ret["comment"] = (f"{node}: {device} was mounted on {name} but reads back "
                              f"{still}; {fstab} was left as it was.")
            return ret
    if "fstab" in changes:
        try:
            _replace_file(fstab, "\n".join(new_lines) + "\n")
        except OSError as exc:
            ret.update(result=False, changes={k: v for k, v in changes.items() if k != "fstab"},
                       comment=f"{node}: {device} on {name}: writing {fstab} failed: {exc}")
            return ret
    ret["comment"] = f"{device} on {name}: " + ", ".join(sorted(changes)) + " updated."
    return ret


def _mount(name, device, fstype, opts, unmount_first, deadline, timeout):
    """Mount, replacing what is mounted on ``name``; an error sentence, or None. A refused
    mount is retried until ``deadline``: a server being set up in the same highstate answers
    before it exports the path."""
    run = __salt__["cmd.run_all"]
    if unmount_first:
        res = run(["umount", name], python_shell=False, timeout=timeout)
        if res["retcode"]:
            return f"could not unmount {name} to mount {device} ({res['stderr'].strip()})"
    created = not os.path.isdir(name)
    if created:
        os.makedirs(name)
    while True:
        res = run(["mount", "-t", fstype, "-o", ",".join(opts), device, name],
                  python_shell=False, timeout=timeout)
        if not res["retcode"]:
            return None
        if time.monotonic() >= deadline:
            break
        time.sleep(5)
    if created:
        os.rmdir(name)
    return f"mounting {device} on {name} failed ({res['stderr'].strip()})"
