"""Tier 2: VM nodes. Each node is a qemu guest (software emulation: nested KVM does not work
here) of Debian 12 with its own kernel, systemd, package database and salt-minion, on the
bed's bridge through a tap. One base image, built by bed/vm-image/build.sh and cached for every
bed, boots any node of any bed: the node's name, address, master and keys come on the kernel
command line. Each node writes only to its own qcow2 overlay. The guests have no route out;
what a site gets from the internet they get from bed/upstream.py on the host's bridge address."""

import fcntl
import json
import re
import shlex
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from . import config, host, pillar, upstream
from .util import debian_mirror, log, ok, pid_alive, run, site_certificate, stop_pid, tree_digest, wait_for

TIER = "vm"
IMAGE_SRC = config.REPO / "bed/vm-image"
VM_DIR = config.BED_DIR / "vm"
# the guests' disks as they were after the last session in which every tier 2 test passed
PASSED_DIR = VM_DIR / "passed"
SSH_KEY = VM_DIR / "id_ed25519"
# one vCPU each: with two, three guests' six vCPU threads shared two cores (tier 2 on reused
# guests: 17.4 min with two, 14.8 min with one; node states 176 s, 57 s)
QEMU = ["qemu-system-x86_64", "-accel", "tcg,thread=multi", "-cpu", "max", "-smp", "1",
        "-m", "2048"]
BOOT_TIMEOUT = 600  # three guests in emulation on two busy cores
POWEROFF_TIMEOUT = 90


# ---------------------------------------------------------------- the cached base image

def image_key() -> str:
    """Hash of everything that goes into the image: rebuilt when any of it changes."""
    digest = tree_digest(IMAGE_SRC)
    pins = [line for line in (config.REPO / "requirements.txt").read_text().splitlines()
            if line.startswith(("salt==", "docker=="))]
    digest.update("\n".join(pins).encode())
    return digest.hexdigest()[:12]


def ensure_image() -> Path:
    """The base image directory (root.img, vmlinuz, initrd.img, kernel-version); built once
    for all beds under a lock, into a temporary name renamed into place when complete."""
    final = config.CACHE_DIR / f"vm-{image_key()}"
    if (final / "kernel-version").exists():
        return final
    config.CACHE_DIR.mkdir(parents=True, exist_ok=True)
    with open(config.CACHE_DIR / "vm-image.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another bed may be building the same image
        if (final / "kernel-version").exists():
            return final
        tmp = final.with_name(final.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)  # left by a build that died
        build_log = final.with_name(final.name + ".build.log")
        log(f"building the VM image {final.name} (a few minutes; log: {build_log})")
        started = time.monotonic()
        with open(build_log, "w") as out:
            res = subprocess.run(
                [str(IMAGE_SRC / "build.sh"), str(tmp), debian_mirror(),
                 str(config.SALT_BIN / "pip"), str(config.REPO / "requirements.txt")],
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            )
        if res.returncode != 0:
            raise RuntimeError(f"building the VM image failed; see {build_log}")
        tmp.rename(final)
        log(f"VM image built in {time.monotonic() - started:.0f}s, kernel "
            f"{(final / 'kernel-version').read_text().strip()}")
        _prune_images(keep=final)
    return final


def _backing_dir(overlay: Path):
    info = run(["qemu-img", "info", "-U", "--output=json", str(overlay)], check=False)
    try:
        return Path(json.loads(info.stdout)["backing-filename"]).parent
    except (ValueError, KeyError):
        return None


def _prune_images(keep: Path) -> None:
    """Delete older images no node disk of any bed grows from (each holds a GB or more)."""
    used = {_backing_dir(d) for d in config.ROOT.glob("bed*/vm/*.qcow2")} | {keep}
    for old in config.CACHE_DIR.glob("vm-*"):
        if old.is_dir() and not old.name.endswith(".tmp") and old not in used:
            log(f"removing the VM image {old.name}: no node uses it any more")
            shutil.rmtree(old)


# ---------------------------------------------------------------- per node

def disk(name: str) -> Path:
    return VM_DIR / f"{name}.qcow2"


def pidfile(name: str) -> Path:
    return VM_DIR / f"{name}.pid"


def console_log(name: str) -> Path:
    return VM_DIR / f"{name}.console"


# what a guest's kernel prints when its virtual disk stops answering (the root disk's journal
# thread hung; a hard NFS mount waiting on its server shows other tasks): seen once in CI
# (qemu 7.2, TCG), the guest alive but every write blocked for the rest of the session
DISK_STALL = re.compile(r"^.*task jbd2/vda\S* blocked for more than.*$", re.MULTILINE)
# a session that lost a guest so exits (EX_TEMPFAIL): `./testbed test` runs tier 2 again
GUEST_LOST = 75


def lost_guests(names) -> dict:
    """Guests whose disk stopped answering since they booted (qemu truncates the console at
    launch), each with the console's first report of it."""
    lost = {}
    for name in names:
        try:
            stall = DISK_STALL.search(console_log(name).read_text(errors="replace"))
        except FileNotFoundError:
            continue
        if stall:
            lost[name] = stall.group().strip()
    return lost


def tap_name(index: int) -> str:
    return f"{config.NAME_PREFIX}t{index}"


def mac(index: int) -> str:
    return f"52:54:00:18:{config.BED_ID:02x}:{index:02x}"


def qemu_pid(name: str):
    """The guest's qemu PID, only if that process really is this guest's qemu."""
    try:
        pid = int(pidfile(name).read_text().strip())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (FileNotFoundError, ValueError, ProcessLookupError):
        return None
    return pid if str(disk(name)).encode() in cmdline and pid_alive(pid) else None


def ssh_argv(name: str) -> list:
    # a busy emulated guest may take many seconds to send sshd's banner
    addr = config.node_addr(TIER, config.node_index(name))
    return ["ssh", "-i", str(SSH_KEY), "-o", "BatchMode=yes", "-o", "ConnectTimeout=30",
            "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
            "-o", "LogLevel=ERROR", f"root@{addr}"]


def node_exec(name: str, cmd, **kw) -> subprocess.CompletedProcess:
    kw.setdefault("stdin", subprocess.DEVNULL)  # images.load_into streams a tarball in
    return subprocess.run(ssh_argv(name) + ["--", shlex.join(cmd)], text=True,
                          capture_output=True, **kw)


def _ssh_key() -> str:
    """The bed's own key pair; the public key reaches the guests on the kernel command line."""
    if not SSH_KEY.exists():
        VM_DIR.mkdir(parents=True, exist_ok=True)
        run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"agbed{config.BED_ID}",
             "-f", str(SSH_KEY)])
    return SSH_KEY.with_suffix(".pub").read_text().split()[1]


