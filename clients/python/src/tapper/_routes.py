"""Which of an app's routes are published, and in what form the registry accepts them."""

from __future__ import annotations

import logging
import re
from typing import Any, Dict, Iterator, List, Optional, Set, Tuple

from starlette.routing import Route, WebSocketRoute

logger = logging.getLogger("tapper")

# Starlette's built-in convertors; the registry (and the gateway's router) know exactly these.
KNOWN_CONVERTORS = ("str", "int", "float", "uuid", "path")
_PARAM_RE = re.compile(r"\{([^{}:]*)(?::([^{}]*))?\}")
_IDENT_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*", re.ASCII)
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f-\x9f]")

try:  # FastAPI >= 0.1xx keeps included routers lazily; this walks them like the OpenAPI generator does.
    from fastapi.routing import iter_route_contexts as _iter_route_contexts
except Exception:  # pragma: no cover - older FastAPI flattens included routers into app.routes
    _iter_route_contexts = None

try:
    from fastapi.routing import APIRoute as _APIRoute
except Exception:  # pragma: no cover - plain Starlette
    _APIRoute = None


def iter_routes(app: Any) -> Iterator[Tuple[Any, Any]]:
    """Yields (route_like, original_route) for every route of the app, with included routers expanded.

    `route_like` has the effective `path`, `methods`, `endpoint` and `include_in_schema`.
    """
    routes = list(getattr(app.router, "routes", []) or [])
    if _iter_route_contexts is not None:
        for ctx in _iter_route_contexts(routes):
            yield ctx, getattr(ctx, "original_route", ctx)
    else:  # pragma: no cover
        for r in routes:
            yield r, r


def has_route(app: Any, path: str) -> bool:
    for ctx, _ in iter_routes(app):
        if getattr(ctx, "path", None) == path:
            return True
    return False


def endpoint_in_app(app: Any, func: Any) -> bool:
    for ctx, original in iter_routes(app):
        if getattr(ctx, "endpoint", None) is func or getattr(original, "endpoint", None) is func:
            return True
    return False


def _clean_template(path: str) -> Tuple[Optional[str], Optional[str]]:
    """Returns (template, None) if the registry will accept `path`, possibly after mapping unknown
    convertors to `str`, or (None, reason) if the route cannot be published."""
    if not path.startswith("/"):
        return None, "does not start with '/'"
    if _CONTROL_RE.search(path) or any(c in path for c in " ?#\\"):
        return None, "contains a space, '?', '#', '\\' or a control character"
    segments = path[1:].split("/")
    out: List[str] = []
    names: Set[str] = set()
    for i, seg in enumerate(segments):
        last = i == len(segments) - 1
        if seg == "":
            if not last:
                return None, "has an empty path segment ('//')"
            out.append(seg)
            continue
        if seg in (".", ".."):
            return None, "has a '.' or '..' segment"
        if "{" not in seg and "}" not in seg:
            out.append(seg)
            continue
        m = _PARAM_RE.fullmatch(seg)
        if not m:
            return None, f"has a parameter that is not a whole path segment ({seg!r}); the gateway cannot route it"
        name, conv = m.group(1), m.group(2)
        if not _IDENT_RE.fullmatch(name):
            return None, f"has a parameter name {name!r} that is not an identifier"
        if name in names:
            return None, f"repeats the parameter {name!r}"
        names.add(name)
        if conv is None:
            out.append("{%s}" % name)
            continue
        if conv not in KNOWN_CONVERTORS:
            logger.warning(
                "tapper: route %s uses the custom convertor %r; publishing it as {%s} (one path segment)",
                path, conv, name,
            )
            conv = "str"
        if conv == "path" and not last:
            return None, "has a {name:path} parameter that is not the last segment"
        out.append("{%s:%s}" % (name, conv))
    return "/" + "/".join(out), None


def _shape(template: str) -> str:
    def erase(m: "re.Match[str]") -> str:
        return "{:%s}" % (m.group(2) or "str")

    return _PARAM_RE.sub(erase, template)


def public(endpoint: Any) -> Any:
    """Marks a route function as public: the gateway serves it without authentication
    (``--auth api-key`` / ``--auth jwt``). Put it under the FastAPI route decorator::

        @app.get("/login")
        @public
        def login(): ...

    A route is public too when its OpenAPI operation says so: ``openapi_extra={"x-tapper-public": True}``,
    or OpenAPI's own ``openapi_extra={"security": []}``.
    """
    endpoint.__tapper_public__ = True
    return endpoint


