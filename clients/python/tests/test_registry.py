"""@Service against a real `tapper registry serve` and real uvicorn processes."""

from __future__ import annotations

import signal

from support import (
    QUICKSTART,
    Procs,
    Registry,
    clean_env,
    count_lines,
    free_port,
    get_json,
    http,
    wait_for,
    wait_http_ok,
)

ORDERS_APP = """\
from contextlib import asynccontextmanager

from fastapi import APIRouter, FastAPI, Request
from tapper import Service


@asynccontextmanager
async def lifespan(app):
    app.state.x = "set-by-lifespan"
    yield {"from_state": "lifespan-state"}


app = Service(name="orders", version="2.0.0", prefix="/api", tags=["shop", "v2"], ttl=3)(FastAPI(lifespan=lifespan))

router = APIRouter(prefix="/orders")


@router.get("/{order_id:int}")
async def get_order(order_id: int):
    return {"order_id": order_id}


@router.delete("/{id:int}")
async def delete_order(id: int):
    return {"deleted": id}


@router.post("/")
async def create_order():
    return {"created": True}


app.include_router(router)


@app.get("/state")
async def state(request: Request):
    return {"x": request.app.state.x, "from_state": request.state.from_state}


@app.get("/health")
async def health():
    return {"status": "custom"}


@app.get("/hidden", include_in_schema=False)
async def hidden():
    return {}


@app.api_route("/multi", methods=["GET", "PUT"])
async def multi():
    return {}


@app.get("/files/{rest:path}")
async def files(rest: str):
    return {"rest": rest}
"""

INVENTORY_APP = """\
import warnings

from fastapi import FastAPI
from tapper import Service

app = FastAPI()
Service(name="inventory", ttl=3).attach(app)

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)

    @app.on_event("startup")
    async def on_startup():
        app.state.started_by_on_event = True


@Service(name="inventory", ttl=3)
@app.get("/items/{item_id}")
async def get_item(item_id: str):
    return {"item_id": item_id}


@Service(name="inventory", ttl=3)
@app.post("/items")
async def add_item():
    return {"ok": True}


@app.get("/started")
async def started():
    return {"on_event": getattr(app.state, "started_by_on_event", False)}
"""

SMALL_APP = """\
from fastapi import FastAPI
from tapper import Service

app = Service(name="{name}", ttl={ttl})(FastAPI())


@app.get("/ping")
async def ping():
    return {{"pong": True}}
"""


def small_app(name: str, ttl: float = 3) -> str:
    return SMALL_APP.format(name=name, ttl=ttl)


def test_quickstart_registers_its_route(procs: Procs, registry: Registry) -> None:
    app = procs.uvicorn(QUICKSTART, "quickstart", env=clean_env(TAPPER_REGISTRY_URL=registry.url))
    record = registry.wait_instance("user-service", f"127.0.0.1-{app.port}")

    assert record["url"] == f"http://127.0.0.1:{app.port}"
    assert sorted(record["routes"], key=lambda r: r["path"]) == [
        {"methods": ["POST"], "path": "/users/"},
        {"methods": ["GET"], "path": "/users/{user_id}"},
    ]
    assert record["version"] == "1.0.0"
    assert record["description"] == "User management service"
    assert record["health_endpoint"] == "/health"
    assert record["prefix"] == ""
    assert record["ttl_seconds"] == 30

    base = f"http://127.0.0.1:{app.port}"
    assert get_json(base + "/users/1") == {"user_id": 1, "name": "Jane Doe"}
    # The auto-added health endpoint answers but is not part of the public schema.
    assert get_json(base + "/health") == {"status": "healthy"}
    assert "/health" not in get_json(base + "/openapi.json")["paths"]
    # One clear line says where the URL came from.
    wait_for(lambda: "inferred from the uvicorn socket on 127.0.0.1:%d" % app.port in app.stderr, 5, "the inference log line")


def test_schema_routes_prefix_tags_and_app_lifespan(procs: Procs, registry: Registry) -> None:
    app = procs.uvicorn(ORDERS_APP, "orders", env=clean_env(TAPPER_REGISTRY_URL=registry.url))
    record = registry.wait_instance("orders", f"127.0.0.1-{app.port}")

    routes = sorted((r["path"], tuple(r["methods"])) for r in record["routes"])
    assert routes == [
        ("/files/{rest:path}", ("GET",)),
        ("/multi", ("GET", "PUT")),
        ("/orders/", ("POST",)),
        ("/orders/{order_id:int}", ("DELETE", "GET")),  # same template, merged across parameter names
        ("/state", ("GET",)),
    ]
    paths = {p for p, _ in routes}
    assert not paths & {"/docs", "/redoc", "/openapi.json", "/docs/oauth2-redirect", "/health", "/hidden"}
    assert record["prefix"] == "/api"
    assert record["tags"] == ["shop", "v2"]
    assert record["version"] == "2.0.0"
    assert record["ttl_seconds"] == 3

    base = f"http://127.0.0.1:{app.port}"
    # The app's own lifespan ran (and its state reached requests); its own /health was kept.
    assert get_json(base + "/state") == {"x": "set-by-lifespan", "from_state": "lifespan-state"}
    assert get_json(base + "/health") == {"status": "custom"}


