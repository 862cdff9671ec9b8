"""In-process tests of validation, route selection and app discovery (no uvicorn processes)."""

from __future__ import annotations

import sys
import time
import types
from contextlib import asynccontextmanager

import pytest
from fastapi import APIRouter, FastAPI, Request
from fastapi.testclient import TestClient
from starlette.endpoints import HTTPEndpoint
from starlette.responses import PlainTextResponse

from support import QUICKSTART, Registry, free_port, wait_for
from tapper import Service, default_instance_id, public
from tapper._names import normalize_prefix, normalize_url
from tapper._routes import collect_routes


@pytest.mark.parametrize("name", ["", "User", "user_service", "-users", "users-", "a" * 64, "ünï", "users\n"])
def test_invalid_service_names_are_refused(name: str) -> None:
    with pytest.raises(ValueError, match="service name"):
        Service(name=name)


@pytest.mark.parametrize("name", ["a", "user-service", "v2", "a" * 63, "0-9"])
def test_valid_service_names(name: str) -> None:
    assert Service(name=name).name == name


def test_other_arguments_are_checked() -> None:
    with pytest.raises(ValueError, match="ttl"):
        Service(name="x", ttl=0)
    with pytest.raises(ValueError, match="http"):
        Service(name="x", url="ftp://h:1")
    with pytest.raises(ValueError, match="without a path"):
        Service(name="x", url="http://h:1/api")
    with pytest.raises(ValueError, match="health_endpoint"):
        Service(name="x", health_endpoint="health")
    with pytest.raises(ValueError, match="tags"):
        Service(name="x", tags="a")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="instance id"):
        Service(name="x", instance_id="a b")


def test_instance_ids_follow_the_cli_rule() -> None:
    assert default_instance_id("http://127.0.0.1:8002") == "127.0.0.1-8002"
    assert default_instance_id("http://Users.Example.com") == "users.example.com-80"
    assert default_instance_id("https://h") == "h-443"
    assert default_instance_id("http://[::1]:9000") == "__1-9000"
    assert default_instance_id("http://my_host:1") == "my_host-1"


def test_prefix_and_url_normalisation() -> None:
    assert normalize_prefix("") == ""
    assert normalize_prefix("/") == ""
    assert normalize_prefix("api") == "/api"
    assert normalize_prefix("/api/v1/") == "/api/v1"
    with pytest.raises(ValueError):
        normalize_prefix("/{x}")
    assert normalize_url("HTTP://127.0.0.1:8002/") == "http://127.0.0.1:8002"
    with pytest.raises(ValueError):
        normalize_url("http://127.0.0.1:99999")


class Thing(HTTPEndpoint):
    async def get(self, request: Request) -> PlainTextResponse:
        return PlainTextResponse("thing")


def _complex_app() -> FastAPI:
    app = FastAPI()
    router = APIRouter(prefix="/v1")

    @router.get("/users/{user_id:int}")
    def get_user(user_id: int) -> dict:
        return {}

    @router.put("/users/{uid:int}")
    def put_user(uid: int) -> dict:
        return {}

    @router.get("/private", include_in_schema=False)
    def private() -> dict:
        return {}

    app.include_router(router)
    app.include_router(APIRouter(), prefix="/empty")

    @app.get("/files/{rest:path}")
    def files(rest: str) -> dict:
        return {}

    @app.get("/health")
    def health() -> dict:
        return {}

    @app.get("/_tapper/status")
    def clash() -> dict:
        return {}

    @app.get("/report.{fmt}")
    def report(fmt: str) -> dict:
        return {}

    @app.api_route("/explicit-head", methods=["GET", "HEAD"])
    def explicit_head() -> dict:
        return {}

    async def plain(request: Request) -> PlainTextResponse:
        return PlainTextResponse("plain")

    app.add_route("/plain", plain, methods=["GET"])  # Starlette adds HEAD implicitly
    app.add_route("/thing", Thing)  # an endpoint class: any method
    app.mount("/static", FastAPI())
    return app


