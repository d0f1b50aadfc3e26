"""Groundwork for the real upstream stack on tier 1: the bed's git daemon gives ag.checkout a
real release with its submodules, and the look-alike base images (bed/real_bases.py) behave
as the official ones do where the stack relies on them. Marked real_stack: building the
images takes about 15 min the first time (cached after), so `./testbed test` leaves it out;
run it with `AG_BED_ID=4 ./testbed test -m real_stack`."""

import json
import time
import urllib.request

import pytest

from bed import config, images, netns, npm_rebuilt, releases, upstream
from tests.extensions import load

ag_compose = load("_utils/ag_compose.py", "ag_compose")

pytestmark = pytest.mark.real_stack

NODE = "nuc1"
RELEASE = "2022.01.v1"
# the bed's copy of RELEASE (bed/npm_rebuilt.py): the website's lock takes the bed's rebuild of
# ag-client-typescript 2.4.4, which the npm registry lost; nothing else differs
BED_RELEASE = RELEASE + npm_rebuilt.BED_SUFFIX
NET = "ag-real-probe"  # a user network: containers reach each other by name, not on loopback
PG_PASSWORD = "s3cret-from-a-file"
CHECKOUT = "/tmp/ag-real-checkout"


@pytest.fixture(scope="module")
def served(netns_bed):
    """The bed's daemons of bed/upstream.py (git, Docker Hub, DNS, apt, PyPI, npm, the plain
    https URLs), stopped afterwards if this started them."""
    if not any(config.UPSTREAM_BUNDLES.glob("*.bundle")):
        pytest.skip(f"no release bundles in {config.UPSTREAM_BUNDLES}")
    started = upstream.up()
    yield
    for daemon in started:
        daemon.stop()


@pytest.fixture(scope="module")
def release(netns_bed, served):
    """The bed's copy of RELEASE checked out on NODE by ag.checkout (at CHECKOUT): its states'
    results."""
    netns_bed.exec(NODE, "rm", "-rf", CHECKOUT)
    netns_bed.salt(NODE, "saltutil.sync_all")  # ag.deploy's sync step, for its ag_app states
    app = {"git_url": upstream.UPSTREAM_GIT_URL, "revision": BED_RELEASE, "checkout": CHECKOUT}
    yield netns_bed.salt(NODE, "state.sls", "ag.checkout",
                         "pillar=" + json.dumps({"autograder": {"app": app}}))[NODE]
    netns_bed.exec(NODE, "rm", "-rf", CHECKOUT)


@pytest.fixture(scope="module")
def node(netns_bed):
    """NODE with the real bases loaded and a network for the probes; afterwards the bed's
    stand-ins (which share postgres's and redis's tags) are back."""
    images.build_all("real")
    images.load_into(netns.node_exec, NODE, group="real")
    netns_bed.exec(NODE, "docker", "network", "create", NET)
    yield netns_bed
    netns_bed.exec(NODE, "sh", "-c", "docker rm -f $(docker ps -aq --filter name=ag-real-) "
                   "2>/dev/null; true")
    netns_bed.exec(NODE, "docker", "network", "rm", NET)
    images.load_into(netns.node_exec, NODE)


def run(bed, *argv, check=True):
    """`docker run --rm` on NODE, on the probes' network."""
    return bed.exec(NODE, "docker", "run", "--rm", "--network", NET, *argv, check=check)


def start(bed, name: str, *argv) -> None:
    bed.exec(NODE, "docker", "run", "-d", "--name", name, "--network", NET, *argv)


def wait_log(bed, name: str, text: str, timeout: float = 60, times: int = 1) -> str:
    """The container's log once `text` is in it `times` times."""
    deadline = time.monotonic() + timeout
    while True:
        logs = bed.exec(NODE, "docker", "logs", name, check=False)
        if (logs.stdout + logs.stderr).count(text) >= times:
            return logs.stdout + logs.stderr
        assert time.monotonic() < deadline, f"{name} never logged {text!r}:\n{logs.stdout}{logs.stderr}"
        time.sleep(1)


def node_file(bed, path: str, text: str, mode: str = "644") -> None:
    bed.exec(NODE, "sh", "-c", f"mkdir -p $(dirname {path}) && cat > {path} <<'EOF'\n{text}EOF\n"
             f"chmod {mode} {path}")


