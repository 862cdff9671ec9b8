"""WebSocket (and other upgraded connections) and streamed responses through a real gateway.

Real peers only: `tapper gateway serve` (embedded registry), FastAPI apps under uvicorn that
register themselves with @Service, raw TCP servers for what FastAPI cannot show (half-close), and
the `websockets` client library. A binary without `gateway serve` fails these tests.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
import re
import resource
import signal
import socket
import subprocess
import threading
import time
from typing import Dict, List, Optional, Tuple

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from support import TAPPER_BIN, Procs, clean_env, free_port, get_json, http, read_to_end, wait_for
from test_gateway import Gateway, gateway, gateway_available, start_gateway  # noqa: F401 - fixtures

WS_APP = """\
import asyncio
import time

from fastapi import FastAPI, WebSocket, WebSocketDisconnect
from fastapi.responses import StreamingResponse
from tapper import Service

app = Service(name="chat", version="1.0.0", ttl=3)(FastAPI())
closes = []


@app.websocket("/ws/{room}")
async def ws(websocket: WebSocket, room: str):
    offered = [p.strip() for p in websocket.headers.get("sec-websocket-protocol", "").split(",") if p.strip()]
    if room == "forbidden":
        await websocket.close(code=1008)  # before accept: uvicorn answers the handshake with 403
        return
    await websocket.accept(subprotocol="chat.v2" if "chat.v2" in offered else None)
    try:
        while True:
            msg = await websocket.receive()
            if msg["type"] == "websocket.disconnect":
                closes.append(msg.get("code"))
                return
            text = msg.get("text")
            if text is not None:
                if text.startswith("close:"):
                    await websocket.close(code=int(text[6:]), reason="asked")
                    return
                if text == "room":
                    await websocket.send_text(room)
                    continue
                await websocket.send_text(text)
            else:
                await websocket.send_bytes(msg["bytes"])
    except WebSocketDisconnect as e:
        closes.append(e.code)


@app.get("/closes")
def get_closes():
    return {"codes": closes}


@app.get("/events")
async def events(n: int = 20, every_ms: int = 50):
    async def gen():
        for i in range(n):
            yield f"id: {i}\\ndata: {time.time():.6f}\\n\\n"
            await asyncio.sleep(every_ms / 1000)

    return StreamingResponse(gen(), media_type="text/event-stream")
"""

PLAIN_APP = """\
from fastapi import FastAPI
from tapper import Service

app = Service(name="plain", version="1.0.0", ttl=3)(FastAPI())


@app.get("/plain/ping")
def ping():
    return {"pong": True}
