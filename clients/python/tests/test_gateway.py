"""@Service services behind a real `tapper gateway serve` (with its embedded registry).

A binary without a working `gateway serve` command fails these tests; they never skip.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
import uuid
from typing import Dict, List, Set

import pytest

from support import (
    QUICKSTART,
    Abort,
    TAPPER_BIN,
    Proc,
    Procs,
    Registry,
    clean_env,
    free_port,
    get_json,
    http,
    require_binary,
    wait_for,
)

ECHO_APP = """\
import os

from fastapi import FastAPI, Request
from tapper import Service

app = Service(name="echo", version="1.0.0", ttl=3)(FastAPI())


@app.post("/echo")
async def echo(request: Request):
    return {
        "json": await request.json(),
        "raw_path": request.scope.get("raw_path", b"").decode("latin-1"),
        "query_string": request.scope["query_string"].decode("latin-1"),
        "headers": {k.decode("latin-1"): v.decode("latin-1") for k, v in request.scope["headers"]},
    }


@app.get("/echo/{rest:path}")
async def echo_get(rest: str, request: Request):
    return {
        "rest": rest,
        "raw_path": request.scope.get("raw_path", b"").decode("latin-1"),
        "query_string": request.scope["query_string"].decode("latin-1"),
        "query": [[k, v] for k, v in request.query_params.multi_items()],
        "headers": {k.decode("latin-1"): v.decode("latin-1") for k, v in request.scope["headers"]},
    }


@app.get("/whoami")
async def whoami():
    return {"pid": os.getpid()}
