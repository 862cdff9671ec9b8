"""A small Chrome DevTools protocol client for the browser tests: headless Chromium from Debian's
`chromium` package, driven over its WebSocket (the `websockets` package), polled with deadlines.

Under CI a missing Chromium fails the test; elsewhere the test is skipped with the reason.
"""

from __future__ import annotations

import base64
import itertools
import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any, Dict, Optional

import pytest
from websockets.sync.client import connect

from support import Abort, wait_for

CHROMIUM_CANDIDATES = ("chromium", "chromium-browser", "google-chrome")


def chromium_path() -> str:
    for name in CHROMIUM_CANDIDATES:
        found = shutil.which(name)
        if found:
            return found
    message = "headless Chromium is not installed (Debian: apt-get install chromium; scripts/test installs it)"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)
    raise AssertionError("unreachable")


class Browser:
    """One headless Chromium with one page; `evaluate` runs JavaScript in it."""

    def __init__(self, profile: Path, width: int = 1440, height: int = 1000) -> None:
        self.log_path = profile.parent / "chromium.stderr"
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [chromium_path(), "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
             "--no-default-browser-check", "--disable-extensions", "--disable-background-networking", "--hide-scrollbars",
             "--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0", f"--user-data-dir={profile}",
             f"--window-size={width},{height}", "about:blank"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=self._log, start_new_session=True,
        )
        self.ids = itertools.count(1)

        def devtools_url() -> Optional[str]:
            if self.proc.poll() is not None:
                raise Abort("chromium exited:\n" + self.log_path.read_text(errors="replace")[-3000:])
            m = re.search(r"DevTools listening on (ws://\S+)", self.log_path.read_text(errors="replace"))
            return m.group(1) if m else None

        browser_ws = wait_for(devtools_url, 30, "chromium's DevTools endpoint")
        self._connection = connect(browser_ws, max_size=64 * 1024 * 1024, open_timeout=10)
        self.ws = self._connection.__enter__()
        target = self.call("Target.createTarget", url="about:blank")["targetId"]
        self.session = self.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        self.call("Page.enable")
        self.call("Runtime.enable")
        self.call("Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1, mobile=False)

    def call(self, method: str, timeout: float = 30, **params: Any) -> Dict[str, Any]:
        msg_id = next(self.ids)
        msg: Dict[str, Any] = {"id": msg_id, "method": method, "params": params}
        if method.split(".")[0] not in ("Target", "Browser") and getattr(self, "session", None):
            msg["sessionId"] = self.session
        self.ws.send(json.dumps(msg))
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"no answer to {method} within {timeout}s")
            reply = json.loads(self.ws.recv(timeout=remaining))
            if reply.get("id") == msg_id:
                if "error" in reply:
                    raise AssertionError(f"{method}: {reply['error']}")
                return reply.get("result", {})

    def set_headers(self, headers: Dict[str, str]) -> None:
        self.call("Network.enable")
        self.call("Network.setExtraHTTPHeaders", headers=headers)

    def navigate(self, url: str) -> None:
        self.call("Page.navigate", url=url)
        wait_for(lambda: self.evaluate("document.readyState") == "complete" and self.evaluate("location.href") == url, 30, f"{url} to load")

    def evaluate(self, expression: str) -> Any:
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise AssertionError(f"{expression!r} threw: {result['exceptionDetails']}")
        return result["result"].get("value")

    def screenshot(self, path: Path) -> Path:
        data = self.call("Page.captureScreenshot", format="png", captureBeyondViewport=False)["data"]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(data))
        return path

    def close(self) -> None:
        try:
            self._connection.__exit__(None, None, None)
        except Exception:  # noqa: BLE001 - the browser may be gone already
            pass
        try:
            os.killpg(self.proc.pid, 9)
        except (ProcessLookupError, PermissionError):
            pass
        self.proc.wait(timeout=10)
        self._log.close()
