"""Packages the real releases pin that the npm registry no longer has, rebuilt by the bed from
their source, and the bed's copies of the releases that take them.

ag-client-typescript 2.4.4, which both releases' website pins (package.json and
package-lock.json), is gone from the registry (E404 on any site). Its source is the
ag-client-typescript bundle, tag 2.4.4. The bed rebuilds it as its author published it
(`npm ci`, `npm run build` = `tsc -p .`, `npm pack`; with this machine's npm and the registry
it is configured for), once, into the npm proxy's cache (bed/npm_proxy.py serves it for
exactly that version). A rebuilt tarball cannot match the sha512 that the website's lock
records, so npm refuses it unless that one lock entry changes: the bed serves, beside each
upstream release tag T, a tag T-agbed (bed/README.md): on ag-website-vue, one commit on the
release's pinned commit changing only that entry's "integrity"; on autograder-full-stack,
one commit on T changing only the ag-website-vue submodule link to it. Both commits are made
deterministically (fixed author and dates), so the same tarball gives the same commits.
"""

import base64
import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from . import config, releases
from .util import log, run

CACHE = config.CACHE_DIR / "npm"  # the npm proxy's cache; rebuilt/<name>/<version>.{tgz,json}
# (package, version): (bundle of its source, tag)
REBUILT = {("ag-client-typescript", "2.4.4"): ("ag-client-typescript", "2.4.4")}
# the releases whose website lock pins a rebuilt package: served again as <tag><BED_SUFFIX>
BED_RELEASES = ("2021.05.v4", "2022.01.v1")
BED_SUFFIX = "-agbed"
STACK, WEBSITE, LOCK = "autograder-full-stack", "ag-website-vue", "package-lock.json"
BED_IDENT = {"GIT_AUTHOR_NAME": "agbed test bed", "GIT_AUTHOR_EMAIL": "agbed@agbed.test",
             "GIT_COMMITTER_NAME": "agbed test bed", "GIT_COMMITTER_EMAIL": "agbed@agbed.test"}


def rebuilt_dir(name: str) -> Path:
    return CACHE / "rebuilt" / name.replace("/", "%2f")


def record(name: str, version: str) -> dict:
    """{"package": its package.json, "integrity", "shasum"} of the rebuilt tarball, rebuilt
    the first time it is asked for."""
    out = rebuilt_dir(name)
    out.mkdir(parents=True, exist_ok=True)
    with open(out / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another bed may be rebuilding it
        if not (out / f"{version}.json").exists():
            _rebuild(name, version, out)
    return json.loads((out / f"{version}.json").read_text())


def _rebuild(name: str, version: str, out: Path) -> None:
    repo, tag = REBUILT[(name, version)]
    releases.bare_repos(releases.CACHE)
    log(f"npm: rebuilding {name}@{version} from {repo} {tag} (npm ci, npm run build, npm pack)")
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "src"
        src.mkdir()
        archive = subprocess.run(["git", "--git-dir", str(releases.CACHE / f"{repo}.git"),
                                  "archive", tag], check=True, capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", str(src)], input=archive, check=True)
        env = {**os.environ, "npm_config_audit": "false", "npm_config_fund": "false",
               "npm_config_update_notifier": "false"}
        for argv in (["npm", "ci", "--ignore-scripts"], ["npm", "run", "build"],
                     ["npm", "pack", "--json", "--pack-destination", tmp]):
            res = subprocess.run(argv, cwd=src, env=env, capture_output=True, text=True)
            if res.returncode != 0:
                raise RuntimeError(f"rebuilding {name}@{version}: {' '.join(argv)} failed:\n"
                                   f"{(res.stdout + res.stderr)[-3000:]}")
        packed = json.loads(res.stdout)[0]
        tarball = Path(tmp) / packed["filename"]
        data = tarball.read_bytes()
        made = {"package": json.loads((src / "package.json").read_text()),
                "integrity": integrity(data), "shasum": hashlib.sha1(data).hexdigest(),
                "source": f"{repo} {tag}"}
        shutil.copyfile(tarball, out / f".{version}.tgz")
        (out / f".{version}.tgz").replace(out / f"{version}.tgz")
        (out / f".{version}.json").write_text(json.dumps(made, indent=2) + "\n")
        (out / f".{version}.json").replace(out / f"{version}.json")
    log(f"npm: {name}@{version} rebuilt, {made['integrity']}")


def integrity(data: bytes) -> str:
    return "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode()


def lock_with_integrity(lock: str, name: str, version: str, new: str) -> str:
    """The package-lock.json text (lockfile v1 or v2/3) with only the "integrity" of the entry
    of `name` at `version` replaced, every other byte as it was. Refuses a lock with no such
    entry or with more than one."""
    keys = (rf'"{re.escape(name)}"', rf'"node_modules/{re.escape(name)}"')
    entry = re.compile(
        rf'(?P<head>(?:{"|".join(keys)}): \{{\s*"version": "{re.escape(version)}",'
        r'(?:\s*"resolved": "[^"]*",)?\s*"integrity": ")(?P<old>[^"]*)(?P<tail>")')
    found = list(entry.finditer(lock))
    if not found:
        raise ValueError(f"the lock has no entry of {name} {version} with an integrity")
    if len({m["old"] for m in found}) != 1:
        raise ValueError(f"the lock's entries of {name} {version} disagree")
    return entry.sub(lambda m: m["head"] + new + m["tail"], lock)


# ---------------------------------------------------------------- the bed's release copies

def _git(repo: Path, *args, env=None, stdin=None, raw=False) -> str:
    res = subprocess.run(["git", "--git-dir", str(repo), *args], capture_output=True, text=True,
                         input=stdin, env={**os.environ, **(env or {})})
    if res.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)} in {repo}: {res.stderr.strip()}")
    return res.stdout if raw else res.stdout.strip()


