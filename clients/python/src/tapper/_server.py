"""Finding the server that runs the app (uvicorn) and the address it listens on."""

from __future__ import annotations

import asyncio
import gc
import socket
import sys
from typing import Any, List, Optional, Tuple


def _server_class() -> Optional[type]:
    module = sys.modules.get("uvicorn.server")  # never import uvicorn ourselves
    return getattr(module, "Server", None) if module is not None else None


def find_uvicorn_server() -> Optional[Any]:
    """The uvicorn `Server` running the current event loop, if any.

    Looked up first through the loop's tasks (uvicorn's main task is `Server.serve()`, so its
    frame holds the server), then, for embedders such as gunicorn's worker, with a gc scan.
    Must be called from the event loop thread.
    """
    cls = _server_class()
    if cls is None:
        return None
    try:
        tasks = asyncio.all_tasks()
    except RuntimeError:
        tasks = set()
    for task in tasks:
        coro: Any = task.get_coro()
        for _ in range(16):  # follow the await chain a little way
            frame = getattr(coro, "cr_frame", None)
            if frame is None:
                break
            candidate = frame.f_locals.get("self")
            if isinstance(candidate, cls):
                return candidate
            coro = getattr(coro, "cr_await", None)
            if coro is None:
                break
    # Servers that have been told to exit (an earlier run in this process) are not ours.
    servers = [o for o in gc.get_objects() if isinstance(o, cls) and not getattr(o, "should_exit", False)]
    if len(servers) == 1:
        return servers[0]
    # Several servers in one process (tests, embedders): prefer the one that has not started yet,
    # since the app's lifespan runs before its server binds.
    pending = [s for s in servers if not getattr(s, "started", False) and not getattr(s, "should_exit", False)]
    return pending[0] if len(pending) == 1 else None


def _sockets(server: Any) -> List[Any]:
    out: List[Any] = []
    for srv in getattr(server, "servers", None) or []:
        out.extend(getattr(srv, "sockets", None) or [])
    return out


def listen_address(server: Any) -> Optional[Tuple[str, str, int, bool]]:
    """(url_host, bound_host, port, is_ssl) for a started uvicorn server, or None for unix sockets.

    A wildcard bind (0.0.0.0, ::) is reached through loopback: 127.0.0.1 (or [::1] for a v6-only
    socket).
    """
    config = getattr(server, "config", None)
    is_ssl = bool(getattr(config, "is_ssl", False) or getattr(config, "ssl", None))
    inet = [s for s in _sockets(server) if getattr(s, "family", None) in (socket.AF_INET, socket.AF_INET6)]
    inet.sort(key=lambda s: 0 if s.family == socket.AF_INET else 1)
    for sock in inet:
        try:
            addr = sock.getsockname()
        except OSError:
            continue
        host, port = addr[0], int(addr[1])
        if sock.family == socket.AF_INET:
            url_host = "127.0.0.1" if host == "0.0.0.0" else host
        else:
            if host in ("::", "::0"):
                v6only = True
                try:
                    v6only = bool(sock.getsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY))
                except (OSError, AttributeError):
                    pass
                url_host = "[::1]" if v6only else "127.0.0.1"
            elif host.startswith("::ffff:") and "." in host:
                url_host = host[len("::ffff:"):]
            else:
                url_host = f"[{host.split('%', 1)[0]}]"
        return url_host, host, port, is_ssl
    if _sockets(server):
        return None  # only unix sockets
    # No asyncio servers to look at (unusual): fall back to the configuration.
    if config is None or getattr(config, "uds", None) or getattr(config, "fd", None) is not None:
        return None
    host = str(getattr(config, "host", "127.0.0.1"))
    port = int(getattr(config, "port", 8000))
    if port == 0:
        return None
    url_host = {"0.0.0.0": "127.0.0.1", "::": "[::1]", "": "127.0.0.1"}.get(host, host)
    if ":" in url_host and not url_host.startswith("["):
        url_host = f"[{url_host}]"
    return url_host, host, port, is_ssl
