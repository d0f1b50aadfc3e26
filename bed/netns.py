"""Tier 1: namespace nodes. Each node is a network namespace on the bed's bridge plus a mount
and UTS namespace with its own /etc, /run, /tmp and daemon state, running its own dockerd
(Debian's docker.io, started through its own /etc/init.d/docker as Salt will restart it) and
its own salt-minion. /usr and the package database are shared with the host."""

import json
import shutil
import subprocess
from pathlib import Path

from tests import standin

from . import config, host
from .util import log, ok, pid_alive, run, site_certificate, stop_pids, tree_digest, wait_for

TIER = "netns"
CHECKOUT = "/srv/autograder-full-stack"
SHARED_CHECKOUT = config.BED_DIR / "shared/autograder-full-stack"
# beside the checkout, not in it: the template's digest when the stand-in was last written
STANDIN_STAMP = config.BED_DIR / "shared/standin.revision"
MINION_PIDFILE = "/run/salt-minion.pid"
DOCKERD_PIDFILE = "/run/docker-ssd.pid"  # written by the node's /etc/init.d/docker
# pidfiles of the node's daemons, in the node's /run; dockerd last, it owns the containers
NODE_DAEMON_PIDFILES = (MINION_PIDFILE, *map(config.mesh_pidfile, config.MESH_PORTS),
                        DOCKERD_PIDFILE)


def netns(name: str) -> str:
    return f"{config.NAME_PREFIX}-{name}"


def veth_name(index: int) -> str:
    return f"{config.NAME_PREFIX}v{index}"


def handles(name: str):
    return config.NS_HANDLES / f"{name}.mnt", config.NS_HANDLES / f"{name}.uts"


def node_dir(name: str) -> Path:
    return config.NODES_DIR / name


def enter(name: str) -> list:
    mnt, uts = handles(name)
    return ["nsenter", f"--net=/run/netns/{netns(name)}", f"--mount={mnt}", f"--uts={uts}", "--"]


