"""./testbed: the project's local multi-node test bed.

  up [--vm] [--nodes N]   bring up N nodes (default 3) and the salt-master; idempotent
  add NAME                add one more node to the running bed (day 2), pillar included
  down [--wipe]           stop everything the bed started; --wipe also deletes node data
  status                  what runs
  mesh                    tier 1: re-sync the 127.0.0.1:5000/5001 forwarders with the pillar
  images [--real]         build the local base images (cached) and load them where missing
  exec NODE CMD...        run CMD on NODE (nuc1, nuc2, ...)
  salt|salt-run|salt-key ARGS...   the Salt CLI aimed at the bed's master
  demo [--vm]             bring the bed up and run the real deploy on it
  test [PYTEST ARGS]      run the test suite (unit, functional, integration on both tiers)
  validate DIR [--minion ID]   tools/validate_pillar.py: the pillar DIR checked offline
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import threading
import time

from . import config, host, images, mesh, netns, pillar, vm
from .util import load_state, log, save_state, wait_for

# A guest's minion under the load of a boot (dockerd restarting the stack's tasks) takes a
# minute to answer a ping; pinging it faster only piles up jobs it cannot finish.
PING_TIMEOUT = {"netns": 10, "vm": 60}
MINION_TIMEOUT = {"netns": 60, "vm": 900}


def tier_module(tier: str):
    return vm if tier == "vm" else netns


def current() -> tuple:
    state = load_state()
    return state.get("tier"), state.get("nodes", [])


def minions_answering(names, tier: str) -> set:
    """The minions among `names` that answer a ping within the tier's PING_TIMEOUT. The
    probe sets its own gather timeout: the tier 2 master's (600 s) would let one probe hang
    for ten minutes on a minion that has not yet subscribed."""
    timeout = PING_TIMEOUT[tier]
    argv = host.salt_cmd("salt-run", "--out=json", "manage.up", f"tgt={','.join(names)}",
                         "tgt_type=list", f"timeout={timeout}", f"gather_job_timeout={timeout}")
    try:
        res = subprocess.run(argv, capture_output=True, text=True, timeout=4 * timeout)
        answered = json.loads(res.stdout or "[]")
    except (subprocess.TimeoutExpired, ValueError):
        return set()
    return set(names) & set(answered if isinstance(answered, list) else [])


def wait_answering(names, tier: str) -> None:
    """Until each of `names` has answered once; a minion that did is not pinged again."""
    answered = set()

    def all_answered():
        answered.update(minions_answering(sorted(set(names) - answered), tier))
        return answered == set(names)

    wait_for(all_answered, MINION_TIMEOUT[tier],
             lambda: f"every minion to answer the master (silent: {sorted(set(names) - answered)})",
             interval=1)


def cmd_up(tier: str, count: int) -> None:
    started = time.monotonic()
    running_tier, running_nodes = current()
    if running_tier and running_tier != tier and running_nodes:
        sys.exit(f"tier {running_tier} is up ({', '.join(running_nodes)}); run ./testbed down first")
    indexes = sorted(set(range(1, count + 1)) | {config.node_index(n) for n in running_nodes})
    names = [config.node_name(i) for i in indexes]
    host.bridge_up()
    pillar.write(tier, indexes)
    host.master_up(tier)
    host.forget_other_minions(names)
    save_state({"tier": tier, "nodes": names})
    tier_module(tier).up(indexes)
    if tier == "netns":
        images.ensure(netns.node_exec, names)
        mesh.sync(names)
    wait_answering(names, tier)
    log(f"{tier} bed up: {', '.join(names)} in {time.monotonic() - started:.1f}s")


def cmd_add(name: str) -> None:
    tier, names = current()
    if not tier:
        sys.exit("the bed is down; run ./testbed up first")
    index = config.node_index(name)
    if name in names:
        log(f"{name} is already part of the bed")
        return
    tier_module(tier).up([index])
    if tier == "netns":
        images.ensure(netns.node_exec, [name])
        mesh.sync(names + [name])
    save_state({"tier": tier, "nodes": names + [name]})
    wait_answering([name], tier)


def cmd_down(wipe: bool) -> None:
    tier, names = current()
    if tier:
        tier_module(tier).down([config.node_index(n) for n in names], wipe=wipe)
    host.master_down()
    host.bridge_down()
    if wipe:
        shutil.rmtree(config.BED_DIR, ignore_errors=True)
    else:
        save_state({})
    log("bed down")


def cmd_status() -> int:
    tier, names = current()
    print(f"tier: {tier or 'none'}")
    print(f"salt-master: {'running' if host.master_pid() else 'stopped'}")
    if not tier:
        return 0
    answering = minions_answering(names, tier) if host.master_pid() else set()
    for name in names:
        parts = tier_module(tier).running(name)
        parts["minion answers"] = name in answering
        shown = " ".join(f"{k}={'yes' if v else 'no'}" for k, v in parts.items())
        print(f"{name} {config.node_addr(tier, config.node_index(name))}: {shown}")
    return 0


def cmd_images(group: str) -> None:
    tier, names = current()
    built = images.build_all(group)
    for name, info in built.items():
        print(f"{name:13} {' '.join(info['tags'])}  {info['size'] / 1e6:.1f} MB  "
              f"built in {info['build_seconds']}s  {info['id'][:19]}")
    if tier:
        for node in names:
            images.load_into(tier_module(tier).node_exec, node, group=group)


def cmd_exec(name: str, argv) -> int:
    tier, names = current()
    if name not in names:
        sys.exit(f"{name} is not a node of the running bed ({', '.join(names) or 'none'})")
    res = tier_module(tier).node_exec(name, argv)
    sys.stdout.write(res.stdout)
    sys.stderr.write(res.stderr)
    return res.returncode


def cmd_demo(tier: str) -> int:
    """The newcomer's first command: a bed, then the deploy a site would run."""
    cmd_up(tier, 3)
    log("running: salt-run ag.deploy (state.orchestrate ag.deploy, each step shown as it goes)")
    res = subprocess.run(host.salt_cmd("salt-run", "ag.deploy"))
    log("deploy " + ("succeeded" if res.returncode == 0 else f"failed (exit {res.returncode})"))
    subprocess.run(host.salt_cmd("salt-run", "ag.status"))
    if res.returncode == 0:
        # the app answers its own domain only (ALLOWED_HOSTS), not the node's address
        log(f"point a browser at https://{config.SITE_DOMAIN}/ with {config.SITE_DOMAIN} "
            f"resolving to {pillar.web_address()} (e.g. in /etc/hosts; the bed's certificate "
            "is self-signed)")
    return res.returncode