def _is_public(ctx: Any) -> bool:
    if getattr(getattr(ctx, "endpoint", None), "__tapper_public__", False):
        return True
    extra = getattr(ctx, "openapi_extra", None)
    if isinstance(extra, dict):
        flag = extra.get("x-tapper-public")
        if isinstance(flag, bool):
            return flag
        security = extra.get("security")
        if isinstance(security, list):
            return not security
    return False


def _rate_limit(ctx: Any) -> Optional[str]:
    """A route's own rate limit: ``openapi_extra={"x-tapper-rate-limit": "10/s"}``."""
    extra = getattr(ctx, "openapi_extra", None)
    if isinstance(extra, dict):
        value = extra.get("x-tapper-rate-limit")
        if isinstance(value, str) and value:
            return value
    return None


def collect_routes(app: Any, prefix: str, health_endpoint: str) -> List[Dict[str, Any]]:
    """The routes to publish: FastAPI/Starlette routes with include_in_schema=True, and every
    WebSocket route (``@app.websocket``, published as ``GET`` with ``"websocket": true``; the gateway
    tunnels its upgrade), minus the docs, OpenAPI and health routes and anything the gateway reserves. Routes with the same template are
    merged into one entry with the union of their methods (public ones apart from the others)."""
    excluded = {health_endpoint}
    for attr in ("docs_url", "redoc_url", "openapi_url", "swagger_ui_oauth2_redirect_url"):
        value = getattr(app, attr, None)
        if isinstance(value, str) and value:
            excluded.add(value)
    docs_url = getattr(app, "docs_url", None)
    if isinstance(docs_url, str) and docs_url:
        excluded.add(docs_url + "/oauth2-redirect")

    merged: Dict[str, Dict[str, Any]] = {}
    order: List[str] = []
    for ctx, original in iter_routes(app):
        websocket = isinstance(original, WebSocketRoute) or type(original).__name__ == "APIWebSocketRoute"
        if not websocket and not isinstance(original, Route):  # Mount, Host, frontend groups, ...
            continue
        # WebSocket routes never appear in OpenAPI, so include_in_schema does not apply to them.
        if not websocket and not getattr(ctx, "include_in_schema", False):
            continue
        path = getattr(ctx, "path", None)
        if not isinstance(path, str) or path in excluded:
            continue
        template, problem = _clean_template(path)
        if template is None:
            logger.warning("tapper: not publishing route %s: it %s", path, problem)
            continue
        public = prefix + template
        first = public[1:].split("/", 1)[0]
        if public == "/health" or first == "_tapper":
            logger.warning(
                "tapper: not publishing route %s: %s is reserved for the gateway (/health and /_tapper/)",
                path, public,
            )
            continue
        raw_methods = None if websocket else getattr(ctx, "methods", None)
        if websocket:
            methods = {"GET"}
            any_method = False
        elif raw_methods:
            methods = {str(m).upper() for m in raw_methods}
            is_api_route = _APIRoute is not None and isinstance(original, _APIRoute)
            if not is_api_route and "GET" in methods:
                methods.discard("HEAD")  # Starlette adds HEAD to every GET route implicitly
            if not methods:
                continue
            any_method = False
        else:
            methods = set()
            any_method = True  # e.g. an HTTPEndpoint class: any method
        is_public = _is_public(ctx)
        # A WebSocket route and an HTTP GET route on one path merge into one GET route (a plain
        # GET and an upgrade both reach the app there).
        rate_limit = None if websocket else _rate_limit(ctx)
        # Routes with their own rate limit stay apart from the others of their path.
        key = _shape(template) + (" public" if is_public else "") + (f" limit {rate_limit}" if rate_limit else "")
        entry = merged.get(key)
        if entry is None:
            merged[key] = {"path": template, "methods": methods, "any": any_method, "public": is_public, "websocket": websocket, "rate_limit": rate_limit}
            order.append(key)
        else:
            entry["methods"] |= methods
            entry["any"] = entry["any"] or any_method
            entry["websocket"] = entry["websocket"] or websocket
    out: List[Dict[str, Any]] = []
    for key in order:
        entry = merged[key]
        methods_list: List[str] = [] if entry["any"] else sorted(entry["methods"])
        route: Dict[str, Any] = {"methods": methods_list, "path": entry["path"]}
        if entry["public"]:
            route["public"] = True
        if entry["websocket"]:
            route["websocket"] = True
        if entry["rate_limit"]:
            route["rate_limit"] = entry["rate_limit"]
        out.append(route)
    return out
