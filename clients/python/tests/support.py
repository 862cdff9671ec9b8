"""Helpers for the tests: real `tapper` and `uvicorn` processes on 127.0.0.1, polled with deadlines.

Every process started here is killed by a fixture finalizer; every wait is a poll with a deadline.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence

import httpx

REPO = Path(__file__).resolve().parents[3]
TAPPER_BIN = Path(os.environ.get("TAPPER_BIN") or REPO / ".build" / "debug" / "tapper")
LISTENING_RE = re.compile(r"registry listening on http://127\.0\.0\.1:(\d+)")

def _readme_quickstart() -> str:
    """The Quick Start `main.py`, read from README.md so the tests run it exactly as printed."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    marker = text.index("<!-- quickstart: main.py")
    start = text.index("```python\n", marker) + len("```python\n")
    return text[start:text.index("```", start)]


QUICKSTART = _readme_quickstart()


# -- polling ---------------------------------------------------------------------------------


class Abort(Exception):
    """Raised by a polled predicate to stop waiting at once (e.g. the process died)."""


def wait_for(predicate: Callable[[], Any], timeout: float, what: str, interval: float = 0.05) -> Any:
    """Polls `predicate` until it returns something truthy; fails naming `what` after `timeout` s.
    Exceptions from the predicate count as "not yet" and are reported on failure, except Abort."""
    deadline = time.monotonic() + timeout
    last: Optional[BaseException] = None
    while True:
        try:
            value = predicate()
            if value:
                return value
        except Abort:
            raise
        except Exception as e:  # noqa: BLE001 - polled condition not ready yet
            last = e
        if time.monotonic() >= deadline:
            detail = f" (last error: {last!r})" if last else ""
            raise AssertionError(f"timed out after {timeout}s waiting for {what}{detail}")
        time.sleep(interval)


def read_to_end(sock: socket.socket) -> bytes:
    """Everything the peer sends until it closes its side."""
    got = b""
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            return got
        got += chunk


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http() -> httpx.Client:
    # trust_env=False: never go through a proxy from the environment for 127.0.0.1.
    return httpx.Client(timeout=5.0, trust_env=False)


def clean_env(**extra: str) -> Dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TAPPER_", "TAPER_"))}
    env["PYTHONUNBUFFERED"] = "1"
    env["NO_COLOR"] = "1"
    env.update(extra)
    return env


# -- processes -------------------------------------------------------------------------------