"""


def raise_nofile(n: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(max(soft, n), hard) if hard != resource.RLIM_INFINITY else max(soft, n)
    if want > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))


def start_chat(gw: Gateway, procs: Procs, name: str = "chat") -> None:
    raise_nofile(8192)  # uvicorn inherits it: the many-tunnels test opens 1,000 WebSockets
    procs.uvicorn(WS_APP, name, env=gw.service_env(), extra_args=["--ws-max-size", str(32 << 20)])
    wait_for(lambda: ws_ready(gw), 20, "a WebSocket through the gateway to reach the chat app")


def ws_ready(gw: Gateway) -> bool:
    try:
        with connect(f"ws://127.0.0.1:{gw.port}/ws/probe", open_timeout=2) as ws:
            ws.send("room")
            return ws.recv(timeout=2) == "probe"
    except Exception:  # noqa: BLE001 - not routable yet
        return False


def metric(gw: Gateway, name: str, labels: str = "") -> float:
    with http() as c:
        text = c.get(gw.url + "/_tapper/metrics").text
    total = 0.0
    found = False
    for line in text.splitlines():
        if line.startswith(name) and (not labels or labels in line):
            rest = line[len(name):]
            if rest[:1] in (" ", "{"):
                total += float(line.rsplit(" ", 1)[1])
                found = True
    if not found:
        raise AssertionError(f"metric {name} {labels} not exposed:\n{text}")
    return total


def test_websocket_echo_text_binary_large_subprotocol_ping_and_close_codes(gateway: Gateway, procs: Procs) -> None:
    start_chat(gateway, procs)
    url = f"ws://127.0.0.1:{gateway.port}/ws/lobby"
    with connect(url, subprotocols=["chat.v1", "chat.v2"], max_size=None) as ws:
        assert ws.subprotocol == "chat.v2"
        assert ws.response.headers.get("X-Tapper-Instance", "").startswith("chat/")
        ws.send("héllo")
        assert ws.recv(timeout=5) == "héllo"
        ws.send(b"\x00\x01\xfe\xff")
        assert ws.recv(timeout=5) == b"\x00\x01\xfe\xff"
        big = os.urandom(8 << 20)
        ws.send(big)
        got = ws.recv(timeout=30)
        assert got == big
        assert ws.ping(b"are-you-there").wait(5), "no pong through the tunnel"
        ws.send("room")
        assert ws.recv(timeout=5) == "lobby"
    # The client's close code reached the app.
    wait_for(lambda: 1000 in get_json(gateway.url + "/closes")["codes"], 10, "the app to see the client's close (1000)")

    with connect(url) as ws:
        ws.close(code=4001, reason="client says bye")
    wait_for(lambda: 4001 in get_json(gateway.url + "/closes")["codes"], 10, "the app to see close code 4001")

    # The app's close code reaches the client.
    with connect(url) as ws:
        ws.send("close:4002")
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=5)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4002 and closed.value.rcvd.reason == "asked"

    # Each tunnel left an access-log line with its bytes each way, and the metrics count them.
    def tunnel_lines() -> List[str]:
        return [l for l in gateway.proc.stdout.splitlines() if "status=101" in l and "tunnel=1" in l]

    wait_for(lambda: len(tunnel_lines()) >= 4, 10, "an access-log line per ended tunnel")
    big_line = next(l for l in tunnel_lines() if "path=/ws/lobby" in l and int(re.search(r" bytes_in=(\d+)", l).group(1)) > 8 << 20)
    assert int(re.search(r" bytes=(\d+)", big_line).group(1)) > 8 << 20
    assert "route=/ws/{room}" in big_line and "outcome=" in big_line
    assert metric(gateway, "tapper_tunnels_total") >= 4
    assert metric(gateway, "tapper_tunnel_bytes_total", 'direction="client_to_upstream"') > 8 << 20
    assert metric(gateway, "tapper_tunnel_bytes_total", 'direction="upstream_to_client"') > 8 << 20
    wait_for(lambda: metric(gateway, "tapper_tunnels_open") == 0, 10, "tapper_tunnels_open to go back to 0")


def raw_handshake(port: int, path: str, connection: str, extra: str = "") -> Tuple[socket.socket, bytes]:
    key = base64.b64encode(os.urandom(16)).decode()
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.sendall(
        (f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: {connection}\r\nUpgrade: websocket\r\n"
         f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n{extra}\r\n").encode()
    )
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = s.recv(65536)
        if not chunk:
            break
        head += chunk
    return s, head + b"|" + key.encode()


def test_firefox_style_connection_header_upgrades_and_a_refused_handshake_is_an_ordinary_response(gateway: Gateway, procs: Procs) -> None:
    start_chat(gateway, procs)
    # Firefox sends `Connection: keep-alive, Upgrade`; any order and case must work.
    for connection in ("keep-alive, Upgrade", "UPGRADE", "Upgrade,keep-alive"):
        s, raw = raw_handshake(gateway.port, "/ws/ff", connection)
        head, key = raw.rsplit(b"|", 1)
        with s:
            text = head.decode("latin-1")
            assert text.startswith("HTTP/1.1 101"), text
            accept = base64.b64encode(hashlib.sha1(key + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest()).decode()
            assert re.search(r"(?im)^sec-websocket-accept: " + re.escape(accept) + r"\r$", text), text
            assert re.search(r"(?im)^upgrade: websocket\r$", text), text
            assert re.search(r"(?im)^connection: upgrade\r$", text), text
            # A masked text frame "room" gets the room name back, unmasked.
            mask = os.urandom(4)
            payload = bytes(b ^ mask[i % 4] for i, b in enumerate(b"room"))
            s.sendall(bytes([0x81, 0x80 | 4]) + mask + payload)
            frame = s.recv(64)
            assert frame[:2] == bytes([0x81, 2]) and frame[2:4] == b"ff", frame

    # The app refuses the handshake (403): an ordinary response, and the connection goes on.
    s, raw = raw_handshake(gateway.port, "/ws/forbidden", "keep-alive, Upgrade")
    with s:
        head = raw.rsplit(b"|", 1)[0].decode("latin-1")
        assert head.startswith("HTTP/1.1 403"), head
        s.sendall(b"GET /closes HTTP/1.1\r\nHost: x\r\n\r\n")
        reply = b""
        while b"codes" not in reply:
            chunk = s.recv(65536)
            assert chunk, f"connection closed after the refused upgrade: {reply!r}"
            reply += chunk
        assert reply.split(b"\r\n\r\n")[0].count(b"200 OK") >= 1 or b"HTTP/1.1 200" in reply

    # h2c is not tunnelled: the request is answered over HTTP/1.1 as if no upgrade was asked.
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=5) as s:
        s.sendall(b"GET /closes HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n")
        reply = b""
        while b"codes" not in reply:
            chunk = s.recv(65536)
            assert chunk, reply
            reply += chunk
        assert reply.startswith(b"HTTP/1.1 200"), reply


def test_fastapi_websocket_routes_are_published_and_route_test_says_so(gateway: Gateway, procs: Procs) -> None:
    start_chat(gateway, procs)
    routes = {r["path"]: r for i in gateway.registry.instances("chat") for r in i["routes"]}
    assert routes["/ws/{room}"].get("websocket") is True and routes["/ws/{room}"]["methods"] == ["GET"]
    assert "websocket" not in routes["/events"]
    out = subprocess.run(
        [str(TAPPER_BIN), "route", "test", "GET", "/ws/abc", "--registry", gateway.registry_url, "--json"],
        capture_output=True, text=True, timeout=30, env=clean_env(),
    )
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["service"] == "chat" and report["template"] == "/ws/{room}" and report["websocket"] is True
    human = subprocess.run(
        [str(TAPPER_BIN), "route", "test", "GET", "/ws/abc", "--registry", gateway.registry_url],
        capture_output=True, text=True, timeout=30, env=clean_env(),
    )
    assert "websocket" in human.stdout.lower(), human.stdout


def test_service_register_ws_route_from_the_cli(gateway: Gateway, procs: Procs) -> None:
    port = free_port()
    app = WS_APP.replace('app = Service(name="chat", version="1.0.0", ttl=3)(FastAPI())', "app = FastAPI()")
    procs.uvicorn(app, "cli-chat", port=port)
    reg = subprocess.run(
        [str(TAPPER_BIN), "service", "register", "cli-chat", "--url", f"http://127.0.0.1:{port}", "--route", "GET /ws/{room}",
         "--route", "GET /closes", "--registry", gateway.registry_url],
        capture_output=True, text=True, timeout=30, env=clean_env(),
    )
    assert reg.returncode == 0, reg.stderr
    wait_for(lambda: ws_ready(gateway), 20, "the CLI-registered WebSocket route to work through the gateway")


def test_instance_dying_mid_tunnel_closes_its_clients_only(gateway: Gateway, procs: Procs) -> None:
    start_chat(gateway, procs)
    procs.uvicorn(PLAIN_APP, "plain", env=gateway.service_env())
    wait_for(lambda: http().get(gateway.url + "/plain/ping").status_code == 200, 20, "the plain app through the gateway")
    chat = next(p for p in procs.all if p.name.endswith("chat"))
    tunnels = [connect(f"ws://127.0.0.1:{gateway.port}/ws/doomed{i}") for i in range(3)]
    for ws in tunnels:
        ws.send("x")
        assert ws.recv(timeout=5) == "x"
    os.killpg(chat.pid, signal.SIGKILL)
    started = time.monotonic()
    for ws in tunnels:
        with pytest.raises(ConnectionClosed):
            while True:
                ws.recv(timeout=5)
        ws.close()
    assert time.monotonic() - started < 5
    # Nothing else is affected.
    with http() as c:
        for _ in range(20):
            assert c.get(gateway.url + "/plain/ping").status_code == 200
    wait_for(lambda: metric(gateway, "tapper_tunnels_open") == 0, 10, "tapper_tunnels_open to go back to 0")


def test_a_thousand_concurrent_tunnels(gateway: Gateway, procs: Procs) -> None:
    raise_nofile(8192)
    start_chat(gateway, procs)
    from websockets.asyncio.client import connect as aconnect

    count = 1000

    async def run() -> List[str]:
        conns = []
        sem = asyncio.Semaphore(100)

        async def open_one(i: int):
            async with sem:
                return await aconnect(f"ws://127.0.0.1:{gateway.port}/ws/r{i}", open_timeout=30, ping_interval=None)

        conns = await asyncio.gather(*(open_one(i) for i in range(count)))
        opened = metric(gateway, "tapper_tunnels_open")
        assert opened == count, f"tapper_tunnels_open is {opened} with {count} tunnels open"

        async def talk(ws, i: int) -> str:
            await ws.send("room")
            return await asyncio.wait_for(ws.recv(), 30)

        got = await asyncio.gather(*(talk(ws, i) for i, ws in enumerate(conns)))
        await asyncio.gather(*(ws.close() for ws in conns))
        return got

    got = asyncio.run(run())
    assert got == [f"r{i}" for i in range(count)]
    wait_for(lambda: metric(gateway, "tapper_tunnels_open") == 0, 20, "all 1,000 tunnels to be closed")


class RawUpgradeServer:
    """A plain TCP server: `GET /health` → 200; an `Upgrade: echo` request → 101, then it echoes
    what it reads until the client ends its output, and only then writes `bye` and closes
    (half-close: the gateway must pass the client's FIN and keep the other direction open)."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.saw_eof = threading.Event()
        self.heads: List[bytes] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            buf = b""
            while True:
                while b"\r\n\r\n" not in buf:
                    chunk = conn.recv(65536)
                    if not chunk:
                        return
                    buf += chunk
                head, buf = buf.split(b"\r\n\r\n", 1)
                self.heads.append(head)
                if b"upgrade: echo" not in head.lower():
                    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                    continue
                conn.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\n" + buf)
                while True:
                    chunk = conn.recv(65536)
                    if not chunk:
                        break
                    conn.sendall(chunk)
                self.saw_eof.set()
                conn.sendall(b"bye")
                return

    def close(self) -> None:
        self.sock.close()


def register_raw(gw: Gateway, name: str, port: int) -> None:
    reg = subprocess.run(
        [str(TAPPER_BIN), "service", "register", name, "--url", f"http://127.0.0.1:{port}", "--route", "/raw/{rest:path}",
         "--registry", gw.registry_url],
        capture_output=True, text=True, timeout=30, env=clean_env(),
    )
    assert reg.returncode == 0, reg.stderr


def open_raw_tunnel(gw: Gateway, path: str = "/raw/x") -> Tuple[socket.socket, bytes]:
    s = socket.create_connection(("127.0.0.1", gw.port), timeout=5)
    s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n".encode())
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = s.recv(65536)
        assert chunk, head
        head += chunk
    return s, head


def test_other_upgrade_tokens_tunnel_with_half_close(gateway: Gateway, procs: Procs) -> None:
    server = RawUpgradeServer()
    try:
        register_raw(gateway, "raw", server.port)
        wait_for(lambda: http().get(gateway.url + "/raw/ping").status_code == 200, 20, "the raw server through the gateway")
        s, head = open_raw_tunnel(gateway)
        with s:
            assert head.startswith(b"HTTP/1.1 101"), head
            assert re.search(rb"(?im)^upgrade: echo\r$", head) and re.search(rb"(?im)^connection: upgrade\r$", head), head
            upstream_head = server.heads[-1].lower()
            assert b"upgrade: echo" in upstream_head and b"connection: upgrade" in upstream_head, upstream_head
            rest = head.split(b"\r\n\r\n", 1)[1]
            s.sendall(b"abc" * 1000)
            got = rest
            while len(got) < 3000:
                chunk = s.recv(65536)
                assert chunk, got
                got += chunk
            assert got == b"abc" * 1000
            # The client ends its output; the upstream sees EOF and still answers.
            s.shutdown(socket.SHUT_WR)
            assert server.saw_eof.wait(5), "the upstream never saw the client's end of output"
            assert read_to_end(s) == b"bye"
        wait_for(lambda: any("tunnel=1" in l and "outcome=ok" in l and "bytes_in=3000" in l for l in gateway.proc.stdout.splitlines()), 10,
                 "the tunnel's access-log line (outcome=ok, bytes_in=3000)")
    finally:
        server.close()


def test_tunnel_idle_timeout_is_separate_from_request_timeouts(procs: Procs, gateway_available: None) -> None:
    # Request timeouts far below the tunnel's life: only --tunnel-idle-timeout applies to it.
    gw = start_gateway(procs, "--timeout", "0.5", "--idle-timeout", "0.5", "--tunnel-idle-timeout", "1.5")
    start_chat(gw, procs)
    with connect(f"ws://127.0.0.1:{gw.port}/ws/slow", ping_interval=None) as ws:
        started = time.monotonic()
        while time.monotonic() - started < 3:  # active for 3 s: past every request timeout
            ws.send("room")
            assert ws.recv(timeout=5) == "slow"
            time.sleep(0.3)
        idle_from = time.monotonic()
        with pytest.raises(ConnectionClosed):
            ws.recv(timeout=10)
        idle = time.monotonic() - idle_from
        assert 1.2 <= idle <= 4, f"an idle tunnel closed after {idle:.2f}s (tunnel idle timeout 1.5 s)"
    wait_for(lambda: any("tunnel=1" in l and "outcome=tunnel_idle_timeout" in l for l in gw.proc.stdout.splitlines()), 10,
             "the access-log line of the idle tunnel")


def test_sigterm_drain_lets_tunnels_run_until_the_drain_timeout(procs: Procs, gateway_available: None) -> None:
    gw = start_gateway(procs, "--drain-timeout", "2")
    start_chat(gw, procs)
    with connect(f"ws://127.0.0.1:{gw.port}/ws/drain", ping_interval=None) as ws:
        ws.send("room")
        assert ws.recv(timeout=5) == "drain"
        gw.proc.signal(signal.SIGTERM)
        signalled = time.monotonic()
        # The gateway stops accepting, but the open tunnel still works...
        wait_for(lambda: _refused(gw.port), 5, "the gateway to stop accepting after SIGTERM")
        ws.send("room")
        assert ws.recv(timeout=5) == "drain"
        # ...until the drain timeout closes it.
        with pytest.raises(ConnectionClosed):
            while True:
                ws.recv(timeout=10)
        waited = time.monotonic() - signalled
        assert 1.5 <= waited <= 6, f"the tunnel was closed {waited:.2f}s after SIGTERM (drain timeout 2 s)"
    assert gw.proc.wait_exit(10) == 0
    assert any("tunnel=1" in l and "outcome=shutdown" in l for l in gw.proc.stdout.splitlines()), gw.proc.stdout[-2000:]


def _refused(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
        return False
    except OSError:
        return True


def test_server_sent_events_are_not_buffered(gateway: Gateway, procs: Procs) -> None:
    start_chat(gateway, procs)
    lags: List[float] = []
    with http() as c:
        with c.stream("GET", gateway.url + "/events?n=20&every_ms=50") as r:
            assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
            for line in r.iter_lines():
                if line.startswith("data: "):
                    lags.append(time.time() - float(line[6:]))
    assert len(lags) == 20
    lags.sort()
    # Each event is written by the app, then crosses the gateway at once: no buffering until the
    # end of the stream (that would show as ~1 s of lag for the first event).
    assert lags[len(lags) // 2] < 0.010, f"median event lag {lags[len(lags) // 2] * 1000:.1f} ms: {lags}"
    assert lags[-1] < 0.100, f"worst event lag {lags[-1] * 1000:.1f} ms: {lags}"
