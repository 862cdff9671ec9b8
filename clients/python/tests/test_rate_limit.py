"""Gateway-wide rate limiting (`--rate-limit`) through a real gateway and a real FastAPI app."""

from __future__ import annotations


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
