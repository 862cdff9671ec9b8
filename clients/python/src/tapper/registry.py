"""Registry backends: where `Service` announces instances and where `TapperGateway` reads the catalog.

- ``RegistryBackend``: the interface. Extend it to keep the catalog somewhere else.
- ``HTTPRegistry``: a Tapper registry over its v1 HTTP API (`tapper registry serve`, or the registry
  embedded in `tapper gateway serve`). The default everywhere.
- ``InMemoryRegistry``: a registry inside this process, for tests and single-process development
  (``Service(registry=r)`` and ``TapperGateway(registry=r)`` with the same object).

Every method is blocking: tapper calls them from its own threads, never from the event loop.
Catalogs are dicts in the shape of the registry's ``GET /v1/catalog`` body:
``{"index": N, "services": [{"name": ..., "instances": [record, ...]}]}``, where a record is the
registration's fields plus ``service``, ``instance_id``, ``create_index`` and ``index``.
"""

from __future__ import annotations

import copy
import threading
import time
import urllib.parse
from typing import Any, Dict, List, Optional, Tuple

from ._names import validate_instance_id, validate_service_name
from ._registry import RegistryClient, RegistryError, RegistryUnavailable, check_registry_url

Catalog = Dict[str, Any]


class RegistryBackend:
    """The interface of a registry. Subclasses implement all five methods; each may block.

    Errors: raise ``RegistryUnavailable`` when the registry cannot be reached (tapper retries with
    back-off) and ``RegistryError`` when it refuses (tapper logs the message).
    """

    #: Human-readable location, used in log lines.
    description = "registry"

    def register(self, service: str, instance_id: str, registration: Dict[str, Any]) -> Tuple[bool, Dict[str, Any]]:
        """Registers or updates an instance (idempotent). Returns (created, stored record)."""
        raise NotImplementedError

    def heartbeat(self, service: str, instance_id: str) -> bool:
        """Renews the instance's TTL. False when the registry does not know it (register again)."""
        raise NotImplementedError

    def deregister(self, service: str, instance_id: str) -> bool:
        """Removes the instance. False when the registry did not know it."""
        raise NotImplementedError

    def catalog(self, index: Optional[int] = None, wait: float = 0.0) -> Catalog:
        """The whole catalog. With ``index``, blocks until the change index passes it or ``wait``
        seconds have passed (a Consul-style blocking query), then returns the catalog either way."""
        raise NotImplementedError

    def close(self) -> None:
        """Releases resources (optional)."""


class HTTPRegistry(RegistryBackend):
    """The Tapper registry's v1 HTTP API (standard library only).

    ``url`` defaults to ``TAPPER_REGISTRY_URL`` (or the original's ``TAPER_REGISTRY_URL``), then
    ``http://127.0.0.1:8001``; ``token`` to ``TAPPER_TOKEN``. Both are read when the object is made.
    """

    def __init__(self, url: Optional[str] = None, token: Optional[str] = None, timeout: float = 3.0) -> None:
        from ._service import DEFAULT_REGISTRY_URL, _env

        self.url = check_registry_url(url or _env("TAPPER_REGISTRY_URL", "TAPER_REGISTRY_URL") or DEFAULT_REGISTRY_URL)
        self.token = token if token is not None else _env("TAPPER_TOKEN")
        self.timeout = timeout
        self.description = f"registry {self.url}"
        self._client = RegistryClient(self.url, self.token, timeout)

    def __repr__(self) -> str:
        return f"HTTPRegistry({self.url!r})"

    def register(self, service: str, instance_id: str, registration: Dict[str, Any]) -> Tuple[bool, Dict[str, Any]]:
        return self._client.register(service, instance_id, registration)

    def heartbeat(self, service: str, instance_id: str) -> bool:
        return self._client.heartbeat(service, instance_id)

    def deregister(self, service: str, instance_id: str) -> bool:
        return self._client.deregister(service, instance_id)

    def catalog(self, index: Optional[int] = None, wait: float = 0.0) -> Catalog:
        path = "/v1/catalog"
        timeout = self.timeout
        if index is not None and wait > 0:
            path += "?" + urllib.parse.urlencode({"index": int(index), "wait": f"{max(1, int(wait))}s"})
            timeout = self.timeout + max(1, int(wait))
        status, payload = self._client.request("GET", path, timeout=timeout)
        if status != 200 or not isinstance(payload, dict):
            raise self._client._error(status, payload)
        return payload


