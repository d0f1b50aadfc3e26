"""ag_app.secrets_generated without Docker: generate_secrets.py runs in the django image (a
fake image_run that does what it does), once; test=True says what it would make; existing
secrets are kept; a run that fails or makes nothing fails naming the node; no secret in a
return."""

import json
import os
import shutil

import pytest

from bed.config import REPO
from tests.extensions import load, module_fakes

CHECKOUT = REPO / "tests/standin/autograder-full-stack"
INSIDE = "/usr/src/app/autograder/settings/secrets"


class Image:
    """generate_secrets.py in the image: writes the missing files into the bound secrets dir."""

    def __init__(self):
        self.runs = []
        self.retcode = 0

    def image_run(self, image, cmd, binds, environment=None, workdir=None):
        self.runs.append((image, cmd, environment, workdir))
        (host,) = [h for h, inside in binds.items() if inside == INSIDE]
        if self.retcode == 0:
            for name in ("secret_key", "gpg_key_id_file", "gpg_key_password"):
                path = os.path.join(host, name)
                if not os.path.exists(path):
                    with open(path, "w") as fh:
                        fh.write(f"{name}-value-never-shown")
        return {"retcode": self.retcode, "output": "" if self.retcode == 0 else "Traceback: x"}


@pytest.fixture
def image():
    return Image()


@pytest.fixture
def checkout(tmp_path):
    dest = tmp_path / "checkout"
    (dest / "autograder-server").mkdir(parents=True)
    shutil.copy(CHECKOUT / "docker-compose.yml", dest)
    (dest / "autograder-server/_prod.env").write_text("# site\nEMAIL_FROM_ADDR=ag@example.edu\n")
    return dest


@pytest.fixture
def ag_app(image):
    module = load("_states/ag_app.py", "ag_app")
    module.__salt__ = module_fakes({"ag_app.image_run": image.image_run})
    module.__opts__ = {"test": False}
    module.__grains__ = {"id": "nuc1"}
    return module


def secrets_dir(checkout):
    return checkout / "autograder-server/autograder/settings/secrets"


def test_made_once_in_the_django_image_with_the_site_s_sender(ag_app, image, checkout):
    ag_app.__opts__["test"] = True
    planned = ag_app.secrets_generated(str(checkout))
    assert planned["result"] is None and image.runs == []
    assert planned["changes"] == {"generated": ["secret_key", "gpg_key_id_file", "gpg_key_password",
                                                "db_password"]}
    ag_app.__opts__["test"] = False
    made = ag_app.secrets_generated(str(checkout))
    assert made["result"] is True and made["changes"] == planned["changes"]
    assert image.runs == [("127.0.0.1:5000/django:latest", ["python3", "generate_secrets.py"],
                           {"EMAIL_FROM_ADDR": "ag@example.edu"}, "/usr/src/app")]
    assert oct(secrets_dir(checkout).stat().st_mode & 0o777) == "0o700"
    password = secrets_dir(checkout) / "db_password"
    assert oct(password.stat().st_mode & 0o777) == "0o600" and len(password.read_text()) > 40
    again = ag_app.secrets_generated(str(checkout))
    assert again["result"] is True and again["changes"] == {} and len(image.runs) == 1
    assert "never-shown" not in json.dumps([planned, made, again])
    assert password.read_text().strip() not in json.dumps([planned, made, again])


def test_an_interrupted_run_is_finished_and_what_exists_is_kept(ag_app, image, checkout):
    secrets_dir(checkout).mkdir(parents=True)
    (secrets_dir(checkout) / "secret_key").write_text("kept")
    made = ag_app.secrets_generated(str(checkout))
    assert made["changes"] == {"generated": ["gpg_key_id_file", "gpg_key_password", "db_password"]}
    assert (secrets_dir(checkout) / "secret_key").read_text() == "kept"


def test_a_missing_database_password_alone_is_made_without_the_image(ag_app, image, checkout):
    secrets_dir(checkout).mkdir(parents=True)
    for name in ("secret_key", "gpg_key_id_file", "gpg_key_password"):
        (secrets_dir(checkout) / name).write_text("kept")
    made = ag_app.secrets_generated(str(checkout))
    assert made["result"] is True and made["changes"] == {"generated": ["db_password"]}
    assert image.runs == [] and (secrets_dir(checkout) / "db_password").exists()


def test_a_failed_run_fails_naming_the_image_and_node(ag_app, image, checkout):
    image.retcode = 1
    ret = ag_app.secrets_generated(str(checkout))
    assert ret["result"] is False and ret["changes"] == {}
    assert ret["comment"] == ("generate_secrets.py in 127.0.0.1:5000/django:latest on nuc1 "
                              "exited 1: Traceback: x")