class Proc:
    def __init__(self, name: str, args: Sequence[str], env: Dict[str, str], cwd: Path, logdir: Path) -> None:
        self.name = name
        self.args = list(args)
        self.out_path = logdir / f"{name}.stdout"
        self.err_path = logdir / f"{name}.stderr"
        self._out = open(self.out_path, "wb")
        self._err = open(self.err_path, "wb")
        self.popen = subprocess.Popen(
            self.args, env=env, cwd=str(cwd), stdin=subprocess.DEVNULL, stdout=self._out, stderr=self._err,
            start_new_session=True,
        )
        self.port: Optional[int] = None

    @property
    def pid(self) -> int:
        return self.popen.pid

    @property
    def stdout(self) -> str:
        return self.out_path.read_text(errors="replace")

    @property
    def stderr(self) -> str:
        return self.err_path.read_text(errors="replace")

    @property
    def output(self) -> str:
        return self.stdout + self.stderr

    def alive(self) -> bool:
        return self.popen.poll() is None

    def signal(self, sig: int) -> None:
        if self.alive():
            self.popen.send_signal(sig)

    def wait_exit(self, timeout: float) -> int:
        try:
            return self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"{self.name} did not exit within {timeout}s\n{self.describe()}") from None

    def kill(self) -> None:
        """Kills the process and anything it started (it leads its own session/process group)."""
        if self.popen.returncode is None:  # not reaped yet, so the group id cannot have been reused
            try:
                os.killpg(self.popen.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        if self.alive():
            self.popen.kill()
        try:
            self.popen.wait(timeout=5)
        except subprocess.TimeoutExpired:  # pragma: no cover
            pass
        self._out.close()
        self._err.close()

    def describe(self, tail: int = 4000) -> str:
        return f"--- {self.name} ({' '.join(self.args)}) exit={self.popen.poll()}\n" + self.output[-tail:]


class Procs:
    """Starts processes for one test and kills them all at the end."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.logdir = tmp / "logs"
        self.logdir.mkdir(exist_ok=True)
        self.all: List[Proc] = []
        self._count = 0

    def start(self, name: str, args: Sequence[str], env: Optional[Dict[str, str]] = None, cwd: Optional[Path] = None) -> Proc:
        self._count += 1
        p = Proc(f"{self._count:02d}-{name}", args, env or clean_env(), cwd or self.tmp, self.logdir)
        self.all.append(p)
        return p

    def close(self) -> None:
        for p in self.all:
            p.kill()

    def dump(self) -> str:
        return "\n".join(p.describe() for p in self.all)

    # -- tapper --------------------------------------------------------------------------

    def registry(self, port: int = 0, env: Optional[Dict[str, str]] = None, timeout: float = 20) -> "Registry":
        """Starts `tapper registry serve`; with a fixed port, retries while the port is still busy."""
        require_binary()
        deadline = time.monotonic() + timeout
        while True:
            proc = self.start("registry", [str(TAPPER_BIN), "registry", "serve", "--port", str(port)], env=env or clean_env())

            def ready() -> Optional[int]:
                m = LISTENING_RE.search(proc.output)
                if m:
                    return int(m.group(1))
                if not proc.alive():
                    raise Abort("exited")
                return None

            try:
                bound = wait_for(ready, max(0.5, deadline - time.monotonic()), "the registry to listen")
            except Abort:
                if time.monotonic() >= deadline:
                    raise AssertionError(f"the registry exited before listening\n{proc.describe()}") from None
                time.sleep(0.1)
                continue
            except AssertionError:
                raise AssertionError(f"the registry did not start\n{proc.describe()}") from None
            proc.port = bound
            return Registry(proc, bound)

    # -- uvicorn -------------------------------------------------------------------------

    def uvicorn(
        self, module_source: str, name: str, port: Optional[int] = None, env: Optional[Dict[str, str]] = None,
        module: Optional[str] = None, extra_args: Sequence[str] = (),
    ) -> Proc:
        """Writes `module_source` to <tmp>/apps/<module>.py and serves `<module>:app` with uvicorn."""
        module = module or re.sub(r"\W", "_", name)
        app_dir = self.tmp / "apps"
        app_dir.mkdir(exist_ok=True)
        (app_dir / f"{module}.py").write_text(textwrap.dedent(module_source))
        port = free_port() if port is None else port
        args = [
            sys.executable, "-m", "uvicorn", f"{module}:app", "--host", "127.0.0.1", "--port", str(port),
            "--app-dir", str(app_dir), "--no-access-log", *extra_args,
        ]
        proc = self.start(name, args, env=env or clean_env(), cwd=app_dir)
        proc.port = port
        return proc


class Registry:
    def __init__(self, proc: Proc, port: int) -> None:
        self.proc = proc
        self.port = port
        self.url = f"http://127.0.0.1:{port}"

    def catalog(self) -> Dict[str, Any]:
        with http() as c:
            r = c.get(self.url + "/v1/catalog")
            r.raise_for_status()
            return r.json()

    def instances(self, service: str) -> List[Dict[str, Any]]:
        for s in self.catalog().get("services", []):
            if s.get("name") == service:
                return list(s.get("instances", []))
        return []

    def instance(self, service: str, instance_id: str) -> Optional[Dict[str, Any]]:
        for i in self.instances(service):
            if i.get("instance_id") == instance_id:
                return i
        return None

    def wait_count(self, service: str, count: int, timeout: float = 15) -> List[Dict[str, Any]]:
        def enough() -> Optional[List[Dict[str, Any]]]:
            got = self.instances(service)
            return got if len(got) == count else None

        return wait_for(enough, timeout, f"exactly {count} instance(s) of {service} in the catalog of {self.url}")

    def wait_instance(self, service: str, instance_id: Optional[str] = None, timeout: float = 15) -> Dict[str, Any]:
        def found() -> Optional[Dict[str, Any]]:
            if instance_id is None:
                got = self.instances(service)
                return got[0] if len(got) == 1 else None
            return self.instance(service, instance_id)

        return wait_for(found, timeout, f"{service}/{instance_id or '*'} in the catalog of {self.url}")


def require_binary(timeout: float = 120) -> None:
    """The binary may be missing for a moment while another engineer rebuilds it: wait for it."""
    wait_for(lambda: TAPPER_BIN.is_file() and os.access(TAPPER_BIN, os.X_OK), timeout,
             f"the tapper binary at {TAPPER_BIN} (build it with 'swift build', or set TAPPER_BIN)", interval=0.5)


def get_json(url: str, **kwargs: Any) -> Any:
    with http() as c:
        r = c.get(url, **kwargs)
        r.raise_for_status()
        return r.json()


def wait_http_ok(url: str, timeout: float = 15) -> Any:
    return wait_for(lambda: get_json(url), timeout, f"GET {url} to answer 200")


def count_lines(text: str, needle: str) -> int:
    return sum(1 for line in text.splitlines() if needle in line)


def _readme_block(marker: str) -> str:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    at = text.index(marker)
    start = text.index("```python\n", at) + len("```python\n")
    return text[start:text.index("```", start)]


README_GATEWAY = _readme_block("<!-- gateway: gateway.py")
