"""The bed's npm proxy against a registry served on loopback: tarball addresses rewritten to
its own /-/files/, each tarball fetched once and then served from its cache, a kept packument
served when the registry stops answering, nothing fetched that no packument named, and the
bed's rebuilt versions added only where the registry lacks them."""

import json
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler

import pytest

from bed import npm_proxy
from tests.extensions import serve

PUBLIC = "https://npm.agbed.test:4873/"


def packument(base):
    return {"name": "demo", "dist-tags": {"latest": "1.0.0"}, "versions": {"1.0.0": {
        "name": "demo", "version": "1.0.0",
        "dist": {"tarball": f"{base}/demo/-/demo-1.0.0.tgz", "integrity": "sha512-x"}}}}


class Registry(BaseHTTPRequestHandler):
    asked = []

    def do_GET(self):
        Registry.asked.append((self.path, self.headers.get("Accept")))
        base = f"http://{self.headers['Host']}"
        body = {"/demo": json.dumps(packument(base)).encode(),
                "/@scope%2Fpkg": json.dumps({"name": "@scope/pkg", "versions": {}}).encode(),
                "/demo/-/demo-1.0.0.tgz": b"tarball"}.get(self.path)
        if body is None:
            return self.send_error(404)
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def proxy(tmp_path):
    registry, registry_url = serve(Registry)
    npm_proxy.Proxy.registry = f"{registry_url}/"
    npm_proxy.Proxy.cache = tmp_path
    npm_proxy.Proxy.access_log = open(tmp_path / "access.log", "a")
    server, url = serve(npm_proxy.Proxy)
    npm_proxy.Proxy.public = f"{url}/"
    Registry.asked = []
    yield url, registry, tmp_path
    server.shutdown()
    registry.shutdown()


def get(url, accept=npm_proxy.CORGI):
    req = urllib.request.Request(url, headers={"Accept": accept})
    with urllib.request.urlopen(req, timeout=10) as res:
        return res.read()


def test_tarballs_point_at_the_proxy_and_come_once(proxy):
    url, registry, tmp_path = proxy
    doc = json.loads(get(f"{url}/demo"))
    tarball = doc["versions"]["1.0.0"]["dist"]["tarball"]
    assert tarball == f"{url}/-/files/demo/-/demo-1.0.0.tgz"
    assert doc["versions"]["1.0.0"]["dist"]["integrity"] == "sha512-x"
    assert get(tarball) == b"tarball"
    registry.shutdown()  # the registry gone: the tarball and the packument come from the cache
    assert get(tarball) == b"tarball" and json.loads(get(f"{url}/demo")) == doc
    assert [p for p, _ in Registry.asked] == ["/demo", "/demo/-/demo-1.0.0.tgz"]
    assert Registry.asked[0][1] == npm_proxy.CORGI  # npm install's abbreviated packument
    log = (tmp_path / "access.log").read_text()
    assert log.count(" fetched ") == 2  # what a warm build's log lacks


def test_a_kept_packument_is_served_when_the_registry_does_not_answer(proxy, monkeypatch):
    url, registry, _ = proxy
    doc = json.loads(get(f"{url}/demo"))
    monkeypatch.setattr(npm_proxy, "PAGE_TTL", -1)  # kept too long: asked again
    monkeypatch.setattr(npm_proxy, "RETRIES", 1)
    registry.shutdown()
    registry.server_close()
    assert json.loads(get(f"{url}/demo")) == doc


def test_a_failed_lookup_is_tried_again(proxy, monkeypatch):
    url, _, _ = proxy
    real, failures = npm_proxy._fetch, [OSError("Temporary failure in name resolution")]

    def flaky(address, accept="*/*"):
        if failures:
            raise failures.pop()
        return real(address, accept)
    monkeypatch.setattr(npm_proxy, "_fetch", flaky)
    monkeypatch.setattr(npm_proxy.time, "sleep", lambda s: None)
    assert json.loads(get(f"{url}/demo"))["name"] == "demo"


def test_scoped_names_reach_the_registry_escaped(proxy):
    url, _, _ = proxy
    assert json.loads(get(f"{url}/@scope%2fpkg"))["name"] == "@scope/pkg"
    assert Registry.asked[0][0] == "/@scope%2Fpkg"


def test_nothing_is_fetched_that_no_packument_named(proxy):
    url, _, _ = proxy
    for path in ("/-/files/demo/-/demo-1.0.0.tgz", "/-/files/..%2f..%2fetc",
                 "/-/files/..%2f..%2furls/-/demo.json", "/..%2fetc%2fpasswd",
                 "/-/rebuilt/demo/-/demo-9.tgz", "/-/whoami", "/absent"):
        with pytest.raises(urllib.error.HTTPError) as err:
            get(url + path)
        assert err.value.code == 404, path
    assert [p for p, _ in Registry.asked] == ["/absent"]