def test_ag_checkout_clones_a_release_with_its_submodules(netns_bed, release):
    assert all(r["result"] for r in release.values()), release
    status = netns_bed.exec(NODE, "git", "-C", CHECKOUT, "submodule", "status").stdout
    pinned = netns_bed.exec(NODE, "git", "-C", CHECKOUT, "ls-tree", "HEAD",
                            "autograder-server", "ag-website-vue").stdout
    for line in pinned.splitlines():  # "<mode> commit <sha>\t<path>"
        commit, path = line.split()[2:]
        assert f" {commit} {path}" in status, status  # checked out at the pinned commit
    netns_bed.exec(NODE, "test", "-f", f"{CHECKOUT}/autograder-server/Dockerfile-django-prod")
    netns_bed.exec(NODE, "test", "-f", f"{CHECKOUT}/ag-website-vue/Dockerfile-website-prod")


def test_the_bed_s_copy_differs_from_the_release_only_in_one_lock_entry(netns_bed, release):
    """BED_RELEASE is RELEASE with its ag-website-vue link moved to one commit on the pinned
    one, which changes only ag-client-typescript 2.4.4's integrity in package-lock.json."""
    stack = netns_bed.exec(NODE, "git", "-C", CHECKOUT, "diff", "--name-only", RELEASE,
                           "HEAD").stdout.split()
    assert stack == ["ag-website-vue"]
    website = f"{CHECKOUT}/ag-website-vue"
    pinned = netns_bed.exec(NODE, "git", "-C", CHECKOUT, "rev-parse",
                            f"{RELEASE}:ag-website-vue").stdout.strip()
    assert netns_bed.exec(NODE, "git", "-C", website, "rev-parse", "HEAD^").stdout.strip() \
        == pinned
    diff = netns_bed.exec(NODE, "git", "-C", website, "diff", "-U4", pinned, "HEAD").stdout
    changed = [line for line in diff.splitlines()
               if line[:1] in "+-" and not line.startswith(("+++", "---"))]
    assert len(changed) == 2 and all('"integrity": "sha512-' in line for line in changed), diff
    assert '"ag-client-typescript": {' in diff and '"version": "2.4.4"' in diff
    rebuilt = npm_rebuilt.record("ag-client-typescript", "2.4.4")["integrity"]
    assert changed[1] == f'+      "integrity": "{rebuilt}",'


# image: (build context in the checkout, Dockerfile, a check run in the image, its output,
# and `docker run` arguments of the check)
WEBSITE_CONF = ("-v", f"{CHECKOUT}/ag-website-vue/nginx/conf.d:/etc/nginx/conf.d")  # as compose
BUILDS = {
    "django": ("autograder-server", "Dockerfile-django-prod",
               "python -c 'import django, psycopg2, celery, gnupg; "
               "print(django.get_version(), celery.__version__)'", "3.2.2 4.4.7"),
    "grader": ("autograder-server", "Dockerfile-grader-prod",
               "docker --version >/dev/null && python -c 'import django; "
               "print(django.get_version())'", "3.2.2"),
    "nginx": ("nginx/production", "Dockerfile",
              "openssl dhparam -in /etc/nginx/ssl/dhparam.pem -noout -text | head -1",
              "DH Parameters: (2048 bit)"),
    # upstream's conf.d (root /usr/src/app/dist) serves the built app: its index.html for the
    # /web routes and the bundle that page loads (not the template in public/)
    "website": ("ag-website-vue", "Dockerfile-website-prod",
                # (nginx's logs, /dev/stdout and /dev/stderr, out of the check's output)
                "nginx >/dev/null 2>&1 && page=$(curl -sf http://localhost/web/courses) && "
                "echo \"$page\" | grep -o '<title>Autograder</title>' && "
                "app=$(echo \"$page\" | grep -o '/js/app\\.[0-9a-f]*\\.js' | head -n 1) && "
                "curl -sf -o /dev/null http://localhost$app && echo \"${app%%.*}\" && "
                # node-sass's binding, built by node-gyp against Debian's headers, compiles
                "cd /usr/src/app && node -p \"require('node-sass').renderSync("
                "{data: 'a { b: c }', outputStyle: 'compressed'}).css.toString().trim()\"",
                "<title>Autograder</title>\n/js/app\na{b:c}", WEBSITE_CONF),
}


