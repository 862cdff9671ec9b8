"""Version-aware routing through a real gateway: traffic_weight splits, pinning by header and
cookie, weight changes taking effect at once, and the split in `route test` and `/_tapper/status`."""

from __future__ import annotations

import json
import subprocess
import time
from collections import Counter
from typing import Dict, List

from support import TAPPER_BIN, Procs, clean_env, http, wait_for
from test_gateway import Gateway, gateway_available, start_gateway  # noqa: F401 - fixtures

SHOP_APP = """\
import os

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from tapper import Service

VERSION = os.environ["SHOP_VERSION"]
WEIGHT = os.environ.get("SHOP_TRAFFIC_WEIGHT")
app = Service(name="shop", version=VERSION, ttl=5, traffic_weight=float(WEIGHT) if WEIGHT else None)(FastAPI())
healthy = True


@app.get("/items/{item_id}")
async def item(item_id: str):
    return {"item": item_id, "version": VERSION}


@app.post("/fail-health", include_in_schema=False)
async def fail_health():
    global healthy
    healthy = False
    return {"healthy": healthy}


@app.get("/health")
async def health():
    return JSONResponse({"status": "healthy" if healthy else "failing"}, status_code=200 if healthy else 503)
"""


def start_shop(gw: Gateway, procs: Procs, version: str, n: int, traffic_weight: float | None = None) -> List[int]:
    ports = []
    for i in range(n):
        env = gw.service_env(SHOP_VERSION=version)
        if traffic_weight is not None:
            env["SHOP_TRAFFIC_WEIGHT"] = str(traffic_weight)
        proc = procs.uvicorn(SHOP_APP, f"shop-{version}-{i}", env=env, module="shop")
        ports.append(proc.port)
    return ports


def status_service(gw: Gateway, name: str) -> Dict:
    services = http().get(gw.url + "/_tapper/status").json()["services"]
    return next((s for s in services if s["name"] == name), {})


def traffic(gw: Gateway) -> Dict[str, float]:
    return {t["version"]: t["percent"] for t in status_service(gw, "shop").get("traffic", [])}


def versions_of(gw: Gateway, n: int, headers: Dict[str, str] | None = None) -> Counter:
    counts: Counter = Counter()
    with http() as c:
        for i in range(n):
            r = c.get(f"{gw.url}/items/{i}", headers=headers)
            assert r.status_code == 200, r.text
            counts[r.json()["version"]] += 1
    return counts


def wait_split(gw: Gateway, want: Dict[str, float], timeout: float = 20) -> None:
    wait_for(lambda: traffic(gw) == want, timeout, f"the gateway's traffic split to be {want} (it is {traffic(gw)})")


def test_a_canary_weight_splits_traffic_within_one_percent(procs: Procs, gateway_available: None) -> None:
    gw = start_gateway(procs)
    start_shop(gw, procs, "1.0.0", 2)
    start_shop(gw, procs, "2.0.0", 1, traffic_weight=10)
    wait_split(gw, {"1.0.0": 90.0, "2.0.0": 10.0})
    counts = versions_of(gw, 10_000)
    share = counts["2.0.0"] / 10_000
    print(f"\nsplit over 10,000 requests: {dict(counts)}")
    # The bar is ±1%; the smooth round-robin is exact per I/O thread.
    assert abs(share - 0.10) <= 0.01, counts
    assert counts["1.0.0"] + counts["2.0.0"] == 10_000


def test_weight_change_takes_effect_within_100_ms(procs: Procs, gateway_available: None) -> None:
    gw = start_gateway(procs)
    start_shop(gw, procs, "1.0.0", 1)
    start_shop(gw, procs, "2.0.0", 1, traffic_weight=10)
    wait_split(gw, {"1.0.0": 90.0, "2.0.0": 10.0})
    canary = next(i for i in gw.registry.instances("shop") if i["version"] == "2.0.0")
    body = {k: canary[k] for k in ("url", "version", "prefix", "health_endpoint", "tags", "routes", "ttl_seconds", "weight", "metadata")}
    took = []
    with http() as c:

        def split() -> Dict[str, float]:
            services = c.get(gw.url + "/_tapper/status").json()["services"]
            return {t["version"]: t["percent"] for s in services if s["name"] == "shop" for t in s.get("traffic", [])}

        # Three changes; the median is what is asserted (one can meet a busy moment of a shared machine).
        for weight in (50, 20, 50):
            body["traffic_weight"] = weight
            r = c.put(f"{gw.registry_url}/v1/services/shop/instances/{canary['instance_id']}", json=body)
            assert r.status_code == 200, r.text
            changed = time.monotonic()
            wait_for(lambda: split().get("2.0.0") == float(weight), 2, f"the new weight {weight}", interval=0.002)
            took.append(time.monotonic() - changed)
    took.sort()
    print(f"\nweight changes reached the gateway in {', '.join(f'{t * 1000:.1f}' for t in took)} ms")
    assert took[1] < 0.1, f"weight changes took {[round(t * 1000) for t in took]} ms to reach the gateway"
    counts = versions_of(gw, 2_000)
    assert abs(counts["2.0.0"] - 1_000) <= 20, counts