def test_audit_post_gets_404(proxy):
    url, _, _ = proxy
    req = urllib.request.Request(f"{url}/-/npm/v1/security/audits/quick", data=b"{}",
                                 method="POST")
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(req, timeout=10)
    assert err.value.code == 404


def rebuilt(tmp_path, version="2.0.0"):
    here = tmp_path / "rebuilt" / "demo"
    here.mkdir(parents=True)
    (here / f"{version}.tgz").write_bytes(b"rebuilt tarball")
    (here / f"{version}.json").write_text(json.dumps({
        "package": {"name": "demo", "version": version, "dependencies": {"x": "^1"},
                    "devDependencies": {"typescript": "3"}, "scripts": {"build": "tsc"}},
        "integrity": "sha512-rebuilt", "shasum": "abc"}))


def test_a_rebuilt_version_joins_the_packument_and_is_served(proxy):
    url, _, tmp_path = proxy
    rebuilt(tmp_path)
    doc = json.loads(get(f"{url}/demo"))
    assert set(doc["versions"]) == {"1.0.0", "2.0.0"}
    assert doc["dist-tags"] == {"latest": "1.0.0"}  # the registry's
    added = doc["versions"]["2.0.0"]
    assert added["dependencies"] == {"x": "^1"} and "scripts" not in added
    assert added["dist"]["integrity"] == "sha512-rebuilt"
    assert get(added["dist"]["tarball"]) == b"rebuilt tarball"


def test_a_version_the_registry_has_is_never_replaced(tmp_path):
    doc = packument("http://r")
    made = {"package": {"name": "demo", "version": "1.0.0"}, "integrity": "sha512-bed",
            "shasum": "s"}
    assert npm_proxy.add_rebuilt(doc, {"1.0.0": made}, PUBLIC) == []
    assert doc["versions"]["1.0.0"]["dist"]["integrity"] == "sha512-x"


def test_rewrite_gives_each_file_s_address():
    doc = packument("https://registry.example")
    assert npm_proxy.rewrite(doc, "demo", PUBLIC) == {
        "demo-1.0.0.tgz": "https://registry.example/demo/-/demo-1.0.0.tgz"}
    assert doc["versions"]["1.0.0"]["dist"]["tarball"] == f"{PUBLIC}-/files/demo/-/demo-1.0.0.tgz"


def test_rewrite_of_a_scoped_package_and_of_an_address_it_cannot_take():
    doc = {"versions": {
        "1.0.0": {"dist": {"tarball": "https://r.example/@s/p/-/p-1.0.0.tgz"}},
        "2.0.0": {"dist": {"tarball": "https://r.example/@s/p/-/p-2.0.0.tgz"}},
        "2.0.1": {"dist": {"tarball": "https://mirror.example/p-2.0.0.tgz"}},  # same file name
        "3.0.0": {"dist": {"tarball": "https://r.example/x/y/weird%20name.tgz"}}}}
    assert npm_proxy.rewrite(doc, "@s/p", PUBLIC) == {
        "p-1.0.0.tgz": "https://r.example/@s/p/-/p-1.0.0.tgz"}
    tarballs = [v["dist"]["tarball"] for v in doc["versions"].values()]
    assert tarballs == [f"{PUBLIC}-/files/@s%2fp/-/p-1.0.0.tgz",
                        "https://r.example/@s/p/-/p-2.0.0.tgz", "https://mirror.example/p-2.0.0.tgz",
                        "https://r.example/x/y/weird%20name.tgz"]


@pytest.mark.parametrize("path, name", [
    ("/lodash", "lodash"), ("/@vue%2fcli-service", "@vue/cli-service"),
    ("/@vue/cli-service", "@vue/cli-service"), ("/..%2fetc", None), ("/-/files/x", None),
    ("/a/b", None), ("/", None)])
def test_package_names(path, name):
    assert npm_proxy.package_name(path) == name


def test_the_registry_is_this_machine_s_npm_config(monkeypatch):
    import subprocess

    def fake_run(argv, **kw):
        assert argv == ["npm", "config", "get", "registry"]
        return subprocess.CompletedProcess(argv, 0, stdout="https://registry.example/npm\n")
    monkeypatch.setattr(subprocess, "run", fake_run)
    assert npm_proxy.machine_registry() == "https://registry.example/npm/"