@pytest.mark.parametrize("image", sorted(BUILDS))
def test_the_release_s_dockerfiles_build_unchanged(node, release, image):
    """Each Dockerfile's own fetches reach the bed: pip (`pip install pip-tools`, `pip-sync`)
    the PyPI proxy by the name the python base's pip.conf gives, apt-get the apt proxy,
    `wget https://get.docker.com` the bed's answer, trusted through the bed's CA; all by the
    bed's DNS. The website's: `curl https://deb.nodesource.com/setup_12.x | bash` the bed's
    answer (Debian's Node 12, npm 6 from the npm proxy), `npm install` the bed's npm proxy,
    node-sass's binding download a 404 from the bed and its node-gyp build Debian's headers
    of Node; its checkout is the bed's copy (test above). The checks show each image has what
    its service runs."""
    context, dockerfile, check, expected, *run_args = BUILDS[image]
    path = f"{CHECKOUT}/{context}"
    node.exec(NODE, "git", "-C", path, "diff", "--exit-code", "HEAD")  # upstream's files
    tag = f"ag-real-{image}"
    logs = {d: d.dir / "access.log" for d in (upstream.WEB, upstream.NPM)}
    before = {d: log.stat().st_size if log.exists() else 0 for d, log in logs.items()}
    # the website's fetches are checked below: from the node's build cache it fetches none
    fresh = ["--no-cache"] if image == "website" else []
    node.exec(NODE, "docker", "build", "-q", *fresh, "-f", f"{path}/{dockerfile}", "-t", tag, path)
    try:
        assert run(node, *(run_args[0] if run_args else ()), tag, "sh", "-c", check) \
            .stdout.strip() == expected
    finally:
        node.exec(NODE, "docker", "rmi", tag, check=False)
    if image == "website":  # what the build asked the bed for
        web, npm = (logs[d].read_bytes()[before[d]:].decode() for d in (upstream.WEB,
                                                                       upstream.NPM))
        assert '"GET /setup_12.x HTTP/1.1" 200' in web
        assert '"GET /sass/node-sass/releases/download/v4.14.1/linux-x64-72_binding.node ' \
            'HTTP/1.1" 404' in web
        assert "ag-client-typescript: versions 2.4.4 rebuilt by the bed" in npm
        assert '"GET /-/rebuilt/ag-client-typescript/-/ag-client-typescript-2.4.4.tgz ' \
            'HTTP/1.1" 200' in npm


SECRETS = "/tmp/ag-real-checkout-secrets"  # a node path: the checkout's secrets dir
APP_SECRETS = "/usr/src/app/autograder/settings/secrets"


@pytest.fixture(scope="module")
def real_secrets(node, release):
    """The django image built from the release, and upstream's secrets made in SECRETS by
    generate_secrets.py in it, with ag_app.secrets_generated's command and bind; removed after."""
    server = f"{CHECKOUT}/autograder-server"
    node.exec(NODE, "rm", "-rf", SECRETS)
    node.exec(NODE, "docker", "build", "-q", "-f", f"{server}/Dockerfile-django-prod",
              "-t", "ag-real-django", server)
    run(node, "-v", f"{SECRETS}:{APP_SECRETS}", "-e", "EMAIL_FROM_ADDR=ag@example.edu",
        "-w", "/usr/src/app", "ag-real-django", "python3", "generate_secrets.py")
    yield SECRETS
    node.exec(NODE, "rm", "-rf", SECRETS)
    node.exec(NODE, "docker", "rmi", "ag-real-django", check=False)


def test_generate_secrets_runs_in_the_django_image_as_ag_secrets_runs_it(node, real_secrets):
    """Upstream's generate_secrets.py needs Django, python-gnupg and gpg: in the image built
    from the release, it makes the secret key and a real GPG key in the secrets dir, its
    GPG home."""
    fingerprint = node.exec(NODE, "cat", f"{real_secrets}/gpg_key_id_file").stdout.strip()
    assert len(fingerprint) == 40 and int(fingerprint, 16)
    listed = node.exec(NODE, "sh", "-c", f"gpg --homedir {real_secrets} --list-keys 2>&1 || "
                       f"ls {real_secrets}").stdout
    assert fingerprint in listed or "pubring.kbx" in listed, listed
    node.exec(NODE, "test", "-s", f"{real_secrets}/secret_key")


# upstream's sign_email and check_signature (autograder/core/submission_email_receipts.py)
SIGN_AND_VERIFY = f"""
import gnupg
home = {APP_SECRETS!r}
keyid, passphrase = (open(f"{{home}}/{{name}}").read() for name in ("gpg_key_id_file",
                                                                    "gpg_key_password"))
signed = str(gnupg.GPG(gnupghome=home).sign("receipt 42", keyid=keyid, passphrase=passphrase))
print("signed" if signed else "EMPTY", bool(gnupg.GPG(gnupghome=home).verify(signed.encode())))
"""


