"""pillar/pillar.example and salt/*/defaults.yaml, written from the pillar's schema
(_utils/ag_schema.py), where each key's type, default and meaning are declared once.

    python3 tools/schema_files.py           # after editing the schema: rewrite the files
    python3 tools/schema_files.py --check   # exit 1 when a file is not what the schema says

tests/unit/test_schema_files.py runs the check.
"""

import importlib.util
import sys
import textwrap
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
WIDTH = 96
GENERATED = "written by tools/schema_files.py from _utils/ag_schema.py: edit that, not this file"
EDIT_THERE = GENERATED.replace(": ", ":\n# ")


def _schema():
    spec = importlib.util.spec_from_file_location("ag_schema", REPO / "_utils/ag_schema.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


schema = _schema()

# which sections each concern's defaults.yaml holds (its map.jinja merges the pillar over them)
DEFAULTS_FILES = {
    "salt/ag/defaults.yaml": {"app": schema.APP, "registry": schema.REGISTRY,
                              "backup": schema.BACKUP},
    "salt/docker/defaults.yaml": {"docker": schema.DOCKER},
    "salt/firewall/defaults.yaml": {"firewall": schema.FIREWALL},
    "salt/limits/defaults.yaml": {"limits": schema.LIMITS},
    "salt/nfs/defaults.yaml": {"nfs": schema.NFS},
    "salt/swarm/defaults.yaml": {"swarm": schema.SWARM, "cluster": schema.CLUSTER,
                                 "node": schema.NODE},
}

EXAMPLE_HEAD = f"""\
# Every pillar key this project reads, with its default. Everything lives under one key,
# `autograder`, so one pillar file can describe the whole cluster and be validated at once:
#   salt-run ag.validate                         (on the master)
#   python3 tools/validate_pillar.py PILLAR_DIR  (offline, e.g. in your pillar repository's CI)
# This file is {EDIT_THERE}.
autograder:
"""


def _flow(value) -> str:
    return yaml.safe_dump(value, default_flow_style=True, width=10**6).removesuffix("...\n").strip()


def _key_line(indent: int, name: str, value) -> list:
    """`name: value` in flow style; a long list goes on as many lines as it needs."""
    line = f"{' ' * indent}{name}: {_flow(value)}"
    if len(line) <= WIDTH or not isinstance(value, list):
        return [line]
    head = f"{' ' * indent}{name}: ["
    return textwrap.wrap(", ".join(_flow(item) for item in value) + "]", WIDTH,
                         initial_indent=head, subsequent_indent=" " * len(head),
                         break_long_words=False, break_on_hyphens=False)


def _comment(indent: int, doc: str) -> list:
    return [f"{' ' * indent}# {line}".rstrip() for line in doc.splitlines()]


def _entries(key, value: dict, indent: int, docs: bool) -> list:
    """The lines of the keys of Section `key` that `value` holds, with their docs."""
    lines = []
    for name, sub in key.keys.items():
        doc = "(advanced) " * sub.advanced + sub.doc
        if name in value:
            lines += _comment(indent, doc) if docs and doc else []
            lines += _value(name, sub, value[name], indent, docs)
    return lines


def _value(name: str, key, value, indent: int, docs: bool) -> list:
    if isinstance(key, schema.Section) and isinstance(value, dict) and value:
        return [f"{' ' * indent}{name}:"] + _entries(key, value, indent + 2, docs)
    if isinstance(key, schema.Mapping) and key.values and value:
        lines = [f"{' ' * indent}{name}:"]
        for i, (entry, body) in enumerate(value.items()):  # the first entry carries the docs
            lines += [f"{' ' * (indent + 2)}{entry}:"]
            lines += _entries(key.values, body, indent + 4, docs and i == 0)
        return lines
    return _key_line(indent, name, value)


def pillar_example() -> str:
    lines = []
    for name, section in schema.AUTOGRADER.keys.items():
        banner = f"  # --- {section.doc} "
        lines += ["", banner + "-" * (WIDTH - len(banner)), f"  {name}:"]
        lines += _entries(section, section.example, 4, docs=True)
    return EXAMPLE_HEAD + "\n".join(lines) + "\n"


class _BlockDumper(yaml.SafeDumper):
    """Mappings as blocks, lists on one line (as pillar.example writes them)."""


_BlockDumper.add_representer(list, lambda dumper, value: dumper.represent_sequence(
    "tag:yaml.org,2002:seq", value, flow_style=True))


def _section_name(name: str) -> str:
    return f"autograder:{name}" if name in schema.AUTOGRADER.keys else \
        f"{name} (each entry of autograder:cluster:nodes)"


def defaults_yaml(sections: dict) -> str:
    head = (f"Defaults of {', '.join(map(_section_name, sections))}, {GENERATED}. Every key "
            "is documented in pillar/pillar.example.")
    body = yaml.dump({name: key.default for name, key in sections.items()}, Dumper=_BlockDumper,
                     sort_keys=False, default_flow_style=False, width=WIDTH)
    return "\n".join(textwrap.wrap(head, WIDTH, initial_indent="# ", subsequent_indent="# ")
                      + [body])


def rendered() -> dict:
    """{path relative to the repository: the text the schema gives it}."""
    files = {"pillar/pillar.example": pillar_example()}
    files.update({path: defaults_yaml(sections) for path, sections in DEFAULTS_FILES.items()})
    return files


def main(argv) -> int:
    stale = [path for path, text in rendered().items() if (REPO / path).read_text() != text]
    if "--check" in argv:
        for path in stale:
            print(f"{path} is not what _utils/ag_schema.py says; run python3 tools/schema_files.py")
        return int(bool(stale))
    for path in stale:
        (REPO / path).write_text(rendered()[path])
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