class InMemoryRegistry(RegistryBackend):
    """A registry inside this process: TTLs, change index, blocking queries and route ownership
    (409 for a method and template another service owns), like ``tapper registry serve --backend memory``.

    Thread-safe. Not shared between processes: several uvicorn workers each get their own.
    """

    description = "in-memory registry"

    def __init__(self, clock: Any = time.monotonic) -> None:
        self._clock = clock
        self._cond = threading.Condition()
        self._index = 0
        # (service, instance_id) -> [record, deadline]
        self._instances: Dict[Tuple[str, str], List[Any]] = {}

    def __repr__(self) -> str:
        return f"InMemoryRegistry({len(self._instances)} instances)"

    def _expire(self) -> None:
        now = self._clock()
        gone = [k for k, (_, deadline) in self._instances.items() if deadline <= now]
        for k in gone:
            del self._instances[k]
        if gone:
            self._bump()

    def _bump(self) -> None:
        self._index += 1
        self._cond.notify_all()

    def _check_routes(self, service: str, registration: Dict[str, Any]) -> None:
        from ._routing import RouteTableBuilder, RouteTemplate

        builder = RouteTableBuilder()
        ordered = sorted(self._instances.values(), key=lambda v: v[0]["create_index"])
        for record, _ in ordered:
            for route in record.get("routes", []):
                builder.add(record["service"], record["instance_id"], RouteTemplate.parse(record.get("prefix", "") + route["path"]),
                            route.get("methods", []))
        prefix = registration.get("prefix", "") or ""
        for route in registration.get("routes", []) or []:
            try:
                template = RouteTemplate.parse(prefix + route.get("path", ""))
            except ValueError as e:
                raise RegistryError(400, "invalid", str(e), "routes") from None
            before = len(builder.conflicts)
            builder.add(service, "?", template, [str(m).upper() for m in route.get("methods", []) or []])
            if len(builder.conflicts) > before:
                c = builder.conflicts[-1]
                raise RegistryError(409, "conflict", f"{c.method} {c.template} is owned by service '{c.owner}'", "routes")

    def register(self, service: str, instance_id: str, registration: Dict[str, Any]) -> Tuple[bool, Dict[str, Any]]:
        try:
            validate_service_name(service)
            validate_instance_id(instance_id)
        except ValueError as e:
            raise RegistryError(400, "invalid", str(e)) from None
        if not isinstance(registration.get("url"), str):
            raise RegistryError(400, "invalid", "url is required", "url")
        with self._cond:
            self._expire()
            key = (service, instance_id)
            existing = self._instances.pop(key, None)
            try:
                self._check_routes(service, registration)
            finally:
                if existing is not None:
                    self._instances[key] = existing
            self._index += 1
            record = copy.deepcopy(dict(registration))
            for route in record.get("routes", []) or []:
                route["methods"] = sorted({str(m).upper() for m in route.get("methods", []) or []})
            record.update(
                service=service, instance_id=instance_id, index=self._index,
                create_index=existing[0]["create_index"] if existing else self._index,
            )
            record.setdefault("ttl_seconds", 30.0)
            self._instances[key] = [record, self._clock() + float(record["ttl_seconds"])]
            self._cond.notify_all()
            return existing is None, copy.deepcopy(record)

    def heartbeat(self, service: str, instance_id: str) -> bool:
        with self._cond:
            self._expire()
            entry = self._instances.get((service, instance_id))
            if entry is None:
                return False
            entry[1] = self._clock() + float(entry[0]["ttl_seconds"])
            return True

    def deregister(self, service: str, instance_id: str) -> bool:
        with self._cond:
            self._expire()
            if self._instances.pop((service, instance_id), None) is None:
                return False
            self._bump()
            return True

    def _snapshot(self) -> Catalog:
        services: Dict[str, List[Dict[str, Any]]] = {}
        for (service, _), (record, _) in sorted(self._instances.items()):
            services.setdefault(service, []).append(copy.deepcopy(record))
        return {"index": self._index, "services": [{"name": n, "instances": i} for n, i in sorted(services.items())]}

    def catalog(self, index: Optional[int] = None, wait: float = 0.0) -> Catalog:
        deadline = time.monotonic() + max(0.0, wait)
        with self._cond:
            self._expire()
            while index is not None and self._index <= index:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                # Wake at least once a second so expiries are noticed without another write.
                self._cond.wait(min(remaining, 1.0))
                self._expire()
            return self._snapshot()


__all__ = ["RegistryBackend", "HTTPRegistry", "InMemoryRegistry", "RegistryError", "RegistryUnavailable", "Catalog"]