def sign_and_verify(node, *mounts) -> str:
    return run(node, *mounts, "ag-real-django", "python3", "-c", SIGN_AND_VERIFY,
               check=False).stdout.strip()


def test_the_real_app_signs_receipts_with_each_secret_file_given_at_its_path(
        node, real_secrets, tmp_path):
    """Issue 17.8: the real gpg writes into its home as it signs. The secrets dir mounted
    read-only (as the deploy did) gives an empty signature, which the app sends silently;
    each file the deploy gives as a swarm secret (ag_compose.checkout_secret_files: gpg's
    runtime files left out), bound read-only at its own path as swarm binds a secret, leaves
    the dir writable, and the receipt is signed and verifies."""
    assert sign_and_verify(node, "-v", f"{real_secrets}:{APP_SECRETS}:ro") == "EMPTY False"
    settings = tmp_path / "autograder-server/autograder/settings"
    settings.mkdir(parents=True)  # a checkout whose secrets dir is the node's
    (settings / "secrets").symlink_to(netns.node_dir(NODE) / "fs" / real_secrets.lstrip("/"))
    given = ag_compose.checkout_secret_files(str(tmp_path))
    prefix = "autograder/settings/secrets/"
    assert {"gpg_key_id_file", "gpg_key_password", "secret_key", "pubring.kbx"} <= {
        path.removeprefix(prefix) for path in given}
    assert any(path.startswith(f"{prefix}private-keys-v1.d/") for path in given), given
    mounts = [arg for path in given for arg in (
        "-v", f"{real_secrets}/{path.removeprefix(prefix)}:{APP_SECRETS}/"
              f"{path.removeprefix(prefix)}:ro")]
    assert sign_and_verify(node, *mounts) == "signed True"


def test_the_hub_serves_the_real_bases_under_their_official_names(node, served):
    """(The stand-ins' postgres and redis come back under their tags with the next
    fill_hub() of the bed's own images, as tier 2's `up` does.)"""
    upstream.fill_hub("real")
    for img in images.in_group("real"):
        for tag in img.tags:
            repo, version = upstream._repo_and_tag(tag)
            req = urllib.request.Request(
                f"http://{config.BRIDGE_ADDR}:{upstream.HUB_PORT}/v2/{repo}/manifests/{version}",
                headers={"Accept": upstream.MANIFEST_TYPE})
            with urllib.request.urlopen(req, timeout=30) as res:
                assert json.load(res)["config"]["digest"] == images.meta(img.name)["id"], tag


def test_postgres_initialises_with_the_password_file_and_asks_for_it(node):
    node_file(node, "/tmp/ag-real-pg/db_password", PG_PASSWORD + "\n", "600")
    for tag in ("postgres:9.5", "postgres:14"):
        name = f"ag-real-pg{tag.split(':')[1]}"
        start(node, name, "-e", "POSTGRES_PASSWORD_FILE=/run/secrets/db_password",
              "-v", "/tmp/ag-real-pg/db_password:/run/secrets/db_password:ro", tag)
        # ready twice: the server initdb's scripts talk to, then the one that stays
        logs = wait_log(node, name, "database system is ready to accept connections", 90, 2)
        assert "PostgreSQL init process complete" in logs
        assert PG_PASSWORD not in logs
        # from another container: not loopback, so the password is asked for and checked
        psql = ["postgres:13", "psql", "-h", name, "-U", "postgres", "-tAc", "select 1"]
        assert run(node, "-e", f"PGPASSWORD={PG_PASSWORD}", *psql).stdout.strip() == "1"
        wrong = run(node, "-e", "PGPASSWORD=wrong", *psql, check=False)
        assert wrong.returncode != 0 and "password authentication failed" in wrong.stderr


def test_postgres_refuses_an_empty_data_dir_without_one_password(node):
    neither = run(node, "postgres:9.5", check=False)
    assert neither.returncode != 0 and "superuser password is not specified" in neither.stderr
    both = run(node, "-e", "POSTGRES_PASSWORD=a", "-e", "POSTGRES_PASSWORD_FILE=/etc/hostname",
               "postgres:9.5", check=False)
    assert both.returncode != 0 and "are exclusive" in both.stderr


