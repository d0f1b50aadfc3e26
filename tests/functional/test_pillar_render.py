"""The example pillar renders through Salt's own pillar compiler as a site would use it."""

import json
import subprocess

from bed import config


def render_pillar(tmp_path, pillar_root):
    conf = tmp_path / "minion"
    conf.write_text(
        # Salt 3008 masks pillar values in output by default; this test reads them back
        f"root_dir: {tmp_path}\nfile_client: local\nid: nuc2\npillar_mask_output: false\n"
        f"pillar_roots:\n  base:\n    - {pillar_root}\n"
    )
    res = subprocess.run(
        [str(config.SALT_BIN / "salt-call"), "-c", str(tmp_path), "--local", "--out=json",
         "pillar.items"], capture_output=True, text=True, check=True,
    )
    return json.loads(res.stdout)["local"]


def test_example_pillar_renders_the_cluster(tmp_path):
    pillar = render_pillar(tmp_path, config.REPO / "pillar")
    cluster = pillar["autograder"]["cluster"]
    assert cluster["manager"] == "nuc1"
    assert set(cluster["nodes"]) == {"nuc1", "nuc2", "nuc3"}
    assert "database" in cluster["nodes"]["nuc1"]["labels"]
