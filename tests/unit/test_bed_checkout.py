"""A reused netns bed's shared checkout follows the stand-in template, and keeps a deploy's
files while the template is unchanged."""

import pytest

from bed import netns
from tests import standin


@pytest.fixture
def bed_checkout(tmp_path, monkeypatch):
    template = tmp_path / "template"
    (template / "autograder-server").mkdir(parents=True)
    (template / "docker-compose.yml").write_text("services: {}\n")
    (template / "autograder-server/Dockerfile").write_text("FROM one\n")
    monkeypatch.setattr(standin, "TEMPLATE", template)
    monkeypatch.setattr(netns, "SHARED_CHECKOUT", tmp_path / "shared/autograder-full-stack")
    monkeypatch.setattr(netns, "STANDIN_STAMP", tmp_path / "shared/standin.revision")
    netns.SHARED_CHECKOUT.mkdir(parents=True)
    return template, netns.SHARED_CHECKOUT


def test_a_deploys_edits_stay_while_the_template_is_unchanged(bed_checkout):
    _, checkout = bed_checkout
    netns._checkout_up()
    (checkout / "docker-compose.yml").write_text("services: {tweaked: {}}\n")
    (checkout / "secrets.json").write_text("{}")
    netns._checkout_up()
    assert (checkout / "docker-compose.yml").read_text() == "services: {tweaked: {}}\n"
    assert (checkout / "secrets.json").exists()
    assert (checkout / standin.BED_OVERRIDE.name).exists()


def test_a_changed_template_is_written_again_keeping_generated_files(bed_checkout):
    template, checkout = bed_checkout
    netns._checkout_up()
    (checkout / "secrets.json").write_text("{}")
    (template / "autograder-server/Dockerfile").write_text("FROM two\n")
    netns._checkout_up()
    assert (checkout / "autograder-server/Dockerfile").read_text() == "FROM two\n"
    assert (checkout / "secrets.json").exists()


def test_a_removed_checkout_is_written_again(bed_checkout):
    _, checkout = bed_checkout
    netns._checkout_up()
    (checkout / "docker-compose.yml").unlink()
    netns._checkout_up()
    assert (checkout / "docker-compose.yml").read_text() == "services: {}\n"