def cmd_test(pytest_args) -> int:
    """With arguments, one pytest run on this bed. Without, the whole suite as runs one
    after the other (side by side, the two cores made both three times slower): unit,
    functional and tier 1 (but not the real stack, real_stack, whose images
    take a quarter of an hour to build the first time) on this bed, then tier 2 (the tests
    marked vm, but not its half-hour whole-stack deploy, vm_stack) on the next one, whose
    kept guests outlive the other tier's runs (tests/conftest.py), then the unit and
    functional tiers on Salt's older lines (tests/salt-versions.sh)."""
    if pytest_args:
        return _pytest(pytest_args)
    image = _build_vm_image_meanwhile()
    code = _pytest(["-m", "not vm and not real_stack"])
    image.join()
    tier2_bed = config.BED_ID + 1
    log(f"tier 2 on bed {tier2_bed} (subnet 198.18.{tier2_bed}.0/24)")
    tier2 = [str(config.REPO / "testbed"), "test", "-m", "vm and not vm_stack"]
    tier2_env = {**os.environ, "AG_BED_ID": str(tier2_bed)}
    tier2_code = subprocess.run(tier2, env=tier2_env).returncode
    if tier2_code == vm.GUEST_LOST:
        log("tier 2 lost a guest to the emulator (its disk stopped answering): once more, "
            "from guests booted again")
        tier2_code = subprocess.run(tier2, env=tier2_env).returncode
    log("Salt's older lines (tests/salt-versions.sh): the unit and functional tiers and the "
        "master installed as the README says")
    lines_code = subprocess.run([str(config.REPO / "tests/salt-versions.sh")]).returncode
    log(f"unit, functional and tier 1: exit {code}; tier 2: exit {tier2_code}; "
        f"Salt's older lines: exit {lines_code}")
    return code or tier2_code or lines_code


