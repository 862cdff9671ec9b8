"""`TapperGateway`: the gateway as an ASGI app, for embedding in a FastAPI app with custom Python policy.

It follows the registry with blocking queries (plus a full resync every ``discovery_interval``
seconds) on its own thread, routes with the same table as the Swift gateway (`_routing.py`, checked
against the shared `Tests/Fixtures/routing-cases.json`), and proxies with httpx (streaming both
ways, pooled keep-alive connections). For production traffic use `tapper gateway serve`: it is
many times faster (see the README's measurements).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import inspect
import json
import logging
import math
import os
import threading
import time
import urllib.request
import uuid
from typing import Any, Awaitable, Callable, Dict, List, Optional, Sequence, Tuple

from .balancing import BALANCERS, LoadBalancer, ServiceInstance, make_balancer
from .registry import HTTPRegistry, RegistryBackend
from ._routing import Match, MethodNotAllowed, RouteTable, path_violation

logger = logging.getLogger("tapper.gateway")

# RFC 9110 7.6.1 connection-specific headers, plus Proxy-* (by prefix) and the ones Connection names.
_HOP_BY_HOP = {b"connection", b"keep-alive", b"te", b"trailer", b"transfer-encoding", b"upgrade", b"proxy-connection"}
# The ASGI server writes its own Date and Server headers; the upstream's would be duplicates.
_REPLACED_RESPONSE_HEADERS = {b"x-request-id", b"x-tapper-instance", b"date", b"server"}
_IDEMPOTENT = {"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"}

Scope = Dict[str, Any]
Receive = Callable[[], Awaitable[Dict[str, Any]]]
Send = Callable[[Dict[str, Any]], Awaitable[None]]


def _import_httpx() -> Any:
    try:
        import httpx
    except ImportError:  # pragma: no cover - exercised by users without the extra
        raise ImportError(
            "tapper: TapperGateway proxies with httpx, which is not installed; "
            "install the package's gateway extra (from the Tapper repository: pip install './clients/python[gateway]') "
            "or httpx itself (pip install httpx)"
        ) from None
    return httpx


def _error_body(code: str, message: str) -> bytes:
    return json.dumps({"error": {"code": code, "message": message}}).encode("utf-8")


class _Instance:
    """Per-instance state: what balancers see, plus active and passive health."""

    def __init__(self, record: Dict[str, Any]) -> None:
        self.view = ServiceInstance(service=record["service"], instance_id=record["instance_id"], url="")
        self.health_endpoint = "/health"
        self.active_up = True
        self.probe_failures = 0
        self.probe_successes = 0
        self.consecutive_failures = 0
        self.ejected_until = 0.0
        self.ejections = 0
        self.update(record)

    def update(self, record: Dict[str, Any]) -> None:
        v = self.view
        v.url = str(record.get("url", "")).rstrip("/")
        v.version = str(record.get("version", ""))
        v.weight = int(record.get("weight", 1) or 1)
        v.tags = list(record.get("tags") or [])
        v.metadata = dict(record.get("metadata") or {})
        self.health_endpoint = str(record.get("health_endpoint") or "/health")
        self.load_balancer = record.get("load_balancer")

    def ejected(self, now: float) -> bool:
        return self.ejected_until > now

    def routable(self, now: float) -> bool:
        return self.active_up and not self.ejected(now)


class _Snapshot:
    def __init__(self, table: RouteTable, catalog: Dict[str, Any], instances: Dict[Tuple[str, str], _Instance]) -> None:
        self.table = table
        self.catalog = catalog
        self.instances = instances


class _BodyStream:
    """The client's request body as an async iterator for httpx, read from ASGI `receive` as the
    upstream takes it (backpressure both ways). Chunks are kept up to 64 KiB so a request whose
    connection failed can be sent to another instance; a larger body is never replayed."""

    REPLAY_LIMIT = 64 * 1024

    def __init__(self, receive: Receive) -> None:
        self.receive = receive
        self.kept: List[bytes] = []
        self.kept_bytes = 0
        self.replayable = True
        self.finished = False
        self.started = False

    def fresh(self) -> "Any":
        if self.started and not self.replayable:
            return None
        return self._iterate()

    async def _iterate(self) -> Any:
        replay = list(self.kept)
        self.started = True
        for chunk in replay:
            yield chunk
        while not self.finished:
            message = await self.receive()
            if message["type"] == "http.disconnect":
                self.finished = True
                raise _ClientGone()
            chunk = message.get("body", b"")
            if not message.get("more_body", False):
                self.finished = True
            if chunk:
                if self.replayable:
                    self.kept_bytes += len(chunk)
                    if self.kept_bytes <= self.REPLAY_LIMIT:
                        self.kept.append(chunk)
                    else:
                        self.replayable = False
                        self.kept = []
                yield chunk


class _ClientGone(Exception):
    pass


class TapperGateway:
    """An API gateway as an ASGI app: mount it in a FastAPI app (``app.mount("/", TapperGateway())``).

    Parameters:
        registry_url: the Tapper registry (default ``TAPPER_REGISTRY_URL`` or ``TAPER_REGISTRY_URL``,
            then ``http://127.0.0.1:8001``).
        discovery_interval: seconds between full catalog resyncs; changes arrive sooner, through the
            registry's blocking query.
        timeout: seconds for connecting to an instance and for each read or write; also bounds an
            ``auth_provider``.
        load_balancer: ``"round-robin"``, ``"random"``, ``"least-connections"``, ``"weighted"``, or a
            ``LoadBalancer`` subclass instance whose ``select_instance(instances)`` picks one.
        auth_provider: an object with ``authenticate(request)`` (sync or async; ``request`` is a
            Starlette ``Request``) returning True (allow), a non-empty string (allow, as that subject,
            passed on as ``X-Tapper-Subject``), False/None (401), or a Starlette ``Response`` to send
            instead. Routes registered as public skip it.
        registry: a ``tapper.registry.RegistryBackend`` to read instead of ``registry_url``.

    Keyword-only tuning (defaults as in ``tapper gateway serve``): ``health_interval`` (10 s; 0 turns
    active checks off), ``health_timeout`` (2 s), ``health_fall`` (3), ``health_rise`` (2),
    ``outlier_failures`` (5), ``ejection_time`` (30 s), ``max_ejection_percent`` (50).
    """

    def __init__(
        self,
        registry_url: Optional[str] = None,
        discovery_interval: float = 30,
        timeout: float = 5,
        load_balancer: Any = "round-robin",
        auth_provider: Any = None,
        *,
        registry: Optional[RegistryBackend] = None,
        health_interval: float = 10,
        health_timeout: float = 2,
        health_fall: int = 3,
        health_rise: int = 2,
        outlier_failures: int = 5,
        ejection_time: float = 30,
        max_ejection_percent: float = 50,
    ) -> None:
        for name, value, low in (("discovery_interval", discovery_interval, 0.1), ("timeout", timeout, 0.001)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < low:
                raise ValueError(f"tapper: {name} must be a number of seconds >= {low}, got {value!r}")
        if auth_provider is not None and not callable(getattr(auth_provider, "authenticate", None)):
            raise TypeError("tapper: auth_provider must have an authenticate(request) method (sync or async)")
        if registry is not None and registry_url is not None:
            raise ValueError("tapper: give either registry_url or registry, not both")
        if registry is not None and not isinstance(registry, RegistryBackend):
            raise TypeError("tapper: registry must be a tapper.registry.RegistryBackend")
        self._httpx: Any = _import_httpx()  # fails here, with the pip command, rather than at the first request
        self.registry: RegistryBackend = registry if registry is not None else HTTPRegistry(registry_url)
        self.discovery_interval = float(discovery_interval)
        self.timeout = float(timeout)
        self.auth_provider = auth_provider
        self._balancer_spec = load_balancer
        self._shared_balancer: Optional[LoadBalancer] = load_balancer if isinstance(load_balancer, LoadBalancer) else None
        make_balancer(load_balancer)  # validates a name now, at import time of the user's module
        self._balancers: Dict[str, LoadBalancer] = {}
        self.health_interval = float(health_interval)
        self.health_timeout = float(health_timeout)
        self.health_fall = int(health_fall)
        self.health_rise = int(health_rise)
        self.outlier_failures = int(outlier_failures)
        self.ejection_time = float(ejection_time)
        self.max_ejection_percent = float(max_ejection_percent)

        self._snapshot = _Snapshot(RouteTable(), {"index": 0, "services": []}, {})
        self._first_sync = threading.Event()
        self._stop = threading.Event()
        self._start_lock = threading.Lock()
        self._pid: Optional[int] = None
        self._reachable = False
        self._last_error = ""
        self._last_sync = 0.0
        self._client: Any = None
        self._client_loop: Any = None

    def __repr__(self) -> str:
        return f"TapperGateway({self.registry!r})"

    # -- discovery ------------------------------------------------------------------------------

    def start(self) -> None:
        """Starts discovery and health checking (threads). Called by the first request or the ASGI
        lifespan; again after a fork (each worker process runs its own)."""
        with self._start_lock:
            if self._pid == os.getpid():
                return
            self._pid = os.getpid()
            self._stop.clear()
            threading.Thread(target=self._watch, name="tapper-gateway-discovery", daemon=True).start()
            if self.health_interval > 0:
                threading.Thread(target=self._probe_loop, name="tapper-gateway-health", daemon=True).start()

    def stop(self) -> None:
        """Stops the background threads (they are daemons: a process may also just exit)."""
        self._stop.set()
        self._pid = None

    def _watch(self) -> None:
        index: Optional[int] = None
        last_full = 0.0
        backoff = 0.25
        while not self._stop.is_set():
            now = time.monotonic()
            full = index is None or now - last_full >= self.discovery_interval
            try:
                if full:
                    catalog = self.registry.catalog()
                    last_full = time.monotonic()
                else:
                    wait = max(1.0, min(30.0, self.discovery_interval - (now - last_full)))
                    catalog = self.registry.catalog(index=index, wait=wait)
            except Exception as e:  # noqa: BLE001 - keep routing with the last table, retry
                text = f"{type(e).__name__}: {e}"
                if self._reachable or text != self._last_error:
                    logger.warning("tapper: gateway cannot read %s (%s); routing with the last catalog and retrying",
                                   getattr(self.registry, "description", "the registry"), text)
                self._reachable = False
                self._last_error = text
                self._first_sync.set()
                index = None
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 5.0)
                continue
            if not self._reachable and self._last_error:
                logger.info("tapper: gateway reads %s again", getattr(self.registry, "description", "the registry"))
            self._reachable = True
            self._last_error = ""
            backoff = 0.25
            new_index = int(catalog.get("index", 0))
            if full or new_index != index:
                self._apply(catalog)
            index = new_index
            self._last_sync = time.time()
            self._first_sync.set()

    def _apply(self, catalog: Dict[str, Any]) -> None:
        old = self._snapshot.instances
        instances: Dict[Tuple[str, str], _Instance] = {}
        for service in catalog.get("services", []):
            for record in service.get("instances", []):
                key = (record["service"], record["instance_id"])
                inst = old.get(key)
                if inst is None:
                    inst = _Instance(record)
                else:
                    inst.update(record)
                instances[key] = inst
        # One assignment: a request in flight keeps the snapshot it started with.
        self._snapshot = _Snapshot(RouteTable.from_catalog(catalog), catalog, instances)

    def _probe_loop(self) -> None:
        pool = concurrent.futures.ThreadPoolExecutor(max_workers=8, thread_name_prefix="tapper-gateway-probe")
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

        def probe(inst: _Instance) -> bool:
            try:
                with opener.open(inst.view.url + inst.health_endpoint, timeout=self.health_timeout) as r:
                    return 200 <= r.status < 400
            except Exception:  # noqa: BLE001 - any failure is a failed probe
                return False

        try:
            while not self._stop.wait(self.health_interval):
                insts = list(self._snapshot.instances.values())
                for inst, ok in zip(insts, pool.map(probe, insts)):
                    if ok:
                        inst.probe_failures = 0
                        inst.probe_successes += 1
                        if not inst.active_up and inst.probe_successes >= self.health_rise:
                            inst.active_up = True
                            logger.info("tapper: %s/%s passes its health checks again", inst.view.service, inst.view.instance_id)
                    else:
                        inst.probe_successes = 0
                        inst.probe_failures += 1
                        if inst.active_up and inst.probe_failures >= self.health_fall:
                            inst.active_up = False
                            logger.warning("tapper: %s/%s failed %d health checks in a row; taken out of rotation",
                                           inst.view.service, inst.view.instance_id, inst.probe_failures)
        finally:
            pool.shutdown(wait=False)

    # -- passive health -------------------------------------------------------------------------

    def _failed(self, inst: _Instance, snapshot: _Snapshot) -> None:
        inst.consecutive_failures += 1
        if inst.consecutive_failures < self.outlier_failures:
            return
        now = time.monotonic()
        if inst.ejected(now):
            return
        same = [i for (s, _), i in snapshot.instances.items() if s == inst.view.service]
        ejected = sum(1 for i in same if i.ejected(now))
        if ejected + 1 > max(1, math.floor(len(same) * self.max_ejection_percent / 100)):
            return
        inst.ejections += 1
        inst.ejected_until = now + min(300.0, self.ejection_time * inst.ejections)
        inst.consecutive_failures = 0
        logger.warning("tapper: %s/%s ejected for %.0fs after %d failures in a row", inst.view.service, inst.view.instance_id,
                       inst.ejected_until - now, self.outlier_failures)

    def _succeeded(self, inst: _Instance) -> None:
        inst.consecutive_failures = 0

    # -- status ---------------------------------------------------------------------------------

    def get_service_status(self) -> Dict[str, Any]:
        """The services this gateway knows and the health of each instance::

            {"registry": "reachable", "index": 12, "services": {"user-service": {"status": "healthy",
             "instances": [{"instance_id": ..., "url": ..., "healthy": True, "ejected": False, ...}]}}}
        """
        snap = self._snapshot
        now = time.monotonic()
        services: Dict[str, Any] = {}
        for service in snap.catalog.get("services", []):
            rows = []
            for record in service.get("instances", []):
                inst = snap.instances.get((record["service"], record["instance_id"]))
                if inst is None:
                    continue
                rows.append({
                    "instance_id": inst.view.instance_id, "url": inst.view.url, "version": inst.view.version,
                    "healthy": inst.routable(now), "active_health": "up" if inst.active_up else "down",
                    "ejected": inst.ejected(now), "in_flight": inst.view.in_flight, "weight": inst.view.weight,
                })
            healthy = sum(1 for r in rows if r["healthy"])
            services[service["name"]] = {"status": "healthy" if healthy else "unhealthy", "healthy": healthy, "instances": rows}
        return {
            "registry": "reachable" if self._reachable else "unreachable",
            "index": int(snap.catalog.get("index", 0)),
            "services": services,
        }

    def _health(self) -> Dict[str, Any]:
        status = self.get_service_status()
        services = {n: {"status": s["status"], "instances": len(s["instances"]), "healthy": s["healthy"]} for n, s in status["services"].items()}
        overall = "healthy" if all(s["status"] == "healthy" for s in services.values()) else "degraded"
        return {"status": overall, "services": services, "registry": status["registry"]}

    def _routes(self) -> Dict[str, Any]:
        table = self._snapshot.table
        routes = sorted(
            ({"method": e.methods[0] if e.methods else "*", "template": e.template.raw, "service": e.service,
              "instances": list(e.instance_ids), "public": e.is_public} for e in table.entries),
            key=lambda r: (r["template"], r["method"]),
        )
        return {"index": table.index, "routes": routes,
                "conflicts": [f"{c.method} {c.template}: owned by {c.owner}, refused for {c.refused}" for c in table.conflicts]}

    # -- ASGI -----------------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "lifespan":
            await self._lifespan(receive, send)
            return
        if kind != "http":
            if kind == "websocket":
                await send({"type": "websocket.close", "code": 1011})
            return
        self.start()
        if not self._first_sync.is_set():
            # The first request after start waits (bounded) for the first catalog read.
            await asyncio.get_running_loop().run_in_executor(None, self._first_sync.wait, self.timeout)
        await self._handle(scope, receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self.start()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.aclose()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def aclose(self) -> None:
        """Stops discovery and closes pooled upstream connections."""
        self.stop()
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()

    def _http_client(self) -> Any:
        loop = asyncio.get_running_loop()
        if self._client is None or self._client_loop is not loop:
            httpx = self._httpx or _import_httpx()
            self._httpx = httpx
            self._client = httpx.AsyncClient(
                timeout=httpx.Timeout(self.timeout), trust_env=False, follow_redirects=False,
                limits=httpx.Limits(max_connections=None, max_keepalive_connections=256, keepalive_expiry=30),
            )
            self._client_loop = loop
        return self._client

    async def _local(self, send: Send, status: int, body: bytes, request_id: str, headers: Sequence[Tuple[bytes, bytes]] = (),
                     content_type: bytes = b"application/json", head: bool = False) -> None:
        out = [(b"content-type", content_type), (b"content-length", str(len(body)).encode()), (b"x-request-id", request_id.encode())]
        out.extend(headers)
        await send({"type": "http.response.start", "status": status, "headers": out})
        await send({"type": "http.response.body", "body": b"" if head else body})

    async def _handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        method = scope["method"].upper()
        head = method == "HEAD"
        in_headers: List[Tuple[bytes, bytes]] = [(k.lower(), v) for k, v in scope.get("headers", [])]
        request_id = next((v.decode("latin-1") for k, v in in_headers if k == b"x-request-id" and v), "") or str(uuid.uuid4())

        async def error(status: int, code: str, message: str, headers: Sequence[Tuple[bytes, bytes]] = ()) -> None:
            await self._local(send, status, _error_body(code, message), request_id, headers, head=head)

        raw = scope.get("raw_path") or scope["path"].encode("utf-8")
        try:
            path = raw.decode("utf-8")
        except UnicodeDecodeError:
            return await error(400, "bad_path", "the path is not valid UTF-8")
        root_path = scope.get("root_path") or ""
        if root_path and path.startswith(root_path):
            path = path[len(root_path):] or "/"
        if not path.startswith("/"):
            return await error(400, "bad_target", "only origin-form request targets ('/path?query') are supported")
        violation = path_violation(path)
        if violation:
            return await error(400, "bad_path", violation)

        if path == "/health":
            return await self._local(send, 200, json.dumps(self._health()).encode(), request_id, head=head)
        if path.startswith("/_tapper/"):
            pages = {"/_tapper/status": self.get_service_status, "/_tapper/routes": self._routes}
            page = pages.get(path)
            if page is None:
                return await error(404, "not_found", f"no gateway endpoint {path}")
            return await self._local(send, 200, json.dumps(page()).encode(), request_id, head=head)

        snapshot = self._snapshot
        resolution = snapshot.table.resolve(method, path)
        if isinstance(resolution, MethodNotAllowed):
            allow = ", ".join(resolution.allowed)
            return await error(405, "method_not_allowed", f"{method} is not allowed here; allowed: {allow}", [(b"allow", allow.encode())])
        if not isinstance(resolution, Match):
            return await error(404, "not_found", f"no service has a route for {method} {path}")
        entry = resolution.entry

        subject: Optional[str] = None
        body_override: Optional[bytes] = None
        if self.auth_provider is not None and not entry.is_public:
            from starlette.requests import Request
            from starlette.responses import Response

            request = Request(scope, receive)
            request.state.tapper_service = entry.service
            request.state.tapper_route = entry.template.raw
            try:
                verdict = self.auth_provider.authenticate(request)
                if inspect.isawaitable(verdict):
                    verdict = await asyncio.wait_for(verdict, timeout=self.timeout)
            except asyncio.TimeoutError:
                return await error(504, "auth_timeout", "the authentication provider did not decide in time")
            except Exception as e:  # noqa: BLE001 - a provider that fails refuses, and says why in the log
                status = getattr(e, "status_code", None)
                if isinstance(status, int) and 400 <= status < 600:
                    return await error(status, "unauthorized" if status == 401 else "forbidden" if status == 403 else "auth_error",
                                       str(getattr(e, "detail", "") or "refused by the authentication provider"),
                                       [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in (getattr(e, "headers", None) or {}).items()])
                logger.exception("tapper: the auth_provider raised; refusing %s %s", method, path)
                return await error(500, "auth_error", "the authentication provider failed")
            if isinstance(verdict, Response):
                await verdict(scope, receive, send)
                return
            if verdict is True or (isinstance(verdict, str) and verdict):
                subject = verdict if isinstance(verdict, str) else None
            else:
                return await error(401, "unauthorized", "this route needs credentials", [(b"www-authenticate", b'Bearer realm="tapper"')])
            if getattr(request, "_body", None) is not None:
                body_override = request._body  # the provider read the body: send what it read
            elif getattr(request, "_stream_consumed", False):
                return await error(500, "auth_error", "the authentication provider consumed the request body with stream(); use await request.body()")

        await self._proxy(scope, receive, send, snapshot, entry, method, path, in_headers, request_id, subject, body_override, error)

    def _balancer_for(self, service: str, inst: _Instance) -> LoadBalancer:
        if self._shared_balancer is not None:
            return self._shared_balancer
        b = self._balancers.get(service)
        name = inst.load_balancer if inst.load_balancer in BALANCERS else self._balancer_spec
        if b is None or getattr(b, "_tapper_name", None) != name:
            b = make_balancer(name)
            b._tapper_name = name  # type: ignore[attr-defined]
            self._balancers[service] = b
        return b

    def _upstream_headers(self, scope: Scope, in_headers: List[Tuple[bytes, bytes]], request_id: str, subject: Optional[str]) -> List[Tuple[bytes, bytes]]:
        named = set()
        for k, v in in_headers:
            if k == b"connection":
                named.update(t.strip().lower() for t in v.split(b","))
        host = b""
        out: List[Tuple[bytes, bytes]] = []
        for k, v in in_headers:
            if k in _HOP_BY_HOP or k in named or k.startswith(b"proxy-"):
                continue
            if k in (b"x-forwarded-for", b"x-forwarded-proto", b"x-forwarded-host", b"x-tapper-subject", b"x-request-id"):
                continue  # never believed from clients: replaced by what the gateway sees
            if k == b"host":
                host = v
            out.append((k, v))
        client = scope.get("client")
        if client:
            out.append((b"x-forwarded-for", str(client[0]).encode("latin-1")))
        out.append((b"x-forwarded-proto", str(scope.get("scheme", "http")).encode("latin-1")))
        if host:
            out.append((b"x-forwarded-host", host))
        out.append((b"x-request-id", request_id.encode("latin-1")))
        if subject:
            out.append((b"x-tapper-subject", subject.encode("utf-8")))
        return out

    async def _proxy(self, scope: Scope, receive: Receive, send: Send, snapshot: _Snapshot, entry: Any, method: str, path: str,
                     in_headers: List[Tuple[bytes, bytes]], request_id: str, subject: Optional[str], body_override: Optional[bytes],
                     error: Callable[..., Awaitable[None]]) -> None:
        now = time.monotonic()
        candidates = [snapshot.instances[(entry.service, i)] for i in entry.instance_ids if (entry.service, i) in snapshot.instances]
        candidates = [c for c in candidates if c.routable(now)]
        if not candidates:
            return await error(503, "no_healthy_instance", f"service '{entry.service}' has no healthy instance right now", [(b"retry-after", b"1")])

        target = path
        if entry.prefix_segments:
            parts = path[1:].split("/")
            target = "/" + "/".join(parts[entry.prefix_segments:])
        query = scope.get("query_string") or b""
        if query:
            target += "?" + query.decode("latin-1")
        headers = self._upstream_headers(scope, in_headers, request_id, subject)
        has_body = body_override is not None or any(
            (k == b"content-length" and v.strip() not in (b"", b"0")) or k == b"transfer-encoding" for k, v in in_headers)
        if body_override is not None:
            headers = [(k, v) for k, v in headers if k != b"content-length"] + [(b"content-length", str(len(body_override)).encode())]
        body = _BodyStream(receive) if has_body and body_override is None else None

        httpx = self._httpx or _import_httpx()
        self._httpx = httpx
        client = self._http_client()
        tried: List[_Instance] = []
        broke_once = False
        last_timeout = False
        while True:
            remaining = [c for c in candidates if c not in tried]
            if not remaining:
                break
            inst = remaining[0]
            balancer = self._balancer_for(entry.service, inst)
            chosen = balancer.select_instance([c.view for c in remaining])
            if chosen is None:
                return await error(503, "no_healthy_instance", f"the load balancer chose no instance of '{entry.service}'", [(b"retry-after", b"1")])
            inst = next((c for c in remaining if c.view is chosen or c.view.instance_id == getattr(chosen, "instance_id", None)), None)
            if inst is None:
                raise RuntimeError(f"tapper: {type(balancer).__name__}.select_instance returned {chosen!r}, which is not one of the instances it was given")
            tried.append(inst)
            if body_override is not None:
                content: Any = body_override
            elif body is not None:
                content = body.fresh()
                if content is None:
                    break  # a large body already streamed to a failed instance is never replayed
            else:
                content = None
            request = httpx.Request(method, inst.view.url + target, headers=headers, content=content)
            inst.view.in_flight += 1
            balancer.request_started(inst.view)
            try:
                try:
                    response = await client.send(request, stream=True)
                except _ClientGone:
                    return
                except (httpx.ConnectError, httpx.ConnectTimeout) as e:
                    # Never reached the instance: any method goes to another one.
                    last_timeout = isinstance(e, httpx.ConnectTimeout)
                    self._failed(inst, snapshot)
                    continue
                except httpx.TimeoutException:
                    self._failed(inst, snapshot)
                    return await error(504, "upstream_timeout", "the upstream instance did not answer in time")
                except (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError, httpx.CloseError):
                    # The connection broke before any response byte: an idempotent request is
                    # retried once on another instance; nothing else is.
                    self._failed(inst, snapshot)
                    last_timeout = False
                    if method in _IDEMPOTENT and not broke_once:
                        broke_once = True
                        continue
                    return await error(502, "upstream_error", "the upstream instance closed the connection before answering")
                await self._relay(send, response, inst, request_id, snapshot)
                return
            finally:
                inst.view.in_flight -= 1
                balancer.request_finished(inst.view)
        status = 504 if last_timeout else 502
        await error(status, "upstream_unavailable", f"no instance of '{entry.service}' could be reached")

    async def _relay(self, send: Send, response: Any, inst: _Instance, request_id: str, snapshot: _Snapshot) -> None:
        httpx = self._httpx
        try:
            named = set()
            for k, v in response.headers.raw:
                if k.lower() == b"connection":
                    named.update(t.strip().lower() for t in v.split(b","))
            out = [(k.lower(), v) for k, v in response.headers.raw
                   if k.lower() not in _HOP_BY_HOP and k.lower() not in named and not k.lower().startswith(b"proxy-")
                   and k.lower() not in _REPLACED_RESPONSE_HEADERS]
            out.append((b"x-request-id", request_id.encode("latin-1")))
            out.append((b"x-tapper-instance", inst.view.instance_id.encode("latin-1")))
            if response.status_code >= 500:
                self._failed(inst, snapshot)
            else:
                self._succeeded(inst)
            await send({"type": "http.response.start", "status": response.status_code, "headers": out})
            try:
                async for chunk in response.aiter_raw():
                    if chunk:
                        await send({"type": "http.response.body", "body": chunk, "more_body": True})
            except httpx.HTTPError as e:
                # Too late for an error status: end the response; the client sees a short body.
                # Raising makes the server abort the connection, so the client cannot mistake the
                # short body for a whole one.
                logger.warning("tapper: %s/%s broke off its response: %s", inst.view.service, inst.view.instance_id, e)
                self._failed(inst, snapshot)
                raise
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            await response.aclose()
            # httpx keeps response cookies in the client's jar; a gateway must not collect them.
            self._client.cookies.clear() if self._client is not None else None
