"""TapperGateway (the Python gateway) under real uvicorn, against a real `tapper registry serve`."""

from __future__ import annotations

import signal
import time
from typing import Dict, List, Optional

from support import (
    QUICKSTART,
    README_GATEWAY,
    Abort,
    Proc,
    Procs,
    Registry,
    clean_env,
    free_port,
    http,
    wait_for,
)

ECHO_APP = """\
import os

from fastapi import FastAPI, Request
from fastapi.responses import StreamingResponse
from tapper import Service

app = Service(name="echo", version="1.0.0", prefix="/api", ttl=TTL)(FastAPI())


@app.post("/echo")
async def echo(request: Request):
    body = await request.body()

    async def chunks():
        for i in range(0, len(body), 65536):
            yield body[i:i + 65536]

    return StreamingResponse(chunks(), media_type="application/octet-stream",
                             headers={"x-seen-length": str(len(body)), "connection": "x-private", "x-private": "1"})


@app.get("/whoami/{rest:path}")
async def whoami(rest: str, request: Request):
    return {
        "pid": os.getpid(), "rest": rest,
        "raw_path": request.scope.get("raw_path", b"").decode("latin-1"),
        "query_string": request.scope["query_string"].decode("latin-1"),
        "headers": {k.decode("latin-1"): v.decode("latin-1") for k, v in request.scope["headers"]},
    }


@app.get("/fail")
async def fail():
    from fastapi import HTTPException
    raise HTTPException(500, "boom")
"""


def echo_app(ttl: float = 3) -> str:
    return ECHO_APP.replace("TTL", repr(ttl))


GATEWAY_WITH_POLICY = """\
from fastapi import FastAPI
from tapper import LoadBalancer, TapperGateway


class CustomBalancer(LoadBalancer):
    # Always the instance with the greatest id: deterministic, so the test can tell it was used.
    def select_instance(self, instances):
        return max(instances, key=lambda i: i.instance_id)


class YourAuthProvider:
    async def authenticate(self, request):
        key = request.headers.get("x-api-key")
        if key == "k-1":
            return "ci-bot"
        return False


app = FastAPI()
gateway = TapperGateway(load_balancer=CustomBalancer(), auth_provider=YourAuthProvider(), health_interval=0)
app.mount("/", gateway)
"""


def start_py_gateway(procs: Procs, source: str, registry: Registry, module: str = "gateway", env_name: str = "TAPPER_REGISTRY_URL") -> Proc:
    gw = procs.uvicorn(source, "py-gateway", module=module, env=clean_env(**{env_name: registry.url}))

    def up() -> bool:
        if not gw.alive():
            raise Abort(f"the Python gateway exited\n{gw.describe()}")
        with http() as c:
            return c.get(f"http://127.0.0.1:{gw.port}/health").status_code == 200

    wait_for(up, 20, "the Python gateway to answer /health")
    return gw


def wait_routable(url: str, timeout: float = 15, headers: Optional[Dict[str, str]] = None) -> None:
    def ok() -> bool:
        with http() as c:
            return c.get(url, headers=headers).status_code == 200

    wait_for(ok, timeout, f"GET {url} to answer 200")


