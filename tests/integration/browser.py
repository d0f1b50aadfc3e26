"""What a person at a lab machine sees: Debian's headless Chromium, driven over its DevTools
pipe (stdlib only), run in a bed node's network namespace, which has a route to the bed's
subnet and no other, so whatever outside host a page names stays unreached."""

import base64
import json
import os
import select
import subprocess
import time
from pathlib import Path

from bed.util import wait_for


class DevTools:
    """One Chromium; call(METHOD, session=..., **params) → its result."""

    def __init__(self, argv, timeout: float, log: Path):
        to_browser_r, self.to_browser = os.pipe()
        self.from_browser, from_browser_w = os.pipe()
        # Chromium reads commands on fd 3 and writes replies on fd 4, each ended by NUL (bash:
        # dash redirects no fd above 9)
        with log.open("w") as err:
            self.proc = subprocess.Popen(
                ["bash", "-c", f'exec "$@" 3<&{to_browser_r} 4>&{from_browser_w}', "chromium",
                 *argv], pass_fds=(to_browser_r, from_browser_w), stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL, stderr=err)
        os.close(to_browser_r)
        os.close(from_browser_w)
        self.timeout, self.sent, self.buffer, self.log = timeout, 0, b"", log

    def call(self, method: str, session: str = None, **params) -> dict:
        self.sent += 1
        message = {"id": self.sent, "method": method, "params": params}
        if session:
            message["sessionId"] = session
        os.write(self.to_browser, json.dumps(message).encode() + b"\0")
        while True:
            reply = self._next()
            if reply.get("id") == self.sent:
                if "error" in reply:
                    raise RuntimeError(f"Chromium: {method}: {reply['error']}")
                return reply["result"]

    def _next(self) -> dict:
        deadline = time.monotonic() + self.timeout
        while b"\0" not in self.buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.from_browser], [], [], left)[0]:
                raise TimeoutError(f"Chromium did not answer within {self.timeout} s")
            chunk = os.read(self.from_browser, 1 << 20)
            if not chunk:
                raise RuntimeError(f"Chromium exited: {self.log.read_text()[-2000:]}")
            self.buffer += chunk
        message, self.buffer = self.buffer.split(b"\0", 1)
        return json.loads(message)

    def close(self) -> None:
        try:
            self.call("Browser.close")
        finally:
            self.proc.wait(timeout=30)
            os.close(self.to_browser)
            os.close(self.from_browser)


def signed_in_page(netns: str, site: str, address: str, cookies: dict, expect: str,
                   screenshot: Path, profile: Path, timeout: float = 90) -> str:
    """Open https://SITE/ (SITE resolved to ADDRESS, as a campus DNS would) with COOKIES set
    for it, wait until the page's text shows EXPECT, save a screenshot; → the page's text.
    The bed's site certificate is self-signed: its errors are ignored."""
    argv = ["ip", "netns", "exec", netns, "chromium", "--headless", "--no-sandbox",
            "--disable-gpu", "--remote-debugging-pipe", f"--user-data-dir={profile}",
            "--ignore-certificate-errors", f"--host-resolver-rules=MAP {site} {address}",
            "--window-size=1280,800", "about:blank"]
    profile.mkdir(parents=True, exist_ok=True)
    browser = DevTools(argv, timeout, profile.with_name(profile.name + ".log"))
    try:
        browser.call("Storage.setCookies", cookies=[
            {"name": name, "value": value, "domain": site, "path": "/", "secure": True}
            for name, value in cookies.items()])
        target = browser.call("Target.createTarget", url=f"https://{site}/")["targetId"]
        session = browser.call("Target.attachToTarget", targetId=target,
                               flatten=True)["sessionId"]

        def text() -> str:
            return browser.call("Runtime.evaluate", session=session, returnByValue=True,
                                expression="document.body ? document.body.innerText : ''"
                                )["result"].get("value") or ""

        try:
            wait_for(lambda: expect in text(), timeout, f"{expect!r} on https://{site}/", 1)
        finally:
            shot = browser.call("Page.captureScreenshot", session=session, format="png")
            screenshot.parent.mkdir(parents=True, exist_ok=True)
            screenshot.write_bytes(base64.b64decode(shot["data"]))
        return text()
    finally:
        browser.close()
