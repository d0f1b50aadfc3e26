"""Validate a site's autograder pillar offline, e.g. in its pillar repository's CI: no master,
no minion, no test bed, only Python 3 with PyYAML (and Jinja2 for a file that uses Jinja).

    python3 tools/validate_pillar.py PILLAR.sls...            # these files, merged in order
    python3 tools/validate_pillar.py PILLAR_DIR [--minion ID]  # the files its top.sls gives ID

Each file is rendered as Salt's default renderer (jinja|yaml) does: Jinja first, only when the
file holds Jinja tags, without `salt`, `grains` or `pillar` (only a master has them: such a file
is named, run `salt-run ag.validate` on the master for it), then YAML. The files are merged as
the master merges pillar files (mappings recursively, the later file wins, lists replaced) and
the `autograder` key is checked by _utils/ag_cluster.py. A top.sls is read for its `base`
environment, glob targets only. Exit 1 when the pillar is invalid, one error a line.
"""

import argparse
import fnmatch
import functools
import importlib.util
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent


class PillarError(Exception):
    """A pillar file that cannot be read: the message names the file (and line)."""


@functools.cache
def cluster_rules():
    spec = importlib.util.spec_from_file_location("ag_cluster", REPO / "_utils/ag_cluster.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _jinja(path: Path, text: str) -> str:
    import jinja2  # only files with Jinja tags need it

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(path.parent)),
                             undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
    try:
        return env.from_string(text).render()
    except jinja2.TemplateError as exc:
        line = f":{exc.lineno}" if getattr(exc, "lineno", None) else ""
        raise PillarError(f"{path}{line}: Jinja: {exc.message} (salt, grains and pillar exist "
                          "only on the master: there, run salt-run ag.validate)") from exc


def render(path: Path):
    """The data of one pillar SLS file."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise PillarError(f"{path}: cannot be read ({exc.strerror})") from exc
    if cluster_rules().JINJA_TAG.search(text):
        text = _jinja(path, text)
    error = cluster_rules().yaml_errors(str(path), text)
    if error:
        raise PillarError(error[0])
    data = yaml.safe_load(text)
    if data is not None and not isinstance(data, dict):
        raise PillarError(f"{path}: a pillar file holds a mapping, not {type(data).__name__}")
    if data and "include" in data:  # not followed here: the included keys would go unchecked
        raise PillarError(f"{path}: include is not followed offline; give the included files "
                          "on the command line instead")
    return data or {}


def merge(base: dict, update: dict) -> dict:
    """`update` merged into `base` as the master merges pillar files (smart/recurse strategy)."""
    merged = dict(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            value = merge(merged[key], value)
        merged[key] = value
    return merged


def _sls_path(root: Path, name: str) -> Path:
    found = cluster_rules().pillar_file([str(root)], name)
    return Path(found) if found else root / f"{name.replace('.', '/')}.sls"


def top_files(pillar_dir: Path, minion_id: str) -> list:
    """The SLS files `pillar_dir`'s top.sls gives `minion_id`, in its order."""
    top = render(pillar_dir / "top.sls").get("base") or {}
    files = []
    for target, entries in top.items():
        if not fnmatch.fnmatch(minion_id, str(target)):
            continue
        for entry in entries or []:
            if isinstance(entry, dict):  # `- match: grain` and the like need the minion itself
                raise PillarError(f"{pillar_dir / 'top.sls'}: target {target!r} has {entry}, which "
                                  "only the master can match; give the files instead")
            files.append(_sls_path(pillar_dir, entry))
    return files


def errors(paths, minion_id: str) -> list:
    """Every error of the pillar these files or pillar directories make (empty: valid)."""
    pillar = {}
    try:
        for path in map(Path, paths):
            for sls in top_files(path, minion_id) if path.is_dir() else [path]:
                pillar = merge(pillar, render(sls))
    except PillarError as exc:
        return [str(exc)]
    return cluster_rules().validate(pillar.get("autograder"))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("pillar", nargs="+", help="pillar SLS files, or a directory with top.sls")
    parser.add_argument("--minion", default="validate",
                        help="minion id a directory's top.sls is read for (default: validate)")
    args = parser.parse_args(argv)
    found = errors(args.pillar, args.minion)
    for error in found:
        print(f"error: {error}")
    if not found:
        print(f"{' '.join(args.pillar)}: the autograder pillar is valid")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