def _build_vm_image_meanwhile() -> threading.Thread:
    """Tier 2's VM image, built while the first run goes (downloads and native work, which
    barely slow it; tier 2 would otherwise wait minutes for it). If this fails, tier 2 builds
    it again and reports why."""
    def build():
        try:
            tier_module("vm").ensure_image()
        except RuntimeError as exc:
            log(f"the VM image was not built beside tier 1: {exc}")

    thread = threading.Thread(target=build, name="vm-image", daemon=True)
    thread.start()
    return thread


def _pytest(args) -> int:
    res = subprocess.run([str(config.SALT_BIN / "python"), "-m", "pytest", *args],
                         cwd=config.REPO)
    if os.environ.get("CI"):
        cmd_down(wipe=False)  # leave the CI machine as clean as it came
    return res.returncode


def cmd_validate(pillar_dir: str, minion_id: str) -> int:
    """The product's offline validator, as a site's pillar CI runs it."""
    return subprocess.run([sys.executable, str(config.REPO / "tools/validate_pillar.py"),
                           pillar_dir, "--minion", minion_id]).returncode


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="testbed", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="cmd", required=True)
    p_up = sub.add_parser("up")
    p_up.add_argument("--vm", action="store_true", help="tier 2: qemu guests instead of namespaces")
    p_up.add_argument("--nodes", type=int, default=3)
    sub.add_parser("add").add_argument("name")
    sub.add_parser("down").add_argument("--wipe", action="store_true")
    sub.add_parser("status")
    sub.add_parser("images").add_argument(
        "--real", action="store_true",
        help="the look-alikes of the official images the real upstream stack uses "
             "(bed/real_bases.py) instead of the bed's own")
    sub.add_parser("mesh")
    p_exec = sub.add_parser("exec")
    p_exec.add_argument("node")
    p_exec.add_argument("argv", nargs=argparse.REMAINDER)
    sub.add_parser("demo").add_argument("--vm", action="store_true")
    sub.add_parser("test", add_help=False).add_argument("args", nargs=argparse.REMAINDER)
    p_validate = sub.add_parser("validate")
    p_validate.add_argument("pillar_dir")
    p_validate.add_argument("--minion", default="validate",
                            help="minion id to render the pillar for (default: validate)")
    for tool in ("salt", "salt-run", "salt-key"):
        sub.add_parser(tool, add_help=False).add_argument("args", nargs=argparse.REMAINDER)
    argv = sys.argv[1:] if argv is None else argv
    # pass-through commands: everything after the command word is theirs, options included
    if argv and argv[0] == "test":
        return cmd_test(argv[1:])
    if argv and argv[0] in ("salt", "salt-run", "salt-key"):
        os.execv(str(config.SALT_BIN / argv[0]), host.salt_cmd(argv[0], *argv[1:]))
    args = parser.parse_args(argv)

    if args.cmd == "up":
        if not 1 <= args.nodes <= config.MAX_NODES:
            sys.exit(f"--nodes must be 1..{config.MAX_NODES}")
        cmd_up("vm" if args.vm else "netns", args.nodes)
    elif args.cmd == "add":
        cmd_add(args.name)
    elif args.cmd == "down":
        cmd_down(args.wipe)
    elif args.cmd == "status":
        return cmd_status()
    elif args.cmd == "mesh":
        tier, names = current()
        if tier != "netns":
            sys.exit("the mesh stand-in is for tier 1 only (tier 2 has the real routing mesh)")
        mesh.sync(names)
    elif args.cmd == "images":
        cmd_images("real" if args.real else "bed")
    elif args.cmd == "exec":
        return cmd_exec(args.node, args.argv)
    elif args.cmd == "demo":
        return cmd_demo("vm" if args.vm else "netns")
    elif args.cmd == "validate":
        return cmd_validate(args.pillar_dir, args.minion)
    return 0


if __name__ == "__main__":
    sys.exit(main())
