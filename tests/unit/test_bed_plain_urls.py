"""The plain https URLs the real Dockerfiles fetch: each answer is a file of bed/plain-urls,
a valid shell script; names the bed answers without a file (GitHub's release downloads) get
404; and the bed's setup_12.x takes the npm registry from the image's npm config (the nginx
base's), which names the bed's npm proxy."""

import subprocess

from bed import config, plain_urls, real_bases


def test_every_answer_is_a_shell_script_of_plain_urls():
    for site in plain_urls.SITES.values():
        for answer in site.values():
            script = plain_urls.HERE / answer
            assert script.read_text().startswith("#!/bin/"), answer
            subprocess.run(["bash", "-n", str(script)], check=True)


def test_nodesource_setup_is_answered_and_github_only_with_404():
    assert plain_urls.SITES["deb.nodesource.com"] == {"/setup_12.x": "setup_12.x.sh"}
    assert plain_urls.SITES["github.com"] == {}


def test_setup_12_reads_the_registry_from_the_npm_config_the_nginx_base_writes():
    script = (plain_urls.HERE / "setup_12.x.sh").read_text()
    assert "NPMRC=/usr/etc/npmrc" in script and "https://" not in script.replace(
        "https://deb.nodesource.com/setup_12.x", "")
    nginx = next(b for b in real_bases.BASES if b.name == "nginx")
    npmrc = dict((path, text) for path, text, _ in nginx.files)["/usr/etc/npmrc"]
    assert npmrc.splitlines() == [f"registry={config.NPM_REGISTRY}",
                                  "cafile=/etc/ssl/certs/ca-certificates.crt"]
    assert config.NPM_REGISTRY.startswith(f"https://npm.{config.BED_DOMAIN}:")
