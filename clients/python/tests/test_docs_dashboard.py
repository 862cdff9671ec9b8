"""The gateway's face (#21) end to end: two real FastAPI apps under uvicorn behind a real
`tapper gateway serve`; the merged /openapi.json, Swagger UI at /docs and the live dashboard in
headless Chromium (Debian's package) over the DevTools protocol.

Screenshots go to $TAPPER_TEST_OUTPUT (default .build/test-output/); with
TAPPER_UPDATE_SCREENSHOTS=1 the dashboard's also replaces docs/dashboard.png (the README's).
"""

from __future__ import annotations

import os
import shutil
import signal
import time
from pathlib import Path
from typing import Any, Dict

import pytest

from cdp import Browser, chromium_path
from support import REPO, Procs, http, wait_for
from test_gateway import Gateway, gateway_available, start_gateway  # noqa: F401 - fixtures

OUTPUT = Path(os.environ.get("TAPPER_TEST_OUTPUT") or REPO / ".build" / "test-output")

USERS_APP = """\
from fastapi import FastAPI
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from tapper import Service

app = Service(name="users", version="1.4.0", description="User accounts", prefix="/api", ttl=5)(FastAPI(title="users"))
healthy = True


class Item(BaseModel):
    name: str
    email: str


@app.get("/users/{user_id}", response_model=Item)
async def get_user(user_id: int):
    return Item(name=f"user {user_id}", email=f"u{user_id}@example.com")


@app.post("/users", response_model=Item)
async def create_user(user: Item):
    return user


@app.post("/fail-health", include_in_schema=False)
async def fail_health():
    global healthy
    healthy = False
    return {"healthy": healthy}


@app.get("/health")
async def health():
    return JSONResponse({"status": "ok" if healthy else "failing"}, status_code=200 if healthy else 503)
"""

ORDERS_APP = """\
from fastapi import FastAPI, HTTPException
from pydantic import BaseModel
from tapper import Service

app = Service(name="orders", version="2.0.1", description="Orders and carts", ttl=5)(FastAPI(title="orders"))


class Item(BaseModel):
    sku: str
    quantity: int


@app.get("/orders", response_model=list[Item])
async def list_orders():
    return [Item(sku="tea", quantity=2)]


@app.get("/orders/{order_id}", response_model=Item)
async def get_order(order_id: int):
    if order_id == 0:
        raise HTTPException(status_code=500, detail="order 0 is broken")
    return Item(sku=f"sku-{order_id}", quantity=1)


@app.get("/health")
async def health():
    return {"status": "ok"}
"""


def start_apps(gw: Gateway, procs: Procs) -> Dict[str, Any]:
    users = procs.uvicorn(USERS_APP, "users", env=gw.service_env(), module="users_app")
    orders = procs.uvicorn(ORDERS_APP, "orders", env=gw.service_env(), module="orders_app")
    return {"users": users, "orders": orders}


def merged(gw: Gateway) -> Dict[str, Any]:
    r = http().get(gw.url + "/openapi.json")
    assert r.status_code == 200, r.text
    return r.json()


def routed(gw: Gateway, service: str) -> bool:
    routes = http().get(gw.url + "/_tapper/routes").json()["routes"]
    return any(r["service"] == service for r in routes)