def test_collect_routes_publishes_schema_routes_only() -> None:
    routes = collect_routes(_complex_app(), prefix="", health_endpoint="/health")
    assert routes == [
        {"methods": ["GET", "PUT"], "path": "/v1/users/{user_id:int}"},
        {"methods": ["GET"], "path": "/files/{rest:path}"},
        {"methods": ["GET", "HEAD"], "path": "/explicit-head"},
        {"methods": ["GET"], "path": "/plain"},
        {"methods": [], "path": "/thing"},
    ]


def test_websocket_routes_are_published_as_get_routes_marked_websocket() -> None:
    from fastapi import WebSocket
    from starlette.routing import WebSocketRoute

    app = FastAPI()
    router = APIRouter(prefix="/v1")

    @router.websocket("/rooms/{room}")
    async def room(ws: WebSocket, room: str) -> None: ...

    app.include_router(router)

    @app.get("/both")
    def both_get() -> dict:
        return {}

    @app.websocket("/both")
    async def both_ws(ws: WebSocket) -> None: ...

    async def raw(ws: WebSocket) -> None: ...

    app.router.routes.append(WebSocketRoute("/raw/{x}", raw))  # plain Starlette
    app.router.routes.append(WebSocketRoute("/_tapper/ws", raw))  # reserved: never published
    assert collect_routes(app, prefix="", health_endpoint="/health") == [
        {"methods": ["GET"], "path": "/v1/rooms/{room}", "websocket": True},
        {"methods": ["GET"], "path": "/both", "websocket": True},
        {"methods": ["GET"], "path": "/raw/{x}", "websocket": True},
    ]


def test_public_routes_are_marked_and_kept_apart_from_guarded_ones() -> None:
    app = FastAPI()

    @app.get("/items/{item_id}")
    @public
    def read_item(item_id: int) -> dict:
        return {}

    @app.delete("/items/{item_id}")
    def delete_item(item_id: int) -> dict:
        return {}

    @app.post("/login", openapi_extra={"x-tapper-public": True})
    def login() -> dict:
        return {}

    @app.get("/status", openapi_extra={"security": []})
    def status() -> dict:
        return {}

    @app.get("/secret", openapi_extra={"security": [{"bearer": []}]})
    def secret() -> dict:
        return {}

    assert collect_routes(app, prefix="", health_endpoint="/health") == [
        {"methods": ["GET"], "path": "/items/{item_id}", "public": True},
        {"methods": ["DELETE"], "path": "/items/{item_id}"},
        {"methods": ["POST"], "path": "/login", "public": True},
        {"methods": ["GET"], "path": "/status", "public": True},
        {"methods": ["GET"], "path": "/secret"},
    ]
    # The marked function still works as a route.
    assert TestClient(app).get("/items/3").status_code == 200


def test_collect_routes_with_a_prefix_keeps_paths_relative() -> None:
    app = FastAPI()

    @app.get("/health")  # not reserved under a prefix, but it is the health endpoint
    def health() -> dict:
        return {}

    @app.get("/items")
    def items() -> dict:
        return {}

    assert collect_routes(app, prefix="/api", health_endpoint="/health") == [{"methods": ["GET"], "path": "/items"}]
    # With another health endpoint, /health is an ordinary route, and under /api it is not reserved.
    assert collect_routes(app, prefix="/api", health_endpoint="/ready") == [
        {"methods": ["GET"], "path": "/health"},
        {"methods": ["GET"], "path": "/items"},
    ]


def _load_module(name: str, source: str) -> types.ModuleType:
    module = types.ModuleType(name)
    module.__file__ = f"<{name}>"
    sys.modules[name] = module
    try:
        exec(compile(source, f"<{name}>", "exec"), module.__dict__)
    except BaseException:
        del sys.modules[name]
        raise
    return module


def test_quickstart_decorator_attaches_to_the_module_app() -> None:
    module = _load_module("tapper_test_quickstart", QUICKSTART)
    try:
        app = module.app
        assert getattr(app, "_tapper_service").name == "user-service"
        # The route function is returned unchanged and still routed.
        assert module.get_user.__name__ == "get_user"
        with TestClient(app) as client:
            assert client.get("/users/7").json() == {"user_id": 7, "name": "Jane Doe"}
    finally:
        del sys.modules["tapper_test_quickstart"]


