"""The bed's PyPI proxy against an index served on loopback: links rewritten to its own
/files/, each file fetched once and then served from its cache, nothing fetched that no index
page named."""

import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler

import pytest

from bed import pypi_proxy
from tests.extensions import serve

PAGE = ('<html><body><a href="../../packages/demo-1.0.tar.gz#sha256=abc" '
        'data-dist-info-metadata="sha256=def">demo-1.0.tar.gz</a></body></html>')


class Index(BaseHTTPRequestHandler):
    asked = []

    def do_GET(self):
        Index.asked.append(self.path)
        body = {"/simple/demo/": PAGE.encode(), "/packages/demo-1.0.tar.gz": b"sdist"}.get(self.path)
        if body is None:
            return self.send_error(404)
        self.send_response(200)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def proxy(tmp_path):
    index, index_url = serve(Index)
    pypi_proxy.Proxy.index = f"{index_url}/simple/"
    pypi_proxy.Proxy.cache = tmp_path
    pypi_proxy.Proxy.access_log = open(tmp_path / "access.log", "a")
    server, url = serve(pypi_proxy.Proxy)
    Index.asked = []
    yield url, index
    server.shutdown()
    index.shutdown()


def get(url):
    with urllib.request.urlopen(url, timeout=10) as res:
        return res.read().decode()


def test_links_point_at_the_proxy_and_files_come_once(proxy):
    url, index = proxy
    page = get(f"{url}/simple/demo/")
    assert "data-dist-info-metadata" not in page
    link = page.split('href="')[1].split('"')[0]
    path, _, fragment = link.partition("#")
    assert path.startswith("/files/") and path.endswith("/demo-1.0.tar.gz") and fragment == "sha256=abc"
    assert get(url + path) == "sdist"
    index.shutdown()  # the index gone: the file and the page come from the cache
    assert get(url + path) == "sdist" and get(f"{url}/simple/demo/") == page
    assert Index.asked == ["/simple/demo/", "/packages/demo-1.0.tar.gz"]


def test_nothing_is_fetched_that_no_index_page_named(proxy):
    url, _ = proxy
    for path in ("/files/0123456789abcdef0123456789abcdef/x.whl", "/files/..%2f..%2fetc/passwd",
                 "/simple/..%2fetc/", "/elsewhere"):
        with pytest.raises(urllib.error.HTTPError) as err:
            get(url + path)
        assert err.value.code == 404
    assert Index.asked == []