def test_nginx_takes_a_conf_d_and_serves_as_its_own_user(node):
    conf = releases.show("ag-website-vue", RELEASE, "nginx/conf.d/default.conf")
    node_file(node, "/tmp/ag-real-nginx/conf.d/default.conf", conf)
    checked = run(node, "-v", "/tmp/ag-real-nginx/conf.d:/etc/nginx/conf.d", "nginx:1.13",
                  "nginx", "-t")
    assert "test is successful" in checked.stderr
    start(node, "ag-real-nginx", "nginx:1.13")  # its own conf.d and CMD
    page = run(node, "agbed/busybox", "wget", "-qO-", "http://ag-real-nginx/").stdout
    assert "Welcome to nginx" in page
    nginx_uid = node.exec(NODE, "docker", "exec", "ag-real-nginx", "id", "-u", "nginx").stdout
    top = node.exec(NODE, "docker", "top", "ag-real-nginx", "-o", "pid,uid,args").stdout
    assert [line.split()[1] for line in top.splitlines() if "worker process" in line] \
        == [nginx_uid.strip()]


def test_upstreams_rabbitmq_dockerfile_builds_and_its_server_starts(node):
    for path in ("rabbitmq/Dockerfile", "rabbitmq/rabbitmq.conf"):
        node_file(node, f"/tmp/ag-real-rabbitmq/{path}",
                  releases.show("autograder-full-stack", RELEASE, path))
    node.exec(NODE, "env", "DOCKER_BUILDKIT=0", "docker", "build", "-q", "-t",
              "ag-real-rabbitmq", "/tmp/ag-real-rabbitmq/rabbitmq")
    start(node, "ag-real-rabbit", "--hostname", "rabbit", "ag-real-rabbitmq")
    wait_log(node, "ag-real-rabbit", "Server startup complete", 120)
    timeout = node.exec(NODE, "docker", "exec", "ag-real-rabbit", "rabbitmqctl", "eval",
                        "application:get_env(rabbit, consumer_timeout).").stdout
    assert "86400000" in timeout  # upstream's rabbitmq.conf is the one read
    whoami = node.exec(NODE, "docker", "exec", "ag-real-rabbit", "sh", "-c",
                       "stat -c %U /var/lib/rabbitmq/mnesia").stdout.strip()
    assert whoami == "rabbitmq"


def test_python_has_what_the_server_dockerfiles_use(node):
    out = run(node, "python:3.8", "sh", "-ec",
              "python3 -c 'import ssl, sqlite3'; command -v python3; command -v pip; pip --version; "
              "cat $PIP_CONSTRAINT; gcc --version >/dev/null; pg_config --version; "
              "gpg --version >/dev/null; wget --version >/dev/null").stdout.splitlines()
    assert out[:2] == ["/usr/local/bin/python3", "/usr/local/bin/pip"]
    pip_version = tuple(int(p) for p in out[2].split()[1].split(".")[:2])
    assert pip_version < (24, 1)
    assert out[3] == "pip<24.1"


def test_redis_answers_other_containers(node):
    start(node, "ag-real-redis", "redis:latest")
    wait_log(node, "ag-real-redis", "Ready to accept connections")
    assert run(node, "redis:latest", "redis-cli", "-h", "ag-real-redis", "ping").stdout.strip() \
        == "PONG"


def test_the_sandbox_runs_a_command_as_the_graders_do(node):
    # autograder_sandbox 3.1.2: docker run -i -t -d, usermod -u, then cmd_runner.py
    node.exec(NODE, "docker", "run", "-i", "-t", "-d", "--net", "none", "--name",
              "ag-real-sandbox", "jameslp/autograder-sandbox:3.1.2")
    node.exec(NODE, "docker", "exec", "-i", "ag-real-sandbox", "usermod", "-u", "2001",
              "autograder")
    out = node.exec(NODE, "docker", "exec", "-i", "ag-real-sandbox", "cmd_runner.py",
                    "--stdin_devnull", "--linux_user_id", "2001", "--timeout", "10",
                    "sh", "-c", "id -u; pwd").stdout
    assert "2001" in out and "/home/autograder/working_dir" in out


def test_the_registry_listens_where_the_compose_file_says(node):
    start(node, "ag-real-registry", "-e", "REGISTRY_HTTP_ADDR=0.0.0.0:5001", "registry:2")
    wait_log(node, "ag-real-registry", "listening on")
    assert run(node, "agbed/busybox", "wget", "-qO-",
               "http://ag-real-registry:5001/v2/").stdout.strip() == "{}"
