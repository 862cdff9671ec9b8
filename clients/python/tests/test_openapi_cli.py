"""`tapper service register NAME --url URL --openapi`: any OpenAPI 3.x service, here a plain FastAPI
app without the tapper package, registered from its /openapi.json by the Swift CLI."""

from __future__ import annotations

import subprocess

from support import TAPPER_BIN, Procs, Registry, clean_env, get_json, wait_http_ok

PLAIN_APP = '''\
from fastapi import APIRouter, FastAPI

app = FastAPI()
items = APIRouter(prefix="/items")

@items.get("/{item_id}")
async def get_item(item_id: int):
    return {"item_id": item_id}

@items.put("/{item_id}")
async def put_item(item_id: int, body: dict):
    return body

@items.delete("/{item_id}")
async def delete_item(item_id: int):
    return {}

@app.post("/orders/")
async def create_order(order: dict):
    return order

@app.get("/health", include_in_schema=True)
async def health():
    return {"ok": True}

app.include_router(items)
'''


def test_openapi_registration_of_a_plain_fastapi_app(procs: Procs, registry: Registry) -> None:
    app = procs.uvicorn(PLAIN_APP, "plain", env=clean_env())
    url = f"http://127.0.0.1:{app.port}"
    wait_http_ok(url + "/openapi.json")
    r = subprocess.run(
        [str(TAPPER_BIN), "service", "register", "catalog", "--url", url, "--openapi", "--registry", registry.url],
        capture_output=True, text=True, timeout=60,
    )
    assert r.returncode == 0, r.stderr
    assert "with 2 routes" in r.stdout, r.stdout
    record = registry.wait_instance("catalog", f"127.0.0.1-{app.port}")
    routes = sorted(record["routes"], key=lambda x: x["path"])
    # Every operation's method and path; the health endpoint stays per-instance.
    assert routes == [
        {"methods": ["DELETE", "GET", "PUT"], "path": "/items/{item_id}"},
        {"methods": ["POST"], "path": "/orders/"},
    ]
    assert get_json(url + "/items/3") == {"item_id": 3}


def test_openapi_registration_fails_clearly_without_a_document(procs: Procs, registry: Registry) -> None:
    app = procs.uvicorn(PLAIN_APP, "plain", env=clean_env())
    wait_http_ok(f"http://127.0.0.1:{app.port}/openapi.json")
    r = subprocess.run(
        [str(TAPPER_BIN), "service", "register", "catalog", "--url", f"http://127.0.0.1:{app.port}", "--openapi",
         "--openapi-path", "/nope.json", "--registry", registry.url],
        capture_output=True, text=True, timeout=60,
    )
    assert r.returncode != 0
    assert "404" in r.stderr and "--openapi-path" in r.stderr, r.stderr