def test_readme_gateway_py_runs_as_printed(procs: Procs, registry: Registry) -> None:
    assert "TapperGateway()" in README_GATEWAY and 'app.mount("/", gateway)' in README_GATEWAY
    app = procs.uvicorn(QUICKSTART, "quickstart", env=clean_env(TAPPER_REGISTRY_URL=registry.url))
    registry.wait_instance("user-service", f"127.0.0.1-{app.port}")
    # The original README's misspelt variable is honoured.
    gw = start_py_gateway(procs, README_GATEWAY, registry, env_name="TAPER_REGISTRY_URL")
    base = f"http://127.0.0.1:{gw.port}"
    wait_routable(base + "/users/1")
    with http() as c:
        r = c.get(base + "/users/1")
        assert r.json() == {"user_id": 1, "name": "Jane Doe"}
        assert r.headers["x-tapper-instance"] == f"127.0.0.1-{app.port}"
        assert r.headers.get("x-request-id")
        r = c.post(base + "/users/", json={"name": "Ann", "roles": ["admin"]})
        assert r.status_code == 200 and r.json() == {"name": "Ann", "roles": ["admin"]}
        r = c.get(base + "/nowhere")
        assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
        r = c.delete(base + "/users/1")
        assert r.status_code == 405 and r.headers["allow"] == "GET, HEAD"
        # The template is /users/{user_id}: FastAPI itself refuses a non-int, and its 422 passes through.
        assert c.get(base + "/users/abc").status_code == 422
        assert c.get(base + "/users/..%2F1").status_code == 400
        status = c.get(base + "/_tapper/status").json()
        inst = status["services"]["user-service"]["instances"]
        assert [i["instance_id"] for i in inst] == [f"127.0.0.1-{app.port}"] and inst[0]["healthy"] is True
        assert c.get(base + "/health").json()["status"] == "healthy"

    # The watch delivers a deregistration: no route, then 404 from the gateway itself.
    app.signal(signal.SIGTERM)
    app.wait_exit(15)

    def gone() -> bool:
        with http() as c:
            return c.get(base + "/users/1").status_code == 404

    wait_for(gone, 5, "the deregistered service to leave the Python gateway's table")


def test_bodies_headers_and_errors_through_the_python_gateway(procs: Procs, registry: Registry) -> None:
    app = procs.uvicorn(echo_app(), "echo", env=clean_env(TAPPER_REGISTRY_URL=registry.url))
    registry.wait_instance("echo", f"127.0.0.1-{app.port}")
    gw = start_py_gateway(procs, README_GATEWAY, registry)
    base = f"http://127.0.0.1:{gw.port}"
    wait_routable(base + "/api/whoami/x")
    with http() as c:
        big = bytes(range(256)) * 8192  # 2 MiB, streamed both ways
        r = c.post(base + "/api/echo", content=big, headers={"content-type": "application/octet-stream"})
        assert r.status_code == 200
        assert r.content == big and r.headers["x-seen-length"] == str(len(big))
        assert "x-private" not in r.headers  # named by the upstream's Connection header: hop-by-hop

        def chunked():
            for _ in range(10):
                yield b"z" * 1000

        r = c.post(base + "/api/echo", content=chunked())
        assert r.status_code == 200 and r.content == b"z" * 10_000

        r = c.get(base + "/api/whoami/caf%C3%A9/x%20y?a=%2F&b=1&b=2",
                  # (No client X-Forwarded-For/-Proto here: uvicorn's --proxy-headers, on by default, believes
                  # it from 127.0.0.1 and rewrites the client address before the gateway sees it.)
                  headers={"X-Forwarded-Host": "evil.example", "X-Tapper-Subject": "root", "Connection": "keep-alive, x-drop",
                           "x-drop": "1", "X-Request-ID": "rid-42", "traceparent": "00-abc-def-01"})
        assert r.status_code == 200
        got = r.json()
        assert got["raw_path"] == "/whoami/caf%C3%A9/x%20y"  # prefix removed, bytes unchanged
        assert got["rest"] == "café/x y"
        assert got["query_string"] == "a=%2F&b=1&b=2"
        seen = got["headers"]
        assert seen["x-forwarded-for"] == "127.0.0.1"
        assert seen["x-forwarded-proto"] == "http"
        assert seen["x-forwarded-host"] == f"127.0.0.1:{gw.port}"
        assert seen["x-request-id"] == "rid-42" and r.headers["x-request-id"] == "rid-42"
        assert seen["traceparent"] == "00-abc-def-01"
        assert "x-tapper-subject" not in seen and "x-drop" not in seen
        r = c.get(base + "/api/fail")
        assert r.status_code == 500  # an upstream's own error passes through

    # No instance left: the route stays in the table while the registry keeps the record, so kill
    # the instance and check the gateway's 502 until the record expires.
    app.kill()
    with http() as c:
        r = c.get(base + "/api/whoami/x")
        assert r.status_code == 502 and r.json()["error"]["code"] == "upstream_unavailable"