def node_exec(name: str, cmd, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(enter(name) + list(cmd), text=True, capture_output=True, **kw)


def _write_node_etc(name: str, index: int, all_nodes) -> None:
    etc = node_dir(name) / "etc"
    if etc.exists():
        return
    log(f"{name}: copying /etc")
    tmp = etc.with_name("etc.tmp")
    tmp.parent.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(tmp, ignore_errors=True)
    run(["cp", "-a", "/etc", str(tmp)])
    (tmp / "hostname").write_text(name + "\n")
    # dockerd and salt must never resolve anything outside the bed
    (tmp / "resolv.conf").unlink(missing_ok=True)
    (tmp / "resolv.conf").write_text("nameserver 127.0.0.1\n")
    hosts = ["127.0.0.1 localhost", "::1 localhost"]
    hosts += [f"{config.node_addr(TIER, i)} {config.node_name(i)}" for i in all_nodes]
    (tmp / "hosts").write_text("\n".join(hosts) + "\n")
    (tmp / "docker").mkdir(exist_ok=True)
    (tmp / "docker/key.json").unlink(missing_ok=True)
    # what a site's own Docker setup would already have; the product merges its keys into it
    daemon = {
        "bip": config.docker_bip(index),
        "default-address-pools": [{"base": config.DOCKER_LOCAL_POOL, "size": 24}],
        "cgroup-parent": f"/{config.NAME_PREFIX}-{name}",
        "hosts": ["unix:///run/docker.sock"],
        "dns": [config.BRIDGE_ADDR],
    }
    (tmp / "docker/daemon.json").write_text(json.dumps(daemon, indent=2) + "\n")
    # this sandbox withholds CAP_SYS_RESOURCE, so the init script may not raise hard limits
    init = tmp / "init.d/docker"
    init.write_text(init.read_text().replace("ulimit -n 1048576", "ulimit -n $(ulimit -Hn)")
                    .replace("ulimit -u unlimited", "ulimit -u $(ulimit -Hu)")
                    .replace("ulimit -p unlimited", ":"))
    site_certificate(tmp)
    (tmp / "salt").mkdir(exist_ok=True)
    (tmp / "salt/minion").write_text(
        f"id: {name}\nmaster: {config.BRIDGE_ADDR}\nipv6: false\n"
        f"grains:\n  agbed_tier: {TIER}\n"
    )
    tmp.rename(etc)


def _net_up(name: str, index: int) -> None:
    ns = netns(name)
    if ok(["ip", "netns", "exec", ns, "true"]):
        return
    veth = veth_name(index)
    run(["ip", "netns", "add", ns])
    run(["ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns])
    run(["ip", "link", "set", veth, "master", config.BRIDGE, "up"])
    addr = f"{config.node_addr(TIER, index)}/{config.PREFIX_LEN}"
    run(["ip", "-n", ns, "addr", "add", addr, "dev", "eth0"])
    run(["ip", "-n", ns, "link", "set", "eth0", "up"])
    run(["ip", "-n", ns, "link", "set", "lo", "up"])


def _mounts_up(name: str) -> None:
    mnt, uts = handles(name)
    if _namespaces_alive(name):
        return
    config.NS_HANDLES.mkdir(parents=True, exist_ok=True)
    # the handles must live on a private mount for the namespace bind mounts to stick
    if not ok(["mountpoint", "-q", str(config.NS_HANDLES)]):
        run(["mount", "--bind", str(config.NS_HANDLES), str(config.NS_HANDLES)])
        run(["mount", "--make-private", str(config.NS_HANDLES)])
    mnt.touch()
    uts.touch()
    script = config.REPO / "bed/node-mounts.sh"
    run(
        ["unshare", f"--mount={mnt}", f"--uts={uts}", "--propagation", "private",
         "nsenter", f"--net=/run/netns/{netns(name)}",
         "sh", str(script), name, str(node_dir(name)), str(SHARED_CHECKOUT), CHECKOUT]
    )


def daemons_up(name: str) -> None:
    """Start the node's dockerd and salt-minion where they do not run (at `up`, or after a
    test stopped one)."""
    if node_exec(name, ["/etc/init.d/docker", "status"]).returncode != 0:
        run(enter(name) + ["/etc/init.d/docker", "start"])
    if node_exec(name, ["sh", "-c", f"kill -0 $(cat {MINION_PIDFILE})"]).returncode != 0:
        host.forget_minion_key(name)
        run(enter(name) + [str(config.SALT_BIN / "salt-minion"), "-d", "--pid-file", MINION_PIDFILE])


def _checkout_up() -> None:
    """What a site without managed NFS has on its shared storage: the autograder-full-stack
    checkout (here the stand-in) and the bed's compose override that the bed pillar names.
    The stand-in is written again only when its template changed (a reused bed had kept an
    old one), so that otherwise a deploy's edits and secrets stay."""
    revision = tree_digest(standin.TEMPLATE).hexdigest()
    written = STANDIN_STAMP.exists() and (SHARED_CHECKOUT / "docker-compose.yml").exists()
    if not written or STANDIN_STAMP.read_text() != revision:
        standin.write(SHARED_CHECKOUT)
        STANDIN_STAMP.write_text(revision)
    shutil.copy(standin.BED_OVERRIDE, SHARED_CHECKOUT / standin.BED_OVERRIDE.name)


def up(indexes) -> None:
    SHARED_CHECKOUT.mkdir(parents=True, exist_ok=True)
    _checkout_up()
    for i in indexes:
        name = config.node_name(i)
        _write_node_etc(name, i, indexes)
        _net_up(name, i)
        _mounts_up(name)
        daemons_up(name)
    for i in indexes:
        name = config.node_name(i)
        wait_for(lambda n=name: node_exec(n, ["docker", "info", "-f", "{{.ID}}"]).returncode == 0,
                 60, f"dockerd on {name}")


def node_pid(name: str, pidfile: str):
    mnt, _ = handles(name)
    if not mnt.exists():
        return None
    res = node_exec(name, ["cat", pidfile])
    return read_pid_text(res.stdout) if res.returncode == 0 else None


def read_pid_text(text: str):
    try:
        pid = int(text.strip())
    except ValueError:
        return None
    return pid if pid_alive(pid) else None


def down(indexes, wipe: bool = False) -> None:
    names = [config.node_name(i) for i in indexes]
    alive = [n for n in names if _namespaces_alive(n)]
    # minions and dockerds of all nodes stop together; then whatever is left in each netns
    stop_pids([p for n in alive for p in map(lambda f: node_pid(n, f), NODE_DAEMON_PIDFILES) if p],
              timeout=30)
    for name in names:
        res = subprocess.run(["ip", "netns", "pids", netns(name)], capture_output=True, text=True)
        stop_pids([int(p) for p in res.stdout.split()], timeout=5)
    for i, name in zip(indexes, names, strict=True):
        for h in handles(name):
            if h.exists():
                subprocess.run(["umount", str(h)], capture_output=True)
                h.unlink()
        if ok(["ip", "netns", "exec", netns(name), "true"]):
            run(["ip", "netns", "del", netns(name)])
        subprocess.run(["ip", "link", "del", veth_name(i)], capture_output=True)
        for cg in Path("/sys/fs/cgroup").glob(f"*/{config.NAME_PREFIX}-{name}"):
            _rmdir_tree(cg)
        if wipe:
            shutil.rmtree(node_dir(name), ignore_errors=True)
    if config.NS_HANDLES.exists() and not any(config.NS_HANDLES.iterdir()):
        subprocess.run(["umount", str(config.NS_HANDLES)], capture_output=True)
        config.NS_HANDLES.rmdir()


def _namespaces_alive(name: str) -> bool:
    mnt, _ = handles(name)
    return mnt.exists() and ok(["nsenter", f"--mount={mnt}", "true"])


def _rmdir_tree(path: Path) -> None:
    for child in sorted(path.rglob("*"), reverse=True):
        if child.is_dir():
            try:
                child.rmdir()
            except OSError:
                pass
    try:
        path.rmdir()
    except OSError:
        pass


def running(name: str) -> dict:
    alive = _namespaces_alive(name)
    return {
        "namespaces": alive,
        "dockerd": bool(alive and node_pid(name, DOCKERD_PIDFILE)),
        "salt-minion": bool(alive and node_pid(name, MINION_PIDFILE)),
    }