def test_the_merged_document_of_two_fastapi_apps(procs: Procs, gateway_available: None) -> None:
    gw = start_gateway(procs)
    procs.uvicorn(USERS_APP, "users", env=gw.service_env(), module="users_app")
    wait_for(lambda: "/api/users/{user_id}" in merged(gw)["paths"], 20, "the users app's paths in /openapi.json")

    orders = procs.uvicorn(ORDERS_APP, "orders", env=gw.service_env(), module="orders_app")
    wait_for(lambda: routed(gw, "orders"), 20, "the orders app's routes in the gateway's table")
    seen_route = time.monotonic()
    wait_for(lambda: "/orders/{order_id}" in merged(gw)["paths"], 5, "the orders app's paths in /openapi.json")
    latency = time.monotonic() - seen_route
    assert latency < 1.0, f"the document took {latency:.2f}s after the registration"

    doc = merged(gw)
    assert doc["openapi"] == "3.1.0"
    assert doc["servers"] == [{"url": "/"}]
    paths = doc["paths"]
    assert set(paths) == {"/api/users/{user_id}", "/api/users", "/orders", "/orders/{order_id}"}, "no /health, no include_in_schema=False route"
    user_get = paths["/api/users/{user_id}"]["get"]
    assert user_get["operationId"].startswith("users_get_user")
    assert user_get["tags"] == ["users"]
    assert paths["/orders/{order_id}"]["get"]["tags"] == ["orders"]
    # Both apps call their model Item: two components, each operation pointing at its own.
    schemas = doc["components"]["schemas"]
    assert "users.Item" in schemas and "orders.Item" in schemas
    assert schemas["users.Item"]["properties"].keys() == {"name", "email"}
    assert user_get["responses"]["200"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/users.Item"}
    order_get = paths["/orders/{order_id}"]["get"]
    assert order_get["responses"]["200"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/orders.Item"}
    ids = [op["operationId"] for item in paths.values() for op in item.values()]
    assert len(ids) == len(set(ids))
    assert [t["name"] for t in doc["tags"]] == ["orders", "users"]
    assert "User accounts" in doc["tags"][1]["description"]

    # The paths in the document are the gateway's: calling them works.
    with http() as c:
        assert c.get(gw.url + "/api/users/7").json() == {"name": "user 7", "email": "u7@example.com"}
        assert c.get(gw.url + "/orders/3").json()["sku"] == "sku-3"

    # A service going away leaves the document (its instance deregisters on shutdown).
    orders.signal(signal.SIGTERM)
    orders.wait_exit(20)
    wait_for(lambda: "/orders" not in merged(gw)["paths"], 5, "the orders paths to leave /openapi.json")
    assert "orders.Item" not in merged(gw).get("components", {}).get("schemas", {})
    assert "/api/users/{user_id}" in merged(gw)["paths"]


def test_swagger_ui_renders_both_services_and_try_it_out_goes_through_the_gateway(procs: Procs, gateway_available: None, tmp_path: Path) -> None:
    chromium_path()
    gw = start_gateway(procs)
    start_apps(gw, procs)
    wait_for(lambda: {"/api/users/{user_id}", "/orders"} <= set(merged(gw)["paths"]), 30, "both apps in /openapi.json")
    browser = Browser(tmp_path / "chromium-profile")
    try:
        browser.navigate(gw.url + "/docs")
        wait_for(lambda: browser.evaluate("document.querySelectorAll('.opblock').length") == 4, 30,
                 "Swagger UI to render the four operations")
        text = browser.evaluate("document.body.innerText")
        for expected in ("/api/users/{user_id}", "/orders/{order_id}", "users", "orders", "User accounts"):
            assert expected in text, expected
        # Try it out on GET /orders: the request goes to the gateway (servers: "/") and gets 200.
        opened = browser.evaluate("""(() => {
            const op = document.querySelector('.opblock-get .opblock-summary-path[data-path="/orders"]')?.closest('.opblock');
            if (!op) return document.querySelector('.opblock-summary-path')?.outerHTML || 'no summary path';
            (op.querySelector('.opblock-summary-control') || op.querySelector('.opblock-summary')).click();
            return 'clicked'; })()""")
        assert opened == "clicked", opened
        wait_for(lambda: browser.evaluate("!!document.querySelector('.opblock.is-open .try-out__btn')"), 10, "the Try it out button")
        browser.evaluate("document.querySelector('.opblock.is-open .try-out__btn').click(), true")
        wait_for(lambda: browser.evaluate("!!document.querySelector('.opblock.is-open .execute')"), 10, "the Execute button")
        browser.evaluate("document.querySelector('.opblock.is-open .execute').click(), true")
        status = wait_for(lambda: browser.evaluate(
            "(document.querySelector('.opblock.is-open .live-responses-table tbody .response-col_status')?.innerText || '').trim()"), 15,
            "Try it out's response")
        assert status == "200"
        url = browser.evaluate("document.querySelector('.opblock.is-open .request-url pre')?.innerText.trim()")
        assert url == gw.url + "/orders", url
        body = browser.evaluate("document.querySelector('.opblock.is-open .live-responses-table tbody .response-col_description pre')?.innerText")
        assert "tea" in body
        browser.screenshot(OUTPUT / "docs.png")
    finally:
        browser.close()


def test_the_dashboard_shows_services_and_a_health_change_live(procs: Procs, gateway_available: None, tmp_path: Path) -> None:
    chromium_path()
    token_file = tmp_path / "admin-token"
    token_file.write_text("dash-secret\n")
    gw = start_gateway(procs, "--admin-token-file", str(token_file), "--health-interval", "0.2", "--health-fall", "2", "--health-timeout", "1")
    apps = start_apps(gw, procs)
    auth = {"Authorization": "Bearer dash-secret"}
    with http() as c:
        assert c.get(gw.url + "/_tapper/dashboard").status_code == 401
        wait_for(lambda: {s["name"] for s in c.get(gw.url + "/_tapper/status", headers=auth).json()["services"]} == {"users", "orders"}, 30,
                 "both apps registered")
        for i in range(1, 40):
            assert c.get(f"{gw.url}/api/users/{i}").status_code == 200
            assert c.get(f"{gw.url}/orders/{i}").status_code == 200
        assert c.get(gw.url + "/orders/0").status_code == 500
        assert c.get(gw.url + "/orders").status_code == 200
    browser = Browser(tmp_path / "chromium-profile")
    try:
        browser.set_headers(auth)
        browser.navigate(gw.url + "/_tapper/dashboard")
        wait_for(lambda: browser.evaluate("document.querySelectorAll('#services tr[data-service]').length") == 2, 15, "both services on the page")
        text = browser.evaluate("document.body.innerText")
        assert "users" in text and "orders" in text
        assert "GET /api/users/{user_id}" in text, "the traffic table"
        assert "/orders/0" in text, "the recent 5xx"
        users_state = "document.querySelector('#services tr[data-service=\"users\"] [data-state]')?.dataset.state"
        assert browser.evaluate(users_state) == "healthy"
        # The explain box: the gateway's /_tapper/explain, the same answer as `tapper route test`.
        browser.evaluate("document.getElementById('explain-path').value = '/api/users/42'; document.getElementById('explain-form').requestSubmit(); true")
        wait_for(lambda: browser.evaluate("document.getElementById('explain-result').dataset.service") == "users", 10, "the explain answer")
        assert "via /api/users/{user_id}" in browser.evaluate("document.getElementById('explain-result').innerText")
        browser.screenshot(OUTPUT / "dashboard.png")

        # The page is never reloaded: a marker set now must survive the health change.
        browser.evaluate("window.__noReload = 'still here'; true")
        updates_before = browser.evaluate("Number(document.body.dataset.updates)")
        assert http().post(f"http://127.0.0.1:{apps['users'].port}/fail-health").status_code == 200
        wait_for(lambda: browser.evaluate(users_state) == "unhealthy", 15, "the users instance to show as unhealthy on the page")
        assert browser.evaluate("window.__noReload") == "still here"
        assert browser.evaluate("Number(document.body.dataset.updates)") > updates_before
        assert "0/1 healthy" in browser.evaluate("document.querySelector('#services tr[data-service=\"users\"]').innerText")
        browser.screenshot(OUTPUT / "dashboard-unhealthy.png")
    finally:
        browser.close()
    if os.environ.get("TAPPER_UPDATE_SCREENSHOTS") == "1":
        shutil.copyfile(OUTPUT / "dashboard.png", REPO / "docs" / "dashboard.png")


def test_explain_matches_route_test(procs: Procs, gateway_available: None) -> None:
    """`/_tapper/explain` and `tapper route test --json` give the same answer."""
    import json
    import subprocess

    from support import TAPPER_BIN, clean_env

    gw = start_gateway(procs)
    start_apps(gw, procs)
    wait_for(lambda: routed(gw, "users") and routed(gw, "orders"), 30, "both apps routed")
    for method, path in [("GET", "/api/users/5"), ("DELETE", "/orders"), ("GET", "/nothing/here")]:
        explained = http().get(gw.url + "/_tapper/explain", params={"method": method, "path": path}).json()
        run = subprocess.run([str(TAPPER_BIN), "route", "test", method, path, "--json", "--registry", gw.registry_url, "--gateway", gw.url],
                             capture_output=True, text=True, env=clean_env(), timeout=30)
        assert json.loads(run.stdout) == explained, (method, path, run.stderr)
    bad = http().get(gw.url + "/_tapper/explain", params={"method": "GET"})
    assert bad.status_code == 400 and "path=" in bad.json()["error"]["message"]