def test_custom_balancer_and_auth_provider(procs: Procs, registry: Registry) -> None:
    apps = [procs.uvicorn(echo_app(), f"echo-{i}", module="echo_app", env=clean_env(TAPPER_REGISTRY_URL=registry.url)) for i in range(3)]
    ids = [f"127.0.0.1-{a.port}" for a in apps]
    for i in ids:
        registry.wait_instance("echo", i)
    gw = start_py_gateway(procs, GATEWAY_WITH_POLICY, registry, module="policy_gateway")
    base = f"http://127.0.0.1:{gw.port}"
    key = {"X-API-Key": "k-1"}

    def all_three() -> bool:
        with http() as c:
            r = c.get(base + "/_tapper/status").json()
            return len(r["services"].get("echo", {}).get("instances", [])) == 3

    wait_for(all_three, 15, "all three instances in the Python gateway's table")
    with http() as c:
        r = c.get(base + "/api/whoami/x")
        assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Bearer")
        assert c.get(base + "/api/whoami/x", headers={"X-API-Key": "wrong"}).status_code == 401
        served = set()
        for _ in range(12):
            r = c.get(base + "/api/whoami/x", headers={**key, "X-Tapper-Subject": "root"})
            assert r.status_code == 200
            served.add(r.headers["x-tapper-instance"])
            assert r.json()["headers"]["x-tapper-subject"] == "ci-bot"
        assert served == {max(ids)}, served  # the custom balancer picked every time
        # The gateway's own endpoints need no credentials.
        assert c.get(base + "/health").status_code == 200


def test_sigkill_is_unroutable_at_once_and_gone_within_its_ttl(procs: Procs, registry: Registry) -> None:
    ttl = 4
    apps = [procs.uvicorn(echo_app(ttl), f"echo-{i}", module="echo_app", env=clean_env(TAPPER_REGISTRY_URL=registry.url)) for i in range(2)]
    for a in apps:
        registry.wait_instance("echo", f"127.0.0.1-{a.port}")
    gw = start_py_gateway(procs, README_GATEWAY, registry)
    base = f"http://127.0.0.1:{gw.port}"
    victim, survivor = apps
    victim_id = f"127.0.0.1-{victim.port}"

    def both_serving() -> bool:
        with http() as c:
            seen = {c.get(base + "/api/whoami/x").headers.get("x-tapper-instance") for _ in range(6)}
        return seen == {victim_id, f"127.0.0.1-{survivor.port}"}

    wait_for(both_serving, 15, "both instances to serve through the Python gateway")
    victim.kill()  # SIGKILL: no deregistration
    killed_at = time.monotonic()
    failures: List[str] = []
    with http() as c:
        # Connection refused is retried on the other instance, so no request fails; after
        # --outlier-failures (5) the dead instance is ejected, long before its TTL runs out.
        for _ in range(20):
            r = c.get(base + "/api/whoami/x")
            if r.status_code != 200:
                failures.append(f"{r.status_code} {r.text[:200]}")
        status = c.get(base + "/_tapper/status").json()
    ejected_after = time.monotonic() - killed_at
    assert failures == []
    row = {i["instance_id"]: i for i in status["services"]["echo"]["instances"]}[victim_id]
    assert row["ejected"] is True and row["healthy"] is False, row
    assert ejected_after < ttl, f"passive health took {ejected_after:.1f}s, no faster than the {ttl}s TTL"
    # The registry drops the silent instance within its TTL (plus the sweeper's tick).
    wait_for(lambda: registry.instance("echo", victim_id) is None, max(0.5, ttl + 1.5 - (time.monotonic() - killed_at)),
             "the SIGKILLed instance to expire from the registry")
    assert time.monotonic() - killed_at <= ttl + 1.5


