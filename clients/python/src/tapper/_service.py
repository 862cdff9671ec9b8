"""`Service`: announces a FastAPI app to a Tapper registry for as long as the app runs."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import math
import re
import os
import sys
import threading
import time
from typing import Any, AsyncIterator, Callable, Dict, Iterable, List, Mapping, Optional, Tuple, TypeVar

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse

from . import _names
from ._registry import RegistryError, RegistryUnavailable, check_registry_url
from ._routes import collect_routes, endpoint_in_app, has_route
from ._server import find_uvicorn_server, listen_address

logger = logging.getLogger("tapper")

DEFAULT_REGISTRY_URL = "http://127.0.0.1:8001"
_ATTR = "_tapper_service"
T = TypeVar("T")


def _env(*names: str) -> Optional[str]:
    for name in names:
        value = os.environ.get(name)
        if value is not None and value.strip():
            return value.strip()
    return None


def _ensure_log_output() -> None:
    """Make the 'tapper' logger visible under a bare `uvicorn module:app` (which configures only its
    own loggers), without touching logging that the application configured itself."""
    if logger.handlers or logging.getLogger().handlers:
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)-9s %(message)s"))

    class _Colon(logging.Filter):  # "INFO:     tapper: ..." like uvicorn's own lines
        def filter(self, record: logging.LogRecord) -> bool:
            record.levelname = record.levelname if record.levelname.endswith(":") else record.levelname + ":"
            return True

    handler.addFilter(_Colon())
    logger.addHandler(handler)
    if logger.level == logging.NOTSET:
        logger.setLevel(logging.INFO)
    logger.propagate = False


async def _health(request: Request) -> JSONResponse:
    return JSONResponse({"status": "healthy"})


_RATE_LIMIT = re.compile(r"^[1-9][0-9]{0,9}/(s|sec|second|m|min|minute|h|hour)$")

class Service:
    """Registers a FastAPI (or Starlette) app with a Tapper registry while it runs.

    Use it on the app (``app = Service(name="users")(FastAPI())``), with ``Service(...).attach(app)``,
    or, as in the original Quick Start, on a route function of a module that defines the app.

    On startup every schema route is registered (not the docs, OpenAPI or health routes), then the
    instance heartbeats every ``ttl/3`` seconds, registers again when the registry has forgotten it,
    and deregisters on shutdown. A registry that is down never stops the app: it is retried in the
    background. All registry calls run on a thread of their own, so a handler that blocks the event
    loop does not stop the heartbeats. ``registry=`` takes a ``tapper.registry.RegistryBackend``
    instead of ``registry_url``.
    """

    def __init__(
        self,
        name: str,
        version: str = "0.0.0",
        description: str = "",
        prefix: str = "",
        health_endpoint: str = "/health",
        tags: Optional[Iterable[str]] = None,
        url: Optional[str] = None,
        registry_url: Optional[str] = None,
        ttl: float = 30,
        *,
        token: Optional[str] = None,
        instance_id: Optional[str] = None,
        weight: int = 1,
        traffic_weight: Optional[float] = None,
        rate_limit: Optional[str] = None,
        metadata: Optional[Mapping[str, str]] = None,
        registry: Any = None,
        protocol: Optional[str] = None,
    ) -> None:
        self.name = _names.validate_service_name(name)
        self.version = _names.check_text(version, "version", 64)
        if not self.version:
            raise ValueError("tapper: version must not be empty")
        self.description = _names.check_text(description, "description", 1024)
        self.prefix = _names.normalize_prefix(prefix)
        _names.check_text(health_endpoint, "health_endpoint", 512)
        if not health_endpoint.startswith("/") or " " in health_endpoint:
            raise ValueError(f"tapper: health_endpoint {health_endpoint!r} must be a path starting with '/'")
        self.health_endpoint = health_endpoint
        if isinstance(tags, str):
            raise ValueError("tapper: tags must be a list of strings, not a string")
        self.tags: List[str] = [_names.check_text(t, "tag", 128) for t in (tags or [])]
        if any(not t for t in self.tags):
            raise ValueError("tapper: tags must not be empty strings")
        self.url = _names.normalize_url(url) if url is not None else None
        self.registry_url = check_registry_url(registry_url) if registry_url is not None else None
        from .registry import RegistryBackend

        if registry is not None and not isinstance(registry, RegistryBackend):
            raise TypeError("tapper: registry must be a tapper.registry.RegistryBackend (HTTPRegistry, InMemoryRegistry or your own)")
        if registry is not None and registry_url is not None:
            raise ValueError("tapper: give either registry_url or registry, not both")
        self.registry = registry
        if isinstance(ttl, bool) or not isinstance(ttl, (int, float)) or not math.isfinite(ttl) or not 1 <= ttl <= 86400:
            raise ValueError(f"tapper: ttl must be a number of seconds from 1 to 86400, got {ttl!r}")
        self.ttl = float(ttl)
        self.token = token
        self.instance_id = _names.validate_instance_id(instance_id) if instance_id is not None else None
        if isinstance(weight, bool) or not isinstance(weight, int) or not 1 <= weight <= 1000:
            raise ValueError(f"tapper: weight must be an integer from 1 to 1000, got {weight!r}")
        self.weight = weight
        if traffic_weight is not None and (
            isinstance(traffic_weight, bool) or not isinstance(traffic_weight, (int, float)) or not math.isfinite(traffic_weight)
            or not 0 <= traffic_weight <= 100
        ):
            raise ValueError(f"tapper: traffic_weight must be a percentage from 0 to 100, got {traffic_weight!r}")
        self.traffic_weight = None if traffic_weight is None else float(traffic_weight)
        if rate_limit is not None and (not isinstance(rate_limit, str) or not _RATE_LIMIT.match(rate_limit)):
            raise ValueError(f"tapper: rate_limit must look like '100/s', '6000/m' or '50000/h', got {rate_limit!r}")
        self.rate_limit = rate_limit
        if protocol is not None and protocol not in ("http1", "h2c"):
            raise ValueError(f"tapper: protocol must be 'http1' or 'h2c' (HTTP/2 with prior knowledge), got {protocol!r}")
        self.protocol = protocol
        self.metadata: Dict[str, str] = {}
        for k, v in (metadata or {}).items():
            self.metadata[_names.check_text(k, "metadata key", 128)] = _names.check_text(v, f"metadata[{k!r}]", 1024)

    def __repr__(self) -> str:
        return f"Service(name={self.name!r}, version={self.version!r}, prefix={self.prefix!r})"

    def _config(self) -> Tuple[Any, ...]:
        return (
            self.name, self.version, self.description, self.prefix, self.health_endpoint, tuple(self.tags),
            self.url, self.registry_url, self.ttl, self.token, self.instance_id, self.weight,
            self.traffic_weight, self.rate_limit, tuple(sorted(self.metadata.items())), id(self.registry), self.protocol,
        )

    # -- decorating ---------------------------------------------------------------------------

    def __call__(self, target: T) -> T:
        """Decorates an app (returns it) or a route function of a module that defines the app
        (attaches to that app and returns the function unchanged)."""
        if isinstance(target, Starlette):
            self.attach(target)
            return target
        if callable(target):
            self.attach(_find_app_for(target, inspect.currentframe()))
            return target
        raise TypeError(f"tapper: Service(...) decorates a FastAPI app or a route function, not {type(target).__name__}")

    def attach(self, app: Any) -> Any:
        """Registers `app` with the registry whenever it runs; returns the app. Idempotent per app."""
        if not isinstance(app, Starlette):
            raise TypeError(f"tapper: Service.attach() needs a FastAPI (or Starlette) app, got {type(app).__name__}")
        existing = getattr(app, _ATTR, None)
        if existing is not None:
            if existing is not self and existing._config() != self._config():
                logger.warning(
                    "tapper: this app is already announced as %r; ignoring the second Service(name=%r)",
                    existing.name, self.name,
                )
            return app
        setattr(app, _ATTR, self)
        original = app.router.lifespan_context
        service = self

        @contextlib.asynccontextmanager
        async def lifespan_with_tapper(lifespan_app: Any) -> AsyncIterator[Any]:
            async with original(lifespan_app) as state:
                agent = _Agent(service, app)
                await agent.start()
                try:
                    yield state
                finally:
                    await agent.stop()

        app.router.lifespan_context = lifespan_with_tapper
        return app


def _find_app_for(func: Callable[..., Any], frame: Any) -> Any:
    """The app a route function belongs to: a FastAPI/Starlette app among its module's globals
    (and the decorating code's globals), preferably the one that routes to this function."""
    candidates: List[Any] = []
    seen = set()

    def consider(namespace: Optional[Mapping[str, Any]]) -> None:
        for value in list((namespace or {}).values()):
            if isinstance(value, Starlette) and id(value) not in seen:
                seen.add(id(value))
                candidates.append(value)

    module = sys.modules.get(getattr(func, "__module__", None) or "")
    consider(getattr(module, "__dict__", None))
    consider(getattr(func, "__globals__", None))
    caller = frame.f_back if frame is not None else None
    while caller is not None and caller.f_globals.get("__name__") == __name__:
        caller = caller.f_back
    if caller is not None:
        consider(caller.f_globals)
    del frame, caller

    owners = [app for app in candidates if endpoint_in_app(app, func)]
    if len(owners) == 1:
        return owners[0]
    if not owners and len(candidates) == 1:
        return candidates[0]
    name = getattr(func, "__qualname__", repr(func))
    if not candidates:
        raise TypeError(
            f"tapper: @Service on {name}() found no FastAPI app in module {getattr(func, '__module__', '?')!r}; "
            "create `app = FastAPI()` before the decorated route, or use Service(...).attach(app)"
        )
    raise TypeError(
        f"tapper: @Service on {name}() cannot tell which of {len(candidates)} apps in its module to announce; "
        "use Service(...).attach(app)"
    )


def _worker_count_hint(server: Any) -> bool:
    """Whether this process is one of several workers serving the same socket (uvicorn --workers N,
    gunicorn), where `{host}-{port}` alone would give every worker the same instance id."""
    config = getattr(server, "config", None)
    try:
        if int(getattr(config, "workers", None) or 1) > 1:
            return True
    except (TypeError, ValueError):
        pass
    # A gunicorn worker is a fork of the arbiter, whose modules it inherits.
    return "gunicorn.arbiter" in sys.modules


class _Agent:
    """One run of the app: registration, heartbeats and deregistration.

    Every registry call runs on the agent's own thread, never on the app's event loop: a handler
    that blocks the loop (a 10 s synchronous call in an ``async def``) cannot delay a heartbeat,
    so a healthy instance never expires because its app was busy.
    """

    def __init__(self, service: Service, app: Any) -> None:
        self.service = service
        self.app = app
        self.server: Any = None
        self.task: Optional["asyncio.Task[None]"] = None
        self.thread: Optional[threading.Thread] = None
        self.stop_event = threading.Event()
        self.lock = threading.Lock()
        self.backend: Any = None
        self.where = ""
        self.instance_id = ""
        self.body: Dict[str, Any] = {}
        self.registered = False
        self.deregistered = False
        self.outage = False  # the registry is unreachable; warned once
        self.last_error = ""
        self.heartbeat_interval = max(service.ttl / 3.0, 0.2)
        self.retry_cap = min(5.0, max(1.0, self.heartbeat_interval))

    # -- lifecycle (event loop) -----------------------------------------------------------------

    async def start(self) -> None:
        _ensure_log_output()
        self._ensure_health_route()
        if _env("TAPPER_DISABLED") in ("1", "true", "yes"):
            logger.info("tapper: TAPPER_DISABLED is set; not registering %s", self.service.name)
            return
        self.server = find_uvicorn_server()
        self.task = asyncio.get_running_loop().create_task(self._prepare())

    async def stop(self) -> None:
        self.stop_event.set()
        task = self.task
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
        thread = self.thread
        if thread is not None and thread.is_alive():
            timeout = float(getattr(self.backend, "timeout", 3.0) or 3.0) + 1.0
            await asyncio.to_thread(thread.join, timeout)
        await asyncio.to_thread(self._deregister)

    def _stopping(self) -> bool:
        return self.stop_event.is_set() or bool(self.server is not None and getattr(self.server, "should_exit", False))

    async def _sleep(self, seconds: float) -> bool:
        """Sleeps up to `seconds` on the event loop; True as soon as the app is shutting down."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        while not self._stopping():
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            await asyncio.sleep(min(remaining, 0.1))
        return True

    def _ensure_health_route(self) -> None:
        if self.service.health_endpoint != "/health":
            if not has_route(self.app, self.service.health_endpoint):
                logger.warning(
                    "tapper: health_endpoint %s is not a route of this app; the gateway's health checks will fail",
                    self.service.health_endpoint,
                )
            return
        if has_route(self.app, "/health"):
            return
        router = self.app.router
        router.add_route("/health", _health, methods=["GET"], include_in_schema=False)
        # Put it first so that a catch-all route of the app cannot shadow it.
        router.routes.insert(0, router.routes.pop())
        mark = getattr(router, "_mark_routes_changed", None)
        if callable(mark):
            mark()

    async def _prepare(self) -> None:
        """On the event loop: wait until the server listens, work out the URL and the registration,
        then hand over to the agent's thread."""
        try:
            url = await self._resolve_url()
            if url is None or self._stopping():
                return
            s = self.service
            if s.registry is not None:
                self.backend = s.registry
            else:
                from .registry import HTTPRegistry

                registry_url = s.registry_url or _env("TAPPER_REGISTRY_URL", "TAPER_REGISTRY_URL") or DEFAULT_REGISTRY_URL
                try:
                    self.backend = HTTPRegistry(registry_url, s.token or _env("TAPPER_TOKEN") or "")
                except ValueError as e:
                    logger.error("%s; not registering %s", e, s.name)
                    return
            self.where = getattr(self.backend, "description", None) or repr(self.backend)
            self.instance_id = s.instance_id or _names.default_instance_id(url)
            if _worker_count_hint(self.server):
                # Several workers share this socket: one instance per worker, each with its own id,
                # so one worker's exit deregisters only itself.
                self.instance_id = f"{self.instance_id}-{os.getpid()}"
            routes = collect_routes(self.app, s.prefix, s.health_endpoint)
            if not routes:
                logger.warning("tapper: %s has no public routes to register (only schema routes are published)", s.name)
            self.body = {
                "url": url,
                "version": s.version,
                "description": s.description,
                "prefix": s.prefix,
                "health_endpoint": s.health_endpoint,
                "tags": list(s.tags),
                "routes": routes,
                "ttl_seconds": s.ttl,
                "weight": s.weight,
                "metadata": dict(s.metadata),
            }
            if s.traffic_weight is not None:
                self.body["traffic_weight"] = s.traffic_weight
            if s.rate_limit is not None:
                self.body["rate_limit"] = s.rate_limit
            if s.protocol is not None:
                self.body["protocol"] = s.protocol
            # Where the app serves its schema, so the gateway merges it into its /openapi.json.
            openapi_url = getattr(self.app, "openapi_url", None)
            if isinstance(openapi_url, str) and openapi_url.startswith("/"):
                self.body["openapi_path"] = openapi_url
            self.thread = threading.Thread(target=self._thread_main, name=f"tapper-heartbeat-{s.name}", daemon=True)
            self.thread.start()
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("tapper: registration of %s stopped after an unexpected error", self.service.name)

    async def _resolve_url(self) -> Optional[str]:
        s = self.service
        explicit, source = s.url, "Service(url=...)"
        if explicit is None:
            env_url = _env("TAPPER_SERVICE_URL")
            if env_url is not None:
                source = "TAPPER_SERVICE_URL"
                try:
                    explicit = _names.normalize_url(env_url, "TAPPER_SERVICE_URL")
                except ValueError as e:
                    logger.error("%s; not registering %s", e, s.name)
                    return None
        server = self.server
        if server is not None:
            # Register only once the server listens, so no request is routed to a closed port.
            while not getattr(server, "started", False):
                if await self._sleep(0.05):
                    return None
        if explicit is not None:
            logger.info("tapper: %s is reachable at %s (from %s)", s.name, explicit, source)
            return explicit
        if server is None:
            logger.warning(
                "tapper: cannot tell where %s is reachable (no uvicorn server found); not registering it. "
                "Set TAPPER_SERVICE_URL=http://HOST:PORT or Service(url=...)",
                s.name,
            )
            return None
        addr = listen_address(server)
        if addr is None:
            logger.warning(
                "tapper: uvicorn listens on a unix socket or file descriptor, so %s has no inferable URL; "
                "not registering it. Set TAPPER_SERVICE_URL=http://HOST:PORT or Service(url=...)",
                s.name,
            )
            return None
        url_host, bound_host, port, is_ssl = addr
        url = f"{'https' if is_ssl else 'http'}://{url_host}:{port}"
        bound = f"[{bound_host}]:{port}" if ":" in bound_host else f"{bound_host}:{port}"
        logger.info(
            "tapper: %s is reachable at %s (inferred from the uvicorn socket on %s; "
            "set TAPPER_SERVICE_URL or Service(url=...) to override)",
            s.name, url, bound,
        )
        return url

    # -- the agent's thread ---------------------------------------------------------------------

    def _wait(self, seconds: float) -> bool:
        """Waits up to `seconds` on the agent's thread; True as soon as the app is shutting down.
        (uvicorn's `should_exit` is polled every 0.1 s, so deregistration starts as soon as uvicorn
        begins to shut down, before it drains connections.)"""
        deadline = time.monotonic() + seconds
        while not self._stopping():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            self.stop_event.wait(min(remaining, 0.1))
        return True

    def _thread_main(self) -> None:
        try:
            if self._register_until_done():
                self._heartbeat_loop()
        except Exception:
            logger.exception("tapper: registration of %s stopped after an unexpected error", self.service.name)
        finally:
            if self.server is not None and getattr(self.server, "should_exit", False):
                # uvicorn is shutting down: leave the catalog before connections are drained.
                self._deregister()

    def _describe(self) -> str:
        return f"{self.service.name}/{self.instance_id}"

    def _note_unavailable(self, e: Exception, doing: str) -> None:
        if not self.outage:
            self.outage = True
            logger.warning(
                "tapper: %s failed: %s is not reachable (%s); the service keeps running and tapper retries in the background",
                doing, self.where, e,
            )

    def _note_refused(self, e: RegistryError, doing: str) -> None:
        text = str(e)
        if text == self.last_error:
            return
        self.last_error = text
        hint = ""
        if e.status in (401, 403) and "TAPPER_TOKEN" not in text:
            hint = " (set TAPPER_TOKEN to the registry's token)"
        elif e.status == 409:
            hint = " (another service owns one of these routes)"
        logger.error("tapper: the registry refused to %s %s: %s%s; retrying", doing, self._describe(), text, hint)

    def _register_until_done(self) -> bool:
        delay = 0.25
        while not self._stopping():
            try:
                with self.lock:
                    if self.deregistered:
                        return False
                    self.backend.register(self.service.name, self.instance_id, self.body)
                    self.registered = True
            except RegistryUnavailable as e:
                self._note_unavailable(e, "registering " + self._describe())
            except RegistryError as e:
                self._note_refused(e, "register")
            else:
                self.last_error = ""
                recovered = " (the registry is reachable again)" if self.outage else ""
                self.outage = False
                logger.info(
                    "tapper: registered %s at %s with %d route(s) in %s%s",
                    self._describe(), self.body["url"], len(self.body["routes"]), self.where, recovered,
                )
                return True
            if self._wait(delay):
                return False
            delay = min(delay * 2, self.retry_cap)
        return False

    def _heartbeat_loop(self) -> None:
        wait = self.heartbeat_interval
        backoff = 0.0
        while not self._wait(wait):
            try:
                known = self.backend.heartbeat(self.service.name, self.instance_id)
            except RegistryUnavailable as e:
                # Retry sooner than the heartbeat interval so a restarted registry relearns us quickly.
                self._note_unavailable(e, "heartbeat for " + self._describe())
                backoff = 0.25 if backoff == 0 else min(backoff * 2, self.retry_cap)
                wait = backoff
                continue
            except RegistryError as e:
                self._note_refused(e, "accept the heartbeat of")
                wait = self.heartbeat_interval
                continue
            wait = self.heartbeat_interval
            backoff = 0.0
            if not known:
                logger.info("tapper: the registry no longer knows %s (restarted or expired); registering again", self._describe())
                if not self._register_until_done():
                    return
            elif self.outage:
                self.outage = False
                logger.info("tapper: %s is reachable again", self.where)

    def _deregister(self) -> None:
        with self.lock:
            if not self.registered or self.deregistered or self.backend is None:
                self.deregistered = True
                return
            self.deregistered = True
            try:
                self.backend.deregister(self.service.name, self.instance_id)
            except RegistryUnavailable as e:
                logger.warning(
                    "tapper: could not deregister %s: %s is not reachable (%s); it expires after %gs",
                    self._describe(), self.where, e, self.service.ttl,
                )
            except RegistryError as e:
                logger.warning("tapper: could not deregister %s: %s", self._describe(), e)
            else:
                logger.info("tapper: deregistered %s", self._describe())
