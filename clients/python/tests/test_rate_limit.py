"""Gateway-wide rate limiting (`--rate-limit`) through a real gateway and a real FastAPI app."""

from __future__ import annotations


import json

from support import Procs, http, wait_for
from test_gateway import ECHO_APP, Gateway, gateway_available, start_gateway  # noqa: F401 - fixtures


def routable(gw: Gateway, procs: Procs) -> None:
    procs.uvicorn(ECHO_APP, "echo", env=gw.service_env())
    # Poll something that is not rate limited: the routing table.
    wait_for(lambda: any(r["service"] == "echo" for r in http().get(gw.url + "/_tapper/routes").json()["routes"]), 20, "the echo app's routes")


def test_over_the_limit_gets_429_with_retry_after_and_ratelimit_fields(procs: Procs, gateway_available: None) -> None:
    gw = start_gateway(procs, "--rate-limit", "5/s")
    routable(gw, procs)
    with http() as c:
        statuses = [c.get(gw.url + "/echo/x").status_code for _ in range(8)]
        assert statuses[:5] == [200] * 5 and statuses[5:] == [429] * 3, statuses
        r = c.get(gw.url + "/echo/x")
        assert r.status_code == 429
        assert r.json()["error"]["code"] == "rate_limited"
        assert r.headers["Retry-After"] == "1"
        assert r.headers["RateLimit-Policy"] == '"gateway";q=5;w=1'
        assert r.headers["RateLimit"] == '"gateway";r=0;t=1'
        # The gateway's own paths are never limited.
        assert c.get(gw.url + "/health").status_code in (200, 503)
        assert c.get(gw.url + "/_tapper/status").status_code == 200
        # Tokens come back at the rate: 5/s is one every 200 ms.
        wait_for(lambda: c.get(gw.url + "/echo/x").status_code == 200, 3, "a token to come back", interval=0.1)
    assert "status=429" in gw.proc.stdout


def test_limits_are_per_key(procs: Procs, gateway_available: None) -> None:
    gw = start_gateway(procs, "--rate-limit", "3/m", "--rate-limit-key", "header:X-Client")
    routable(gw, procs)
    with http() as c:
        a = [c.get(gw.url + "/echo/x", headers={"X-Client": "a"}).status_code for _ in range(4)]
        b = [c.get(gw.url + "/echo/x", headers={"X-Client": "b"}).status_code for _ in range(4)]
        assert a == [200, 200, 200, 429] and b == [200, 200, 200, 429], (a, b)
        r = c.get(gw.url + "/echo/x", headers={"X-Client": "a"})
        assert r.headers["RateLimit-Policy"] == '"gateway";q=3;w=60' and r.headers["Retry-After"] == "20"
        # Without the header, the client's address is the key (nobody escapes by leaving it out).
        anon = [c.get(gw.url + "/echo/x").status_code for _ in range(4)]
        assert anon == [200, 200, 200, 429], anon


def test_a_bad_limit_is_refused_at_start(procs: Procs, gateway_available: None) -> None:
    import subprocess

    from support import TAPPER_BIN, clean_env

    for args, needle in ((["--rate-limit", "fast"], "--rate-limit"), (["--rate-limit", "5/s", "--rate-limit-key", "cookie"], "--rate-limit-key")):
        out = subprocess.run([str(TAPPER_BIN), "gateway", "serve", "--port", "0", *args], capture_output=True, text=True, timeout=30, env=clean_env())
        assert out.returncode != 0 and needle in out.stderr, out.stderr


LIMITED_APP = """\
from fastapi import FastAPI
from tapper import Service

app = Service(name="shop", version="1.0.0", ttl=5, rate_limit="4/m")(FastAPI())


@app.get("/search", openapi_extra={"x-tapper-rate-limit": "2/m"})
async def search():
    return {"ok": "search"}


@app.get("/items")
async def items():
    return {"ok": "items"}
"""


def test_service_and_route_limits_from_the_registration(procs: Procs, gateway_available: None) -> None:
    gw = start_gateway(procs)
    procs.uvicorn(LIMITED_APP, "shop", env=gw.service_env())
    wait_for(lambda: len([r for r in http().get(gw.url + "/_tapper/routes").json()["routes"] if r["service"] == "shop"]) == 2, 20, "the shop's routes")
    record = gw.registry.instances("shop")[0]
    assert record["rate_limit"] == "4/m"
    assert {r["path"]: r.get("rate_limit") for r in record["routes"]} == {"/search": "2/m", "/items": None}
    with http() as c:
        search = [c.get(gw.url + "/search") for _ in range(3)]
        assert [r.status_code for r in search] == [200, 200, 429], [r.text for r in search]
        refused = search[2]
        assert refused.headers["RateLimit-Policy"] == '"route";q=2;w=60', refused.headers
        assert "GET /search" in refused.json()["error"]["message"]
        # The service's 4/m covers every route: three searches took three, one item is left.
        items = [c.get(gw.url + "/items") for _ in range(2)]
        assert [r.status_code for r in items] == [200, 429], [r.text for r in items]
        assert items[1].headers["RateLimit-Policy"] == '"service";q=4;w=60'
        assert "service 'shop'" in items[1].json()["error"]["message"]
        # Another client (by --rate-limit-key: the address; here, a header key is not set) shares
        # the address 127.0.0.1, so it is refused too; the gateway's own paths never are.
        assert c.get(gw.url + "/_tapper/status").status_code == 200


def test_the_cli_sets_service_and_route_limits(procs: Procs, gateway_available: None) -> None:
    import subprocess

    from support import TAPPER_BIN, clean_env

    gw = start_gateway(procs, "--rate-limit-key", "header:X-Client")
    app = procs.uvicorn(LIMITED_APP.replace(', rate_limit="4/m"', "").replace("Service(name=\"shop\"", "Service(name=\"other\""), "other", env=gw.service_env())
    env = clean_env(TAPPER_REGISTRY_URL=gw.registry_url)
    reg = subprocess.run(
        [str(TAPPER_BIN), "service", "register", "cli-shop", "--url", f"http://127.0.0.1:{app.port}", "--prefix", "/cli",
         "--rate-limit", "100/s", "--route", "GET /search 1/m", "--route", "GET /items", "--ttl", "60", "--json"],
        capture_output=True, text=True, timeout=30, env=env,
    )
    assert reg.returncode == 0, reg.stderr
    stored = json.loads(reg.stdout)
    assert stored["rate_limit"] == "100/s" and {r["path"]: r.get("rate_limit") for r in stored["routes"]} == {"/search": "1/m", "/items": None}
    wait_for(lambda: http().get(gw.url + "/cli/items", headers={"X-Client": "warm"}).status_code == 200, 20, "the CLI-registered routes")
    with http() as c:
        assert [c.get(gw.url + "/cli/search", headers={"X-Client": "a"}).status_code for _ in range(2)] == [200, 429]
        assert c.get(gw.url + "/cli/search", headers={"X-Client": "b"}).status_code == 200, "keyed by the header"
    for args, needle in ((["--rate-limit", "fast"], "--rate-limit"), (["--route", "GET /x often"], "--route")):
        bad = subprocess.run(
            [str(TAPPER_BIN), "service", "register", "bad", "--url", "http://127.0.0.1:1", *args], capture_output=True, text=True, timeout=30, env=env
        )
        assert bad.returncode != 0 and needle in bad.stderr, bad.stderr