def test_attach_on_event_and_repeated_decorators_register_once(procs: Procs, registry: Registry) -> None:
    # --port 0: the URL can only come from the socket uvicorn bound.
    app = procs.uvicorn(INVENTORY_APP, "inventory", port=0, env=clean_env(TAPPER_REGISTRY_URL=registry.url))
    record = registry.wait_instance("inventory")
    url = record["url"]
    assert url.startswith("http://127.0.0.1:") and url != "http://127.0.0.1:0"
    port = int(url.rsplit(":", 1)[1])
    assert record["instance_id"] == f"127.0.0.1-{port}"
    assert sorted((r["path"], tuple(r["methods"])) for r in record["routes"]) == [
        ("/items", ("POST",)),
        ("/items/{item_id}", ("GET",)),
        ("/started", ("GET",)),
    ]
    assert get_json(url + "/started") == {"on_event": True}
    assert get_json(url + "/items/abc") == {"item_id": "abc"}
    # It heartbeats every ttl/3 = 1 s: the registry's heartbeat age drops back.
    ages = []

    def heartbeat_seen() -> bool:
        inst = registry.instance("inventory", record["instance_id"])
        assert inst is not None, "the instance expired"
        ages.append(inst["last_heartbeat_age_seconds"])
        return len(ages) >= 2 and ages[-1] < ages[-2]

    wait_for(heartbeat_seen, 5, "a heartbeat to reach the registry")
    assert len(registry.instances("inventory")) == 1
    assert count_lines(app.stderr, "tapper: registered") == 1
    assert "already announced" not in app.stderr


def test_sigterm_deregisters(procs: Procs, registry: Registry) -> None:
    app = procs.uvicorn(QUICKSTART, "quickstart", env=clean_env(TAPPER_REGISTRY_URL=registry.url))
    instance_id = f"127.0.0.1-{app.port}"
    registry.wait_instance("user-service", instance_id)

    app.signal(signal.SIGTERM)
    # The TTL is 30 s, so disappearing within a few seconds means it was deregistered, not expired.
    wait_for(lambda: registry.instance("user-service", instance_id) is None, 5, "the instance to leave the catalog")
    # uvicorn re-raises the signal after a graceful shutdown, so -SIGTERM is a clean exit too.
    assert app.wait_exit(10) in (0, -signal.SIGTERM)
    assert "Application shutdown complete" in app.stderr
    assert f"tapper: deregistered user-service/{instance_id}" in app.stderr


def test_registry_started_after_the_service(procs: Procs) -> None:
    port = free_port()
    app = procs.uvicorn(small_app("late", ttl=3), "late", env=clean_env(TAPPER_REGISTRY_URL=f"http://127.0.0.1:{port}"))
    # The service starts and serves although the registry is down...
    wait_http_ok(f"http://127.0.0.1:{app.port}/ping")
    wait_for(lambda: "is not reachable" in app.stderr, 5, "the warning about the unreachable registry")

    # ...and registers once the registry comes up on the port it was told about.
    registry = procs.registry(port=port)
    record = registry.wait_instance("late", f"127.0.0.1-{app.port}", timeout=10)
    assert record["routes"] == [{"methods": ["GET"], "path": "/ping"}]
    assert count_lines(app.stderr, "is not reachable") == 1, app.stderr
    assert "Traceback" not in app.stderr


def test_registry_restart_is_followed_by_a_new_registration(procs: Procs) -> None:
    first = procs.registry()
    app = procs.uvicorn(small_app("survivor", ttl=3), "survivor", env=clean_env(TAPPER_REGISTRY_URL=first.url))
    instance_id = f"127.0.0.1-{app.port}"
    first.wait_instance("survivor", instance_id)
    # The registry stores the instance before the service reads the answer: kill it only once
    # the service has logged its registration, or the kill can land in between and the service
    # sees its first registration fail (then the second one is its first "registered").
    wait_for(lambda: count_lines(app.stderr, "tapper: registered") >= 1, 5, "the service to log its registration")

    first.proc.kill()
    second = procs.registry(port=first.port)  # a fresh, empty registry on the same address
    record = second.wait_instance("survivor", instance_id, timeout=10)
    assert record["url"] == f"http://127.0.0.1:{app.port}"
    assert "registering again" in app.stderr or count_lines(app.stderr, "tapper: registered") >= 2
    assert "Traceback" not in app.stderr


def test_token_is_sent_when_the_registry_requires_one(procs: Procs) -> None:
    registry = procs.registry(env=clean_env(TAPPER_TOKEN="abc"))
    with http() as c:
        r = c.put(registry.url + "/v1/services/x/instances/i1", json={"url": "http://127.0.0.1:9"})
        assert r.status_code == 401, r.text

    good = procs.uvicorn(small_app("with-token"), "with-token", env=clean_env(TAPPER_REGISTRY_URL=registry.url, TAPPER_TOKEN="abc"))
    bad = procs.uvicorn(small_app("without-token"), "without-token", env=clean_env(TAPPER_REGISTRY_URL=registry.url))

    registry.wait_instance("with-token", f"127.0.0.1-{good.port}")
    wait_for(lambda: "TAPPER_TOKEN" in bad.stderr and "401" in bad.stderr, 10, "the refusal to be logged")
    assert registry.instances("without-token") == []
    # The refused service still serves.
    assert get_json(f"http://127.0.0.1:{bad.port}/ping") == {"pong": True}

    good.signal(signal.SIGTERM)
    wait_for(lambda: registry.instances("with-token") == [], 5, "the token-holder to deregister")


def test_explicit_service_url_from_the_environment(procs: Procs, registry: Registry) -> None:
    env = clean_env(TAPPER_REGISTRY_URL=registry.url, TAPPER_SERVICE_URL="http://localhost:1234/")
    app = procs.uvicorn(small_app("explicit"), "explicit", env=env)
    record = registry.wait_instance("explicit", "localhost-1234")
    assert record["url"] == "http://localhost:1234"
    wait_for(lambda: "from TAPPER_SERVICE_URL" in app.stderr, 5, "the log line naming TAPPER_SERVICE_URL")
