"""tools/validate_pillar.py: a site's pillar CI validates its pillar files with no master and no
test bed; each error names its key, a YAML error its file and line."""

import subprocess
import sys

import yaml

from bed.__main__ import main as bed_main
from bed.config import REPO
from tests.extensions import load

validate_pillar = load("tools/validate_pillar.py", "validate_pillar")
EXAMPLE = REPO / "pillar/autograder.sls"


def run(*args):
    return subprocess.run([sys.executable, str(REPO / "tools/validate_pillar.py"), *map(str, args)],
                          capture_output=True, text=True)


def test_the_example_pillar_is_valid():
    res = run(EXAMPLE)
    assert res.returncode == 0, res.stdout
    assert "valid" in res.stdout


def test_a_pillar_directory_is_read_through_its_top_file():
    assert run(REPO / "pillar", "--minion", "nuc2").returncode == 0


def test_a_bad_key_fails_naming_the_key(tmp_path):
    pillar = yaml.safe_load(EXAMPLE.read_text())
    pillar["autograder"]["cluster"]["nodes"]["nuc3"]["labels"][0] = "deffered_grader"
    (tmp_path / "bad.sls").write_text(yaml.safe_dump(pillar))
    res = run(tmp_path / "bad.sls")
    assert res.returncode == 1
    assert "(autograder:cluster:nodes:nuc3:labels[0])" in res.stdout
    assert "did you mean 'deferred_grader'" in res.stdout


def test_a_yaml_syntax_error_names_the_file_and_line(tmp_path):
    bad = tmp_path / "broken.sls"
    bad.write_text("autograder:\n  cluster:\n    manager: [nuc1\n    nodes: {}\n")
    res = run(bad)
    assert res.returncode == 1
    assert f"error: {bad}:4: YAML:" in res.stdout


def test_later_files_override_earlier_ones_key_by_key(tmp_path):
    site = tmp_path / "site.sls"
    site.write_text("autograder:\n  cluster:\n    manager: nuc9\n")
    assert validate_pillar.errors([EXAMPLE], "validate") == []
    errors = validate_pillar.errors([EXAMPLE, site], "validate")
    assert errors == [e for e in errors if "'nuc9' is not one of the nodes" in e] != []


def test_jinja_is_rendered_and_what_needs_the_master_is_named(tmp_path):
    text = EXAMPLE.read_text().replace("manager: nuc1", "manager: {{ 'nuc' ~ 1 }}")
    (tmp_path / "jinja.sls").write_text(text)
    assert validate_pillar.errors([tmp_path / "jinja.sls"], "validate") == []
    (tmp_path / "grains.sls").write_text(text.replace("'nuc' ~ 1", "grains.id"))
    [error] = validate_pillar.errors([tmp_path / "grains.sls"], "validate")
    assert "grains.sls: Jinja: 'grains' is undefined" in error


def test_testbed_validate_is_the_same_command(tmp_path, capfd):
    (tmp_path / "top.sls").write_text("base:\n  'nuc*':\n    - site\n")
    (tmp_path / "site.sls").write_text("autograder: {}\n")
    assert bed_main(["validate", str(tmp_path), "--minion", "nuc1"]) == 1
    assert "error: autograder:cluster is missing" in capfd.readouterr().out
