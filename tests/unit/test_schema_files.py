"""pillar/pillar.example and salt/*/defaults.yaml are what the pillar's schema
(_utils/ag_schema.py) says: `python3 tools/schema_files.py` writes them after a change."""

import pytest
import yaml

from bed.config import REPO
from tests.extensions import load

schema_files = load("tools/schema_files.py", "schema_files")


@pytest.mark.parametrize("path", sorted(schema_files.rendered()))
def test_file_is_written_from_the_schema(path):
    assert (REPO / path).read_text() == schema_files.rendered()[path], \
        f"{path} is out of date; run python3 tools/schema_files.py"


def test_every_concern_map_reads_its_defaults_file():
    for path in schema_files.DEFAULTS_FILES:
        concern = path.split("/")[1]
        assert f"{concern}/defaults.yaml" in (REPO / f"salt/{concern}/map.jinja").read_text()


def test_the_example_holds_every_key_with_its_default():
    example = yaml.safe_load((REPO / "pillar/pillar.example").read_text())["autograder"]
    for name, section in schema_files.schema.AUTOGRADER.keys.items():
        expected = section.example if name == "cluster" else section.default
        assert example[name] == expected