def _commit_with(repo: Path, parent: str, path: str, mode: str, obj: str, message: str) -> str:
    """A commit on `parent` whose tree differs only in `path` (mode, object), dated as its
    parent so that it is the same commit every time."""
    with tempfile.TemporaryDirectory() as tmp:
        env = {"GIT_INDEX_FILE": str(Path(tmp) / "index")}
        _git(repo, "read-tree", f"{parent}^{{tree}}", env=env)
        _git(repo, "update-index", "--cacheinfo", f"{mode},{obj},{path}", env=env)
        tree = _git(repo, "write-tree", env=env)
    date = _git(repo, "log", "-1", "--format=%cI", parent)
    return _git(repo, "commit-tree", tree, "-p", parent, "-F", "-", stdin=message,
                env={**BED_IDENT, "GIT_AUTHOR_DATE": date, "GIT_COMMITTER_DATE": date})


def bed_tags(served: Path) -> dict:
    """Tag <release>-agbed in the served ag-website-vue and autograder-full-stack for each
    of BED_RELEASES they hold (tag → full-stack commit)."""
    stack, website = served / f"{STACK}.git", served / f"{WEBSITE}.git"
    if not (stack.exists() and website.exists()):
        return {}
    made = {}
    for release in BED_RELEASES:
        if subprocess.run(["git", "--git-dir", str(stack), "rev-parse", "-q", "--verify",
                           f"refs/tags/{release}"], capture_output=True).returncode != 0:
            continue
        pinned = _git(stack, "rev-parse", f"{release}:{WEBSITE}")
        lock = _git(website, "show", f"{pinned}:{LOCK}", raw=True)
        changed = lock
        for (name, version) in REBUILT:
            if f'"{name}"' in lock:
                changed = lock_with_integrity(changed, name, version,
                                              record(name, version)["integrity"])
        if changed == lock:
            continue
        blob = _git(website, "hash-object", "-w", "--stdin", stdin=changed)
        rebuilt = ", ".join(f"{n} {v}" for n, v in REBUILT)
        site_commit = _commit_with(
            website, pinned, LOCK, "100644", blob,
            f"agbed: {LOCK}'s integrity of {rebuilt} for the bed's rebuilt tarball\n\n"
            f"Made by the test bed (bed/npm_rebuilt.py), not upstream: the npm registry no\n"
            f"longer has {rebuilt}; the bed's npm proxy serves a tarball rebuilt from its\n"
            f"source, whose sha512 differs from the one upstream's lock records. Nothing\n"
            f"else differs from {pinned[:8]}, the commit {STACK} {release} pins.\n")
        _git(website, "tag", "-f", release + BED_SUFFIX, site_commit)
        stack_commit = _commit_with(
            stack, release, WEBSITE, "160000", site_commit,
            f"agbed: {WEBSITE} at the bed's {site_commit[:8]} ({release}{BED_SUFFIX})\n\n"
            f"Made by the test bed (bed/npm_rebuilt.py), not upstream: release {release}\n"
            f"with only its {WEBSITE} link moved to the bed's commit on {pinned[:8]} that\n"
            f"changes the integrity of {rebuilt} in {LOCK}.\n")
        _git(stack, "tag", "-f", release + BED_SUFFIX, stack_commit)
        made[release + BED_SUFFIX] = stack_commit
    return made


def lock_entry_diff(served: Path, release: str) -> str:
    """The diff of ag-website-vue between what `release` pins and the bed's copy (for the
    tests and for a reader)."""
    stack, website = served / f"{STACK}.git", served / f"{WEBSITE}.git"
    ours = _git(stack, "rev-parse", f"{release}{BED_SUFFIX}:{WEBSITE}")
    theirs = _git(stack, "rev-parse", f"{release}:{WEBSITE}")
    return run(["git", "--git-dir", str(website), "diff", theirs, ours]).stdout