def test_pinning_by_header_and_cookie(procs: Procs, gateway_available: None) -> None:
    gw = start_gateway(procs, "--health-interval", "0.2", "--health-fall", "1")
    start_shop(gw, procs, "1.0.0", 1)
    (canary_port,) = start_shop(gw, procs, "2.0.0", 1, traffic_weight=5)
    wait_split(gw, {"1.0.0": 95.0, "2.0.0": 5.0})
    assert versions_of(gw, 40, {"X-Tapper-Version": "2.0.0"}) == Counter({"2.0.0": 40})
    assert versions_of(gw, 40, {"x-tapper-version": "1.0.0"}) == Counter({"1.0.0": 40})
    assert versions_of(gw, 40, {"Cookie": "theme=dark; tapper-version=2.0.0"}) == Counter({"2.0.0": 40})
    # A cookie naming a version that is gone falls back to the split; a header does not.
    assert sum(versions_of(gw, 40, {"Cookie": "tapper-version=9.9.9"}).values()) == 40
    with http() as c:
        r = c.get(gw.url + "/items/1", headers={"X-Tapper-Version": "9.9.9"})
        assert r.status_code == 503 and r.headers["Retry-After"] == "1"
        err = r.json()["error"]
        assert err["code"] == "version_unavailable" and "9.9.9" in err["message"] and "shop" in err["message"], err
        # The canary's health fails: the split follows the routable instances, pins to it get 503.
        assert c.post(f"http://127.0.0.1:{canary_port}/fail-health").status_code == 200
    wait_for(lambda: "traffic" not in status_service(gw, "shop") and status_service(gw, "shop").get("healthy") == 1, 15, "the canary to go down")
    assert versions_of(gw, 50) == Counter({"1.0.0": 50})
    with http() as c:
        assert c.get(gw.url + "/items/1", headers={"X-Tapper-Version": "2.0.0"}).status_code == 503


def test_pinning_header_and_cookie_names_are_configurable(procs: Procs, gateway_available: None) -> None:
    gw = start_gateway(procs, "--version-header", "X-Release", "--version-cookie", "")
    start_shop(gw, procs, "1.0.0", 1)
    start_shop(gw, procs, "2.0.0", 1, traffic_weight=0)
    wait_split(gw, {"1.0.0": 100.0, "2.0.0": 0.0})
    assert versions_of(gw, 30) == Counter({"1.0.0": 30}), "a version at 0% gets no unpinned traffic"
    assert versions_of(gw, 10, {"X-Release": "2.0.0"}) == Counter({"2.0.0": 10}), "but can still be reached by pinning"
    assert versions_of(gw, 10, {"X-Tapper-Version": "2.0.0"}) == Counter({"1.0.0": 10}), "the default header is off"
    assert versions_of(gw, 10, {"Cookie": "tapper-version=2.0.0"}) == Counter({"1.0.0": 10}), "the cookie is off"
    bad = subprocess.run(
        [str(TAPPER_BIN), "gateway", "serve", "--port", "0", "--version-header", "X Release"], capture_output=True, text=True, timeout=30, env=clean_env()
    )
    assert bad.returncode != 0 and "--version-header" in bad.stderr, bad.stderr


def test_route_test_prints_the_split_and_the_cli_sets_traffic_weight(procs: Procs, gateway_available: None) -> None:
    gw = start_gateway(procs)
    start_shop(gw, procs, "1.0.0", 2)
    (port,) = start_shop(gw, procs, "2.0.0", 1)
    wait_for(lambda: len(gw.registry.instances("shop")) == 3, 20, "three shop instances")
    # Re-register the 2.0.0 instance from the CLI with a weight (same URL: same instance id).
    env = clean_env(TAPPER_REGISTRY_URL=gw.registry_url)
    reg = subprocess.run(
        [str(TAPPER_BIN), "service", "register", "shop", "--url", f"http://127.0.0.1:{port}", "--version", "2.0.0", "--instance-id",
         next(i["instance_id"] for i in gw.registry.instances("shop") if i["version"] == "2.0.0"),
         "--route", "GET /items/{item_id}", "--traffic-weight", "25", "--ttl", "60", "--json"],
        capture_output=True, text=True, timeout=30, env=env,
    )
    assert reg.returncode == 0, reg.stderr
    assert json.loads(reg.stdout)["traffic_weight"] == 25, reg.stdout
    wait_split(gw, {"1.0.0": 75.0, "2.0.0": 25.0})
    args = [str(TAPPER_BIN), "route", "test", "GET", "/items/7", "--registry", gw.registry_url, "--gateway", gw.url]
    report = json.loads(subprocess.run([*args, "--json"], capture_output=True, text=True, timeout=30, env=clean_env()).stdout)
    assert report["traffic"] == [
        {"version": "1.0.0", "percent": 75.0, "instances": 2, "weighted": False},
        {"version": "2.0.0", "percent": 25.0, "instances": 1, "weighted": True},
    ], report
    human = subprocess.run(args, capture_output=True, text=True, timeout=30, env=clean_env())
    assert "traffic split: 1.0.0 75% (2 instances), 2.0.0 25% (1 instance, traffic_weight)" in human.stdout, human.stdout
    bad = subprocess.run(
        [str(TAPPER_BIN), "service", "register", "shop", "--url", "http://127.0.0.1:1", "--traffic-weight", "150"],
        capture_output=True, text=True, timeout=30, env=env,
    )
    assert bad.returncode != 0 and "--traffic-weight" in bad.stderr, bad.stderr
    with http() as c:
        r = c.put(f"{gw.registry_url}/v1/services/shop/instances/x", json={"url": "http://127.0.0.1:1", "traffic_weight": -3})
        assert r.status_code == 400 and r.json()["error"]["field"] == "traffic_weight", r.text


def test_python_service_rejects_a_bad_traffic_weight() -> None:
    import pytest

    from tapper import Service

    for bad in (-1, 101, float("nan"), True, "10"):
        with pytest.raises(ValueError, match="traffic_weight"):
            Service(name="shop", traffic_weight=bad)  # type: ignore[arg-type]
    assert Service(name="shop", traffic_weight=12.5).traffic_weight == 12.5