def test_decorator_picks_the_app_that_routes_the_function() -> None:
    source = """
from fastapi import FastAPI
from tapper import Service
admin = FastAPI()
app = FastAPI()

@Service(name="second")
@app.get("/x")
def x():
    return {}
"""
    module = _load_module("tapper_test_two_apps", source)
    try:
        assert getattr(module.app, "_tapper_service").name == "second"
        assert getattr(module.admin, "_tapper_service", None) is None
    finally:
        del sys.modules["tapper_test_two_apps"]


def test_decorator_without_an_app_says_what_to_do() -> None:
    source = """
from tapper import Service

@Service(name="lonely")
def f():
    return {}
"""
    with pytest.raises(TypeError, match="no FastAPI app"):
        _load_module("tapper_test_no_app", source)


def test_repeated_attachment_wraps_the_lifespan_once() -> None:
    app = FastAPI()
    Service(name="once").attach(app)
    wrapped = app.router.lifespan_context
    Service(name="once").attach(app)
    Service(name="once")(app)
    assert app.router.lifespan_context is wrapped
    with pytest.raises(TypeError):
        Service(name="x")(42)  # type: ignore[arg-type]


def test_under_testclient_without_a_url_nothing_is_registered(caplog: pytest.LogCaptureFixture) -> None:
    @asynccontextmanager
    async def lifespan(app: FastAPI):
        app.state.ready = True
        yield {"token": "from-lifespan"}

    app = Service(name="unit", registry_url=f"http://127.0.0.1:{free_port()}")(FastAPI(lifespan=lifespan))

    @app.get("/state")
    def state(request: Request) -> dict:
        return {"ready": request.app.state.ready, "token": request.state.token}

    caplog.set_level("INFO", logger="tapper")
    with TestClient(app) as client:
        assert client.get("/state").json() == {"ready": True, "token": "from-lifespan"}
        assert client.get("/health").json() == {"status": "healthy"}
        wait_for(lambda: "not registering" in caplog.text, 5, "the explanation in the log")
    assert "/health" not in app.openapi()["paths"]


def test_registry_down_does_not_block_startup_or_shutdown(caplog: pytest.LogCaptureFixture) -> None:
    app = Service(name="unit", url="http://127.0.0.1:9", registry_url=f"http://127.0.0.1:{free_port()}", ttl=3)(FastAPI())
    caplog.set_level("INFO", logger="tapper")
    started = time.monotonic()
    with TestClient(app) as client:
        assert client.get("/health").status_code == 200
        wait_for(lambda: "is not reachable" in caplog.text, 5, "the warning")
        wait_for(lambda: caplog.text.count("is not reachable") == 1 and time.monotonic() - started > 1, 5, "retries")
    assert time.monotonic() - started < 5
    assert caplog.text.count("is not reachable") == 1


def test_explicit_url_under_testclient_registers_and_deregisters(registry: Registry) -> None:
    app = Service(name="in-process", url="http://127.0.0.1:9", registry_url=registry.url)(FastAPI())

    @app.get("/a")
    def a() -> dict:
        return {}

    with TestClient(app):
        record = registry.wait_instance("in-process", "127.0.0.1-9")
        assert record["routes"] == [{"methods": ["GET"], "path": "/a"}]
    assert registry.instances("in-process") == []


def test_the_app_openapi_url_is_sent_as_openapi_path(registry: Registry) -> None:
    app = Service(name="with-schema", url="http://127.0.0.1:9", registry_url=registry.url)(FastAPI(openapi_url="/schema/openapi.json"))
    bare = Service(name="without-schema", url="http://127.0.0.1:10", registry_url=registry.url)(FastAPI(openapi_url=None))

    @app.get("/a")
    def a() -> dict:
        return {}

    @bare.get("/b")
    def b() -> dict:
        return {}

    with TestClient(app), TestClient(bare):
        assert registry.wait_instance("with-schema", "127.0.0.1-9")["openapi_path"] == "/schema/openapi.json"
        assert "openapi_path" not in registry.wait_instance("without-schema", "127.0.0.1-10")
