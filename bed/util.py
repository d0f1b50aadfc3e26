"""Small process and state helpers shared by both tiers."""

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from . import config


def tree_digest(root: Path, digest=None):
    """sha256 over the files under `root`: their paths, executable bits and contents."""
    digest = digest or hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file() and "__pycache__" not in p.parts):
        digest.update(str(path.relative_to(root)).encode() + b"\0")
        digest.update(oct(path.stat().st_mode & 0o111).encode() + path.read_bytes())
    return digest


def log(msg: str) -> None:
    print(f"[bed {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def run(cmd, check=True, capture=True, **kw) -> subprocess.CompletedProcess:
    res = subprocess.run(cmd, text=True, capture_output=capture, **kw)
    if check and res.returncode != 0:
        raise RuntimeError(
            f"command failed ({res.returncode}): {' '.join(map(str, cmd))}\n"
            f"{(res.stderr or '').strip()}"
        )
    return res


def ok(cmd) -> bool:
    return subprocess.run(cmd, capture_output=True).returncode == 0


def wait_for(predicate, timeout: float, what, interval: float = 0.2):
    """predicate()'s first true value; on timeout, an error naming `what` (a string, or a
    callable that describes what is still missing at that moment)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for "
                               f"{what() if callable(what) else what}")
        time.sleep(interval)


def pid_alive(pid: int) -> bool:
    """Whether `pid` runs: a zombie (exited, not yet reaped by its parent, e.g. a daemon a
    test process started) does not."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def read_pid(pidfile: Path):
    try:
        pid = int(pidfile.read_text().strip())
    except (FileNotFoundError, ValueError):
        return None
    return pid if pid_alive(pid) else None


def stop_pids(pids, timeout: float = 20.0) -> None:
    """SIGTERM all, wait, then SIGKILL the rest: the bed has no PID namespaces, so never pkill.
    Stopping many at once matters: a salt-minion alone takes seconds to exit."""
    for pid in pids:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + timeout
    while any(map(pid_alive, pids)) and time.monotonic() < deadline:
        time.sleep(0.2)
    for pid in filter(pid_alive, pids):
        os.kill(pid, signal.SIGKILL)


def stop_pid(pid: int, timeout: float = 20.0) -> None:
    stop_pids([pid], timeout)


def load_state() -> dict:
    try:
        return json.loads(config.STATE_FILE.read_text())
    except FileNotFoundError:
        return {}


def save_state(state: dict) -> None:
    config.BED_DIR.mkdir(parents=True, exist_ok=True)
    config.STATE_FILE.write_text(json.dumps(state, indent=2, sort_keys=True))


def site_certificate(etc: Path) -> None:
    """What a site puts on its web server before deploying, under `etc`: a TLS certificate and
    key where upstream's nginx conf names them (self-signed here, for the default domain)."""
    cert, key = (etc / path for path in config.SITE_TLS_FILES)
    for path in (cert, key):
        path.parent.mkdir(parents=True, exist_ok=True)
    run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "30",
         "-subj", f"/CN={config.SITE_DOMAIN}", "-keyout", str(key), "-out", str(cert)])
    key.chmod(0o600)


def debian_mirror() -> str:
    """The Debian mirror this machine's own apt uses: the bed's image roots and the guests'
    packages come from it (the bed writes no mirror's name of its own)."""
    for sources in sorted(Path("/etc/apt/sources.list.d").glob("*.sources")):
        for line in sources.read_text().splitlines():
            if line.startswith("URIs:") and "debian" in line and "security" not in line:
                return line.split()[1]
    for line in Path("/etc/apt/sources.list").read_text().splitlines():
        if line.startswith("deb ") and "security" not in line:
            return line.split()[1]
    raise RuntimeError("found no Debian mirror in this machine's apt sources; the bed's "
                       "images need one (add it to /etc/apt/sources.list.d)")


def reply(handler, body: bytes, ctype: str) -> None:
    """Answer the request `handler` (an http.server handler) serves: 200, `body` of `ctype`."""
    handler.send_response(200)
    handler.send_header("Content-Type", ctype)
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)
