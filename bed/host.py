"""The host side of the bed: the bridge every node hangs off and the one salt-master."""

import json
import textwrap

from . import config
from .util import log, ok, read_pid, run, stop_pid, wait_for

MASTER_PIDFILE = config.MASTER_DIR / "var/run/salt-master.pid"


def bridge_up() -> None:
    if not ok(["ip", "link", "show", config.BRIDGE]):
        run(["ip", "link", "add", config.BRIDGE, "type", "bridge"])
        run(["ip", "addr", "add", f"{config.BRIDGE_ADDR}/{config.PREFIX_LEN}", "dev", config.BRIDGE])
    run(["ip", "link", "set", config.BRIDGE, "up"])


def bridge_down() -> None:
    if ok(["ip", "link", "show", config.BRIDGE]):
        run(["ip", "link", "del", config.BRIDGE])


def master_config(tier: str) -> str:
    """The bed's master: this repo is the state tree, the bed's generated pillar the pillar."""
    # emulated guests installing packages answer find_job late, all at once: a job they still
    # run must not count as lost (180 s was not enough for a busy manager guest)
    gather_job_timeout = 600 if tier == "vm" else 60
    return textwrap.dedent(
        f"""\
        # written by ./testbed; a real site points these at its checkout of this repo
        root_dir: {config.MASTER_DIR}
        interface: {config.BRIDGE_ADDR}
        ipv6: false
        user: root
        auto_accept: true
        file_roots:
          base:
            - {config.REPO}/salt
            - {config.REPO}
        pillar_roots:
          base:
            - {config.PILLAR_DIR}
        runner_dirs:
          - {config.REPO}/_runners
        utils_dirs:
          - {config.REPO}/_utils
        module_dirs:
          - {config.REPO}/_modules
        states_dirs:
          - {config.REPO}/_states
        # the project's own master settings (mine, peer, reactor) as a real site includes them
        include: {config.REPO}/conf/master.d/*.conf
        log_level_logfile: info
        gather_job_timeout: {gather_job_timeout}
        """
    )


def salt_cmd(tool: str, *args: str) -> list:
    """argv of a salt CLI tool (salt, salt-run, salt-key, ...) aimed at the bed's master."""
    return [str(config.SALT_BIN / tool), "-c", str(config.MASTER_DIR), *args]


def forget_minion_key(name: str) -> None:
    """Drop the master's key for a node whose minion is about to start: the node may carry
    another key than the master knows (a fresh disk, or the other tier used the name before),
    and a mismatch is denied, not replaced; auto_accept takes the node's key again."""
    run(salt_cmd("salt-key", "-y", "-d", name), check=False)


def forget_other_minions(names) -> None:
    """Keep the master's accepted keys to the bed's nodes: a key left by a node of an earlier
    bed makes every `*` command wait for a minion that never answers."""
    res = run(salt_cmd("salt-key", "--out=json", "-l", "acc"), check=False)
    try:
        accepted = json.loads(res.stdout or "{}").get("minions", [])
    except ValueError:
        accepted = []
    for name in sorted(set(accepted) - set(names)):
        forget_minion_key(name)


def master_up(tier: str) -> None:
    config.MASTER_DIR.mkdir(parents=True, exist_ok=True)
    conf = config.MASTER_DIR / "master"
    wanted = master_config(tier)
    changed = not conf.exists() or conf.read_text() != wanted
    pid = read_pid(MASTER_PIDFILE)
    if pid and changed:
        stop_pid(pid)
        pid = None
    conf.write_text(wanted)
    if not pid:
        log("starting salt-master on " + config.BRIDGE_ADDR)
        run([str(config.SALT_BIN / "salt-master"), "-c", str(config.MASTER_DIR), "-d"])
        wait_for(lambda: read_pid(MASTER_PIDFILE), 30, "salt-master pidfile")
    # as a site after every update of its checkout (README): the runners and utils an earlier
    # sync copied to the master's extmods shadow runner_dirs, so a bed kept up across commits
    # would run ag.validate as it was at that sync (the other kinds live on the minions)
    run(salt_cmd("salt-run", "saltutil.sync_utils"))
    run(salt_cmd("salt-run", "saltutil.sync_runners"))


def master_down() -> None:
    pid = read_pid(MASTER_PIDFILE)
    if pid:
        stop_pid(pid)


def master_pid():
    return read_pid(MASTER_PIDFILE)