"""


def _gateway_available() -> bool:
    require_binary()
    try:
        r = subprocess.run([str(TAPPER_BIN), "gateway", "serve", "--help"], capture_output=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return False
    # Check the usage line: an unknown subcommand with --help prints the root help and exits 0.
    return r.returncode == 0 and b"gateway serve" in r.stdout + r.stderr


@pytest.fixture(scope="module")
def gateway_available() -> None:
    if not _gateway_available():
        pytest.fail(f"{TAPPER_BIN} has no 'gateway serve' command")


class Gateway:
    def __init__(self, proc: Proc, port: int, registry_port: int) -> None:
        self.proc = proc
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.registry_url = f"http://127.0.0.1:{registry_port}"
        self.registry = Registry(proc, registry_port)

    def service_env(self, **extra: str) -> Dict[str, str]:
        return clean_env(TAPPER_REGISTRY_URL=self.registry_url, **extra)


@pytest.fixture
def gateway(gateway_available: None, procs: Procs) -> Gateway:
    return start_gateway(procs)


def start_gateway(procs: Procs, *extra: str) -> Gateway:
    port, registry_port = free_port(), free_port()
    proc = procs.start(
        "gateway",
        [str(TAPPER_BIN), "gateway", "serve", "--port", str(port), "--registry-port", str(registry_port), *extra],
    )
    gw = Gateway(proc, port, registry_port)

    def ready() -> bool:
        if not proc.alive():
            raise Abort(f"the gateway exited\n{proc.describe()}")
        with http() as c:
            # The embedded registry answers, and the gateway answers its own /health (200 or 503).
            return c.get(gw.registry_url + "/v1/health").status_code == 200 and c.get(gw.url + "/health").status_code in (200, 503)

    try:
        wait_for(ready, 20, "the gateway and its embedded registry to listen")
    except AssertionError as e:
        raise AssertionError(f"{e}\n{proc.describe()}") from None
    return gw


def wait_routable(gw: Gateway, path: str, timeout: float = 15) -> None:
    def ok() -> bool:
        with http() as c:
            return c.get(gw.url + path).status_code == 200

    wait_for(ok, timeout, f"GET {path} through the gateway to answer 200")


def test_quickstart_is_routable_through_the_gateway(gateway: Gateway, procs: Procs) -> None:
    app = procs.uvicorn(QUICKSTART, "quickstart", env=gateway.service_env())
    gateway.registry.wait_instance("user-service", f"127.0.0.1-{app.port}")
    wait_routable(gateway, "/users/1")
    assert get_json(gateway.url + "/users/1") == {"user_id": 1, "name": "Jane Doe"}
    with http() as c:
        # The README's POST route echoes its JSON body through the gateway.
        r = c.post(gateway.url + "/users/", json={"name": "Ann", "roles": ["admin", "ops"]})
        assert r.status_code == 200
        assert r.json() == {"name": "Ann", "roles": ["admin", "ops"]}
        # Not a route of the app: the gateway answers 404 itself, in its error shape.
        r = c.get(gateway.url + "/nowhere")
        assert r.status_code == 404
        assert "error" in r.json()
        # Same path, other method: 405 with Allow.
        r = c.delete(gateway.url + "/users/1")
        assert r.status_code == 405
        assert "GET" in r.headers.get("allow", "")


def test_bodies_queries_and_headers_arrive_intact(gateway: Gateway, procs: Procs) -> None:
    app = procs.uvicorn(ECHO_APP, "echo", env=gateway.service_env())
    gateway.registry.wait_instance("echo", f"127.0.0.1-{app.port}")
    wait_routable(gateway, "/whoami")

    body = {
        "text": "héllo wörld ✓ 🚀",
        "nested": {"list": [1, 2.5, None, True, "x"], "empty": {}},
        "big": "z" * 200_000,
    }
    request_id = str(uuid.uuid4())
    headers = {
        "X-Custom-Header": "Value With Spaces; and=signs",
        "X-Request-ID": request_id,
        "traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    }
    query = "a=1&b=two%20words&b=3&empty=&slash=%2F&plus=1+2&utf=%C3%A9"
    with http() as c:
        r = c.post(f"{gateway.url}/echo?{query}", json=body, headers=headers)
        assert r.status_code == 200, r.text
        got = r.json()
        assert got["json"] == body
        assert got["query_string"] == query  # forwarded byte for byte
        assert got["raw_path"] == "/echo"
        seen = got["headers"]
        assert seen["x-custom-header"] == headers["X-Custom-Header"]
        assert seen["x-request-id"] == request_id
        assert seen["traceparent"] == headers["traceparent"]
        assert seen["content-type"] == "application/json"
        assert "127.0.0.1" in seen.get("x-forwarded-for", "")
        assert r.headers.get("x-request-id") == request_id

        # A catch-all route with an encoded path: no decoding or re-encoding on the way. (Encoded
        # slashes, %2F, are refused by the gateway on purpose, so they are not used here.)
        r = c.get(f"{gateway.url}/echo/caf%C3%A9/c%20d/x~y?x=%26&x=2&y=%2F")
        assert r.status_code == 200, r.text
        got = r.json()
        assert got["raw_path"] == "/echo/caf%C3%A9/c%20d/x~y"
        assert got["rest"] == "café/c d/x~y"
        assert got["query_string"] == "x=%26&x=2&y=%2F"
        assert got["query"] == [["x", "&"], ["x", "2"], ["y", "/"]]


def _start_pair(gateway: Gateway, procs: Procs) -> List[Proc]:
    apps = [procs.uvicorn(ECHO_APP, f"echo-{i}", module="echo_app", env=gateway.service_env()) for i in range(2)]
    for app in apps:
        gateway.registry.wait_instance("echo", f"127.0.0.1-{app.port}")
    return apps


def _pids_seen(gateway: Gateway, expected: Set[int], timeout: float = 15) -> Set[int]:
    seen: Set[int] = set()

    def all_seen() -> bool:
        with http() as c:
            r = c.get(gateway.url + "/whoami")
            if r.status_code == 200:
                seen.add(r.json()["pid"])
        return expected <= seen

    wait_for(all_seen, timeout, f"responses from every instance {sorted(expected)} (seen {sorted(seen)})", interval=0.01)
    return seen


def test_two_instances_share_the_traffic(gateway: Gateway, procs: Procs) -> None:
    apps = _start_pair(gateway, procs)
    pids = {a.pid for a in apps}
    _pids_seen(gateway, pids)  # both are routable

    counts: Dict[int, int] = {pid: 0 for pid in pids}
    with http() as c:
        for _ in range(40):
            r = c.get(gateway.url + "/whoami")
            assert r.status_code == 200, r.text
            counts[r.json()["pid"]] += 1
    # Round-robin by default; allow some slack for any balancer that spreads the load.
    assert all(n >= 10 for n in counts.values()), counts


def test_sigterm_on_one_instance_loses_no_request(gateway: Gateway, procs: Procs) -> None:
    leaving, staying = _start_pair(gateway, procs)
    _pids_seen(gateway, {leaving.pid, staying.pid})

    failures: List[str] = []
    served_by: List[int] = []
    with http() as c:

        def one_request() -> None:
            try:
                r = c.get(gateway.url + "/whoami")
            except Exception as e:  # noqa: BLE001 - any transport error is a lost request
                failures.append(repr(e))
                return
            if r.status_code != 200:
                failures.append(f"{r.status_code} {r.text[:200]}")
            else:
                served_by.append(r.json()["pid"])

        for _ in range(20):
            one_request()
        leaving.signal(signal.SIGTERM)
        # Keep the requests coming while the instance drains, deregisters and exits...
        deadline = time.monotonic() + 15
        while leaving.alive():
            assert time.monotonic() < deadline, f"the instance did not exit\n{leaving.describe()}"
            one_request()
        gone_at = len(served_by)
        # ...and for a while after it is gone.
        for _ in range(50):
            one_request()

    assert failures == [], failures
    assert set(served_by[gone_at:]) == {staying.pid}
    assert gateway.registry.instance("echo", f"127.0.0.1-{leaving.port}") is None


AUTH_APP = """\
from fastapi import FastAPI, Request
from tapper import Service, public