def _base_of(name: str, image: Path) -> Path:
    """The base image the node's disk grows from (its kernel must match the disk's modules);
    a node without a usable disk gets a fresh overlay on `image`."""
    if disk(name).exists():
        base = _backing_dir(disk(name))
        if base and (base / "kernel-version").exists():
            return base
        log(f"{name}: the base image of its disk is gone; starting it from a fresh disk")
        disk(name).unlink()
    run(["qemu-img", "create", "-q", "-f", "qcow2", "-b", str(image / "root.img"), "-F", "raw",
         str(disk(name))])
    return image


def _tap_up(index: int) -> None:
    tap = tap_name(index)
    if not ok(["ip", "link", "show", tap]):
        run(["ip", "tuntap", "add", "dev", tap, "mode", "tap"])
    run(["ip", "link", "set", tap, "master", config.BRIDGE, "up"])


def kernel_cmdline(name: str, index: int, ssh_key: str) -> str:
    return " ".join([
        "root=/dev/vda rw console=ttyS0 net.ifnames=0",
        "apparmor=0",  # else every container fails to start
        f"systemd.hostname={name}",
        f"agbed.addr={config.node_addr(TIER, index)}/{config.PREFIX_LEN}",
        f"agbed.host={config.BRIDGE_ADDR}",
        f"agbed.docker_bip={config.docker_bip(index)}",
        f"agbed.docker_pool={config.DOCKER_LOCAL_POOL}",
        f"agbed.sshkey={ssh_key}",
    ])


def _launch(name: str, index: int, base: Path, ssh_key: str) -> None:
    qemu_log = VM_DIR / f"{name}.qemu.log"
    with open(qemu_log, "w") as out:
        res = subprocess.run(
            QEMU + [
                "-name", name, "-display", "none", "-vga", "none", "-monitor", "none",
                "-daemonize", "-pidfile", str(pidfile(name)),
                "-serial", f"file:{console_log(name)}",
                "-kernel", str(base / "vmlinuz"), "-initrd", str(base / "initrd.img"),
                "-append", kernel_cmdline(name, index, ssh_key),
                "-drive", f"file={disk(name)},if=virtio,format=qcow2,cache=unsafe",
                "-netdev", f"tap,id=net0,ifname={tap_name(index)},script=no,downscript=no",
                "-device", f"virtio-net-pci,netdev=net0,mac={mac(index)}",
            ],
            stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
        )
    if res.returncode != 0:
        raise RuntimeError(f"{name}: qemu did not start: {qemu_log.read_text().strip()}")


def _booted(name: str) -> bool:
    if not qemu_pid(name):
        raise RuntimeError(f"{name}: qemu exited while booting; see {console_log(name)}")
    return node_exec(name, ["systemctl", "is-active", "salt-minion"]).stdout.strip() == "active"