FLAKY_APP = """\
import asyncio

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from tapper import Service

app = Service(name="flaky", version="1.0.0", ttl=30)(FastAPI())
state = {"healthy": True}


@app.get("/health")
async def health():
    return JSONResponse({"healthy": state["healthy"]}, status_code=200 if state["healthy"] else 503)


@app.post("/toggle")
async def toggle():
    state["healthy"] = not state["healthy"]
    return state


@app.get("/slow")
async def slow():
    await asyncio.sleep(3)
    return {"slow": True}


@app.get("/fast")
async def fast():
    return {"fast": True}
"""

STRICT_GATEWAY = """\
from fastapi import FastAPI
from tapper import TapperGateway

app = FastAPI()
app.mount("/", TapperGateway(timeout=1, health_interval=0.2))
"""


def test_timeouts_give_504_and_failed_health_checks_503(procs: Procs, registry: Registry) -> None:
    app = procs.uvicorn(FLAKY_APP, "flaky", env=clean_env(TAPPER_REGISTRY_URL=registry.url))
    registry.wait_instance("flaky", f"127.0.0.1-{app.port}")
    gw = start_py_gateway(procs, STRICT_GATEWAY, registry, module="strict_gateway")
    base = f"http://127.0.0.1:{gw.port}"
    wait_routable(base + "/fast")
    with http() as c:
        started = time.monotonic()
        r = c.get(base + "/slow")
        assert r.status_code == 504 and r.json()["error"]["code"] == "upstream_timeout"
        assert time.monotonic() - started < 2.5  # the gateway's 1 s timeout, not the handler's 3 s
        c.post(f"http://127.0.0.1:{app.port}/toggle")  # its /health now answers 503

        def unavailable() -> bool:
            r = c.get(base + "/fast")
            return r.status_code == 503 and r.headers.get("retry-after") == "1" and r.json()["error"]["code"] == "no_healthy_instance"

        wait_for(unavailable, 10, "three failed health checks to take the only instance out (503)")
        assert c.get(base + "/health").json()["status"] == "degraded"
        c.post(f"http://127.0.0.1:{app.port}/toggle")
        wait_routable(base + "/fast", timeout=10)  # two good checks bring it back


WEIGHTED_APP = """\
import os

from fastapi import FastAPI
from tapper import Service

app = Service(name="weighted", version="1.0.0", weight=int(os.environ["WEIGHT"]))(FastAPI())


@app.get("/w")
async def w():
    return {"weight": int(os.environ["WEIGHT"])}
"""

# The gateway as the ASGI app itself (no FastAPI around it): uvicorn's lifespan starts it.
DIRECT_GATEWAY = """\
from tapper import TapperGateway

app = TapperGateway(load_balancer="weighted", health_interval=0)
"""


def test_the_gateway_as_the_asgi_app_with_the_weighted_balancer(procs: Procs, registry: Registry) -> None:
    heavy = procs.uvicorn(WEIGHTED_APP, "heavy", module="weighted_app", env=clean_env(TAPPER_REGISTRY_URL=registry.url, WEIGHT="3"))
    light = procs.uvicorn(WEIGHTED_APP, "light", module="weighted_app", env=clean_env(TAPPER_REGISTRY_URL=registry.url, WEIGHT="1"))
    for a in (heavy, light):
        registry.wait_instance("weighted", f"127.0.0.1-{a.port}")
    gw = start_py_gateway(procs, DIRECT_GATEWAY, registry, module="direct_gateway")
    base = f"http://127.0.0.1:{gw.port}"

    def both_known() -> bool:
        with http() as c:
            return len(c.get(base + "/_tapper/status").json()["services"].get("weighted", {}).get("instances", [])) == 2

    wait_for(both_known, 15, "both instances in the gateway's table")
    counts: Dict[int, int] = {3: 0, 1: 0}
    with http() as c:
        for _ in range(40):
            r = c.get(base + "/w")
            assert r.status_code == 200
            counts[r.json()["weight"]] += 1
    # Smooth weighted round-robin is exact over whole cycles: 3 to 1.
    assert counts == {3: 30, 1: 10}, counts
