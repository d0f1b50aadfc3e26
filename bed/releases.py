"""The real autograder.io releases: config.UPSTREAM_BUNDLES holds git bundles of
autograder-full-stack and of the repositories its releases use (see the README beside them).
The bed serves them from its git daemon (bed/upstream.py) and builds a base image from one
(bed/real_bases.py)."""

from pathlib import Path

from . import config
from .util import run

CACHE = config.CACHE_DIR / "upstream"


def bare_repos(into: Path) -> list:
    """Bare repositories of the bundles in `into`, side by side as on GitHub (so
    autograder-full-stack's relative submodule URLs, ../autograder-server.git, resolve); an
    existing one takes its bundle's refs again (a changed bundle). Returns their paths."""
    repos = []
    for bundle in sorted(config.UPSTREAM_BUNDLES.glob("*.bundle")):
        repo = into / f"{bundle.stem}.git"
        if repo.exists():
            run(["git", "-C", str(repo), "fetch", "-q", "--prune", str(bundle), "+refs/*:refs/*"])
        else:
            run(["git", "clone", "-q", "--bare", str(bundle), str(repo)])
        repos.append(repo)
    return repos


def show(repo: str, rev: str, path: str) -> str:
    """The content of `path` at `rev` in the release repository `repo` (e.g.
    autograder-sandbox, 3.1.2)."""
    if not any(r.name == f"{repo}.git" for r in bare_repos(CACHE)):
        raise RuntimeError(f"no {repo}.bundle in {config.UPSTREAM_BUNDLES} (AG_UPSTREAM_BUNDLES)")
    return run(["git", "--git-dir", str(CACHE / f"{repo}.git"), "show", f"{rev}:{path}"]).stdout