app = Service(name="shop", version="1.0.0", ttl=3)(FastAPI())


@app.get("/catalog/{item_id}")
@public
async def catalog(item_id: int):
    return {"item": item_id}


@app.get("/cart")
async def cart(request: Request):
    return {"subject": request.headers.get("x-tapper-subject")}
"""


def test_public_routes_of_a_fastapi_app_skip_gateway_auth(gateway_available: None, procs: Procs, tmp_path) -> None:
    keys = tmp_path / "api-keys"
    keys.write_text("checkout:k-7f3a9c2e51d04b68\n")
    admin_port = free_port()
    gw = start_gateway(procs, "--auth", "api-key", "--api-keys-file", str(keys), "--admin-port", str(admin_port))
    app = procs.uvicorn(AUTH_APP, "shop", env=gw.service_env())
    gw.registry.wait_instance("shop", f"127.0.0.1-{app.port}")
    wait_routable(gw, "/catalog/1")
    with http() as c:
        assert c.get(gw.url + "/catalog/5").json() == {"item": 5}
        r = c.get(gw.url + "/cart")
        assert r.status_code == 401
        assert r.headers["www-authenticate"].startswith("ApiKey")
        r = c.get(gw.url + "/cart", headers={"X-API-Key": "k-7f3a9c2e51d04b68", "X-Tapper-Subject": "root"})
        assert r.status_code == 200
        assert r.json() == {"subject": "checkout"}
        # The admin endpoints moved to their own port.
        assert c.get(gw.url + "/_tapper/routes").status_code == 404
        routes = c.get(f"http://127.0.0.1:{admin_port}/_tapper/routes").json()
        flags = {(r["template"], r["public"]) for r in routes["routes"]}
        assert ("/catalog/{item_id:int}", True) in flags or ("/catalog/{item_id}", True) in flags
        assert ("/cart", False) in flags


def test_sigkill_is_unroutable_at_once_through_passive_health_and_gone_within_its_ttl(gateway: Gateway, procs: Procs) -> None:
    # ECHO_APP registers with ttl=3.
    ttl = 3
    victim, survivor = _start_pair(gateway, procs)
    _pids_seen(gateway, {victim.pid, survivor.pid})
    victim_id = f"127.0.0.1-{victim.port}"
    victim.kill()  # SIGKILL: no deregistration
    killed_at = time.monotonic()
    served_by: List[int] = []
    failures: List[str] = []
    with http() as c:
        for _ in range(30):
            r = c.get(gateway.url + "/whoami")
            if r.status_code == 200:
                served_by.append(r.json()["pid"])
            else:
                failures.append(f"{r.status_code} {r.text[:200]}")
        status = c.get(gateway.url + "/_tapper/status").json()
    # Refused connections are retried on the survivor, so nothing fails, and the dead instance is
    # out of rotation (ejected) long before its TTL runs out.
    assert failures == [] and set(served_by) == {survivor.pid}
    assert time.monotonic() - killed_at < ttl
    states = {i["id"]: i["state"] for svc in status["services"] if svc["name"] == "echo" for i in svc["instances"]}
    assert states.get(victim_id) in ("ejected", None), status  # ejected, or already gone
    wait_for(lambda: gateway.registry.instance("echo", victim_id) is None, max(0.5, ttl + 1.5 - (time.monotonic() - killed_at)),
             "the SIGKILLed instance to expire from the registry within its TTL")