def up(indexes) -> None:
    image = ensure_image()
    ssh_key = _ssh_key()
    upstream.up(upstream.FOR_GUESTS)
    started = []
    for i in indexes:
        name = config.node_name(i)
        if qemu_pid(name):
            continue
        base = _base_of(name, image)
        _tap_up(i)
        # the guest may carry another key than the master knows (fresh disk, tier 1 before)
        run(host.salt_cmd("salt-key", "-y", "-d", name), check=False)
        log(f"{name}: booting {config.node_addr(TIER, i)} (kernel "
            f"{(base / 'kernel-version').read_text().strip()})")
        _launch(name, i, base, ssh_key)
        started.append(name)
    upstream.fill_hub()  # while the guests boot
    for name in started:
        wait_for(lambda n=name: _booted(n), BOOT_TIMEOUT,
                 f"{name} to boot to a running salt-minion (console: {console_log(name)})",
                 interval=2)
        _site_certificate(name)
        log(f"{name}: booted")


def _site_certificate(name: str) -> None:
    """The site's TLS certificate and key, as on tier 1 (first boot only: the disk keeps them)."""
    if node_exec(name, ["test", "-e", f"/etc/{config.SITE_TLS_FILES[1]}"]).returncode == 0:
        return
    with tempfile.TemporaryDirectory() as etc:
        site_certificate(Path(etc))
        archive = subprocess.run(["tar", "-C", etc, "-c", "ssl"], capture_output=True,
                                 check=True).stdout
    res = subprocess.run(ssh_argv(name) + ["--", "tar -C /etc -x"], input=archive,
                         capture_output=True)
    if res.returncode != 0:
        raise RuntimeError(f"{name}: copying the site certificate failed: {res.stderr!r}")


def _power_off(guests: dict) -> None:
    """Power off {name: qemu pid} together; stop the qemu of any still up after the timeout."""
    poweroffs = [subprocess.Popen(ssh_argv(name) + ["systemctl poweroff"],
                                  stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL)
                 for name in guests]
    for proc in poweroffs:
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    deadline = time.monotonic() + POWEROFF_TIMEOUT
    for name, pid in guests.items():
        while pid_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.5)
        if pid_alive(pid):
            log(f"{name}: did not power off in {POWEROFF_TIMEOUT}s; stopping its qemu")
            stop_pid(pid)


def down(indexes, wipe: bool = False) -> None:
    names = [config.node_name(i) for i in indexes]
    alive = {name: pid for name in names if (pid := qemu_pid(name))}
    # the manager serves the NFS share the others mount hard: it goes last, or their shutdown
    # hangs on the unmount until the timeout
    nfs_server = pillar.manager(indexes) if indexes else None
    _power_off({n: pid for n, pid in alive.items() if n != nfs_server})
    _power_off({n: pid for n, pid in alive.items() if n == nfs_server})
    for i, name in zip(indexes, names, strict=True):
        pidfile(name).unlink(missing_ok=True)
        subprocess.run(["ip", "link", "del", tap_name(i)], capture_output=True)
        if wipe:
            for path in (disk(name), console_log(name), VM_DIR / f"{name}.qemu.log"):
                path.unlink(missing_ok=True)
    if not any(qemu_pid(p.stem) for p in VM_DIR.glob("*.pid")):
        upstream.down()


def keep_passed_disks(names) -> None:
    """Copy the powered-off guests' disks aside: the next session starts from them, whatever
    a failed or killed session later does to the live disks."""
    if any(qemu_pid(name) for name in names):
        raise RuntimeError("the guests' disks are kept only while the guests are down")
    tmp = PASSED_DIR.with_name(PASSED_DIR.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for name in names:
        run(["cp", "--sparse=always", str(disk(name)), str(tmp / disk(name).name)])
    shutil.rmtree(PASSED_DIR, ignore_errors=True)
    tmp.rename(PASSED_DIR)


def restore_passed_disks(names) -> bool:
    """Put the kept disks back in place of the live ones (guests down); False if none kept."""
    if not all((PASSED_DIR / disk(name).name).exists() for name in names):
        return False
    for name in names:
        run(["cp", "--sparse=always", str(PASSED_DIR / disk(name).name), str(disk(name))])
    return True


def running(name: str) -> dict:
    pid = qemu_pid(name)
    res = node_exec(name, ["sh", "-c", "systemctl is-system-running; systemctl is-active "
                                       "salt-minion"]) if pid else None
    lines = res.stdout.split() if res and res.returncode != 255 else []
    return {
        "qemu": bool(pid),
        "ssh": bool(lines),
        "systemd": lines[:1] == ["running"],
        "salt-minion": lines[1:2] == ["active"],
    }
