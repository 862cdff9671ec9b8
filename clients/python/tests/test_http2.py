"""HTTP/2 towards clients, end to end: a FastAPI app under uvicorn behind the gateway, reached
with httpx (`http2=True`, the h2 package) over h2c with prior knowledge and over TLS (ALPN h2),
and with hand-made frames (the h2 and hyperframe packages) for what misbehaving clients send:
a bad preface, a flow-control window overflow, a header list over the limit, rapid reset
(CVE-2023-44487). Each gets its GOAWAY or its answer, and the clients beside it are unaffected.
"""

from __future__ import annotations

import asyncio
import hashlib
import signal
import socket
import ssl
import subprocess
import time
from pathlib import Path
from typing import List, Optional, Tuple

import h2.config
import h2.connection
import h2.events
import httpx
import pytest
from hyperframe.frame import DataFrame, Frame, GoAwayFrame, WindowUpdateFrame

from support import TAPPER_BIN, Procs, free_port, read_to_end, wait_for
from test_gateway import Gateway, gateway_available, start_gateway, wait_routable  # noqa: F401 (fixture)

APP = """\
import asyncio, hashlib
from fastapi import FastAPI, Request
from fastapi.responses import StreamingResponse
from tapper import Service

app = Service(name="h2svc", version="1.0.0", ttl=5)(FastAPI())


@app.get("/items/{item_id}")
async def item(item_id: int, request: Request):
    return {"item_id": item_id, "proto": request.headers.get("x-forwarded-proto"), "cookie": request.headers.get("cookie"),
            "host": request.headers.get("host"), "http_version": request.scope["http_version"]}


@app.post("/upload")
async def upload(request: Request):
    body = await request.body()
    return {"bytes": len(body), "sha256": hashlib.sha256(body).hexdigest()}


@app.get("/stream/{n}")
async def stream(n: int):
    async def chunks():
        left = n
        while left > 0:
            k = min(left, 65536)
            left -= k
            yield b"z" * k
    return StreamingResponse(chunks(), media_type="application/octet-stream")


@app.get("/slow")
async def slow():
    await asyncio.sleep(1.0)
    return {"slow": True}
"""


def _start(procs: Procs, *extra: str) -> Tuple[Gateway, int]:
    gw = start_gateway(procs, *extra)
    app = procs.uvicorn(APP, "h2svc", env=gw.service_env())
    gw.registry.wait_instance("h2svc", f"127.0.0.1-{app.port}")
    wait_routable(gw, "/items/0")
    return gw, app.port


def _h2c() -> httpx.Client:
    # http1=False: HTTP/2 with prior knowledge on a plain http:// URL (h2c).
    return httpx.Client(http1=False, http2=True, timeout=20)


def _certificate(tmp: Path) -> Tuple[str, str]:
    cert, key = tmp / "cert.pem", tmp / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", str(key), "-out", str(cert),
         "-days", "2", "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost"],
        check=True, capture_output=True,
    )
    return str(cert), str(key)


def test_httpx_http2_over_h2c_and_tls_is_proxied(gateway_available: None, procs: Procs, tmp_path: Path) -> None:
    cert, key = _certificate(tmp_path)
    tls_port = free_port()
    gw, _ = _start(procs, "--tls-port", str(tls_port), "--tls-cert", cert, "--tls-key", key)

    with _h2c() as c:
        r = c.get(gw.url + "/items/7", headers=[("cookie", "a=1"), ("cookie", "b=2")])
        assert r.http_version == "HTTP/2" and r.status_code == 200, r.text
        body = r.json()
        # The upstream hears HTTP/1.1 with the h2 cookie fields joined (RFC 9113 8.2.3).
        assert body == {"item_id": 7, "proto": "http", "cookie": "a=1; b=2", "host": f"127.0.0.1:{gw.port}", "http_version": "1.1"}
        assert r.headers["x-request-id"] and r.headers["x-tapper-instance"].startswith("h2svc/")
        # Routing, errors and the gateway's own endpoints are the HTTP/1.1 ones.
        assert c.get(gw.url + "/nowhere").status_code == 404
        assert c.get(gw.url + "/_tapper/status").json()["gateway"]["requests_in_flight"] >= 0
        # Bodies both ways: 5 MiB up (a length, many DATA frames, windows reopened as the
        # upstream takes them), 20 MiB down (streamed by the app, chunked on the upstream side).
        blob = bytes(range(256)) * (5 * 4096)
        up = c.post(gw.url + "/upload", content=blob)
        assert up.json() == {"bytes": len(blob), "sha256": hashlib.sha256(blob).hexdigest()}
        # Without a length: the gateway sends the upstream a chunked body.
        up = c.post(gw.url + "/upload", content=iter([blob[:100000], blob[100000:]]))
        assert up.json() == {"bytes": len(blob), "sha256": hashlib.sha256(blob).hexdigest()}
        down = c.get(gw.url + "/stream/20971520")
        assert down.status_code == 200 and len(down.content) == 20971520 and down.content == b"z" * 20971520

    # h2 over TLS, chosen by ALPN; X-Forwarded-Proto says https.
    ctx = ssl.create_default_context(cafile=cert)
    with httpx.Client(http2=True, verify=ctx, timeout=20) as c:
        r = c.get(f"https://localhost:{tls_port}/items/3")
        assert r.http_version == "HTTP/2", r.http_version
        assert r.json()["proto"] == "https"
    # A client without h2 in its ALPN gets HTTP/1.1 on the same port.
    with httpx.Client(http2=False, verify=ctx, timeout=20) as c:
        r = c.get(f"https://localhost:{tls_port}/items/4")
        assert r.http_version == "HTTP/1.1" and r.json()["proto"] == "https"


def test_many_streams_share_one_connection(gateway_available: None, procs: Procs) -> None:
    gw, _ = _start(procs)

    async def run() -> List[int]:
        async with httpx.AsyncClient(http1=False, http2=True, timeout=30) as c:
            # 10 slow requests at once, then 200 quick ones: one TCP connection carries them all.
            slow = [c.get(gw.url + "/slow") for _ in range(10)]
            quick = [c.get(gw.url + f"/items/{i}") for i in range(200)]
            started = time.monotonic()
            replies = await asyncio.gather(*slow, *quick)
            elapsed = time.monotonic() - started
            # Concurrent, not one after another (10 slow requests in series would take 10 s).
            assert elapsed < 6, elapsed
            assert [r.json()["item_id"] for r in replies[10:]] == list(range(200))
            return [r.status_code for r in replies]

    assert set(asyncio.run(run())) == {200}
    status = httpx.get(gw.url + "/_tapper/status").json()["gateway"]
    # The HTTP/2 connection counts once, not once per stream.
    assert status["open_connections"] <= 2, status


class RawH2:
    """A client connection whose frames the test makes itself (h2's state machine, or bytes)."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.conn = h2.connection.H2Connection(config=h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
        self.events: List[h2.events.Event] = []
        self.closed = False
        self.error: Optional[Exception] = None

    def start(self) -> "RawH2":
        self.conn.initiate_connection()
        self.flush()
        return self

    def flush(self) -> None:
        data = self.conn.data_to_send()
        if data:
            self.sock.sendall(data)

    def pump(self, until, timeout: float = 10):  # type: ignore[no-untyped-def]
        """Reads until `until(events)` holds or the connection closes; returns the events."""
        deadline = time.monotonic() + timeout
        while not until(self.events):
            if self.closed or time.monotonic() > deadline:
                return self.events
            self.sock.settimeout(max(0.05, deadline - time.monotonic()))
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                continue
            except ConnectionResetError:
                data = b""
            if not data:
                self.closed = True
                return self.events
            try:
                self.events += self.conn.receive_data(data)
            except Exception as e:  # the peer's frames broke the client's own state machine: stop here
                self.error = e
                self.closed = True
                return self.events
            self.flush()
        return self.events

    def goaway(self) -> Optional[h2.events.ConnectionTerminated]:
        for e in self.events:
            if isinstance(e, h2.events.ConnectionTerminated):
                return e
        return None

    def close(self) -> None:
        self.sock.close()


def _still_served(gw: Gateway) -> None:
    with _h2c() as c:
        assert c.get(gw.url + "/items/1").status_code == 200
    assert httpx.get(gw.url + "/items/2").status_code == 200


def test_bad_preface_and_window_overflow_end_the_connection(gateway_available: None, procs: Procs) -> None:
    gw, _ = _start(procs)
    bystander = _h2c()
    assert bystander.get(gw.url + "/items/0").status_code == 200

    # The h2c preface line, then not the rest of it: no HTTP/2 connection, nothing proxied.
    s = socket.create_connection(("127.0.0.1", gw.port), timeout=10)
    s.sendall(b"PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n" + b"\x00" * 64)
    got = read_to_end(s)
    s.close()
    assert b"HTTP/1.1 200" not in got  # closed, at most after its SETTINGS/GOAWAY

    # WINDOW_UPDATE that overflows the connection window past 2^31-1: FLOW_CONTROL_ERROR.
    raw = RawH2(gw.port).start()
    raw.sock.sendall(WindowUpdateFrame(0, window_increment=2**31 - 1).serialize())
    raw.pump(lambda ev: any(isinstance(e, h2.events.ConnectionTerminated) for e in ev))
    assert raw.goaway() is not None and raw.goaway().error_code == 3, raw.events  # FLOW_CONTROL_ERROR
    raw.close()

    # A zero increment on a stream: PROTOCOL_ERROR for the connection.
    raw = RawH2(gw.port).start()
    raw.sock.sendall(WindowUpdateFrame(0).serialize()[:-4] + b"\x00\x00\x00\x00")
    raw.pump(lambda ev: any(isinstance(e, h2.events.ConnectionTerminated) for e in ev))
    assert raw.goaway() is not None and raw.goaway().error_code == 1, raw.events  # PROTOCOL_ERROR
    raw.close()

    # The connection opened before all this still works, and new ones do.
    assert bystander.get(gw.url + "/items/5").json()["item_id"] == 5
    bystander.close()
    _still_served(gw)


def test_oversized_header_list_gets_431_and_the_connection_goes_on(gateway_available: None, procs: Procs) -> None:
    gw, _ = _start(procs)
    raw = RawH2(gw.port).start()
    big = [(f"x-big-{i}", "v" * 8000) for i in range(8)]  # 64 KB of fields, the limit is 40 KiB
    raw.conn.send_headers(1, [(":method", "GET"), (":path", "/items/1"), (":scheme", "http"), (":authority", "localhost")] + big, end_stream=True)
    raw.flush()
    raw.pump(lambda ev: any(isinstance(e, h2.events.StreamEnded) for e in ev))
    statuses = [dict(e.headers).get(":status") for e in raw.events if isinstance(e, h2.events.ResponseReceived)]
    assert statuses == ["431"], raw.events
    # The same connection serves the next request.
    raw.conn.send_headers(3, [(":method", "GET"), (":path", "/items/9"), (":scheme", "http"), (":authority", "localhost")], end_stream=True)
    raw.flush()
    raw.pump(lambda ev: sum(isinstance(e, h2.events.StreamEnded) for e in ev) >= 2)
    statuses = [dict(e.headers).get(":status") for e in raw.events if isinstance(e, h2.events.ResponseReceived)]
    assert statuses == ["431", "200"], raw.events
    raw.close()
    _still_served(gw)


def test_rapid_reset_is_cut_off_with_enhance_your_calm(gateway_available: None, procs: Procs) -> None:
    gw, _ = _start(procs)
    raw = RawH2(gw.port).start()
    sent = 0
    # Open a stream and reset it at once, over and over (CVE-2023-44487).
    try:
        for i in range(2000):
            sid = 1 + 2 * i
            raw.conn.send_headers(sid, [(":method", "GET"), (":path", "/slow"), (":scheme", "http"), (":authority", "localhost")])
            raw.conn.reset_stream(sid)
            sent += 1
            if i % 50 == 49:
                raw.flush()
        raw.flush()
    except (BrokenPipeError, ConnectionResetError):
        pass
    raw.pump(lambda ev: any(isinstance(e, h2.events.ConnectionTerminated) for e in ev))
    ended = raw.goaway()
    assert ended is not None and ended.error_code == 11, raw.events[-5:]  # ENHANCE_YOUR_CALM
    # Cut off well before the 2,000th reset: the budget is a burst of 200, then 100/s.
    assert ended.last_stream_id < 2 * 1000, ended
    raw.close()
    _still_served(gw)
    # The status counts it (and `tapper status` says so).
    h2s = httpx.get(gw.url + "/_tapper/status").json()["gateway"]["http2"]
    assert h2s["rapid_reset_goaways"] == 1 and h2s["client_resets"] > 200 and h2s["streams"] > 200, h2s
    shown = subprocess.run([str(TAPPER_BIN), "status", "--gateway", gw.url], capture_output=True, text=True, timeout=20)
    assert "1 rapid-reset GOAWAY" in shown.stdout, shown.stdout + shown.stderr


def test_drain_sends_goaway_and_finishes_the_streams_in_flight(gateway_available: None, procs: Procs) -> None:
    gw, _ = _start(procs)
    raw = RawH2(gw.port).start()
    raw.conn.send_headers(1, [(":method", "GET"), (":path", "/slow"), (":scheme", "http"), (":authority", "localhost")], end_stream=True)
    raw.flush()
    # Once the request reached the app, the gateway is asked to stop.
    wait_for(lambda: httpx.get(gw.url + "/_tapper/status").json()["gateway"]["requests_in_flight"] >= 1, 10, "the slow request to be in flight")
    gw.proc.popen.send_signal(signal.SIGTERM)
    # h2's client state machine stops at GOAWAY, so what follows it is read as frames here.
    raw.sock.settimeout(10)
    frames = _frames(read_to_end(raw.sock))
    goaways = [f for f in frames if isinstance(f, GoAwayFrame)]
    assert goaways and goaways[0].error_code == 0 and goaways[0].last_stream_id == 1, frames
    data = [f for f in frames if isinstance(f, DataFrame) and f.stream_id == 1]
    assert b"".join(f.data for f in data) == b'{"slow":true}', frames
    assert "END_STREAM" in data[-1].flags
    # The response came after the GOAWAY: the stream in flight was finished, then the close.
    assert frames.index(goaways[0]) < frames.index(data[0])
    raw.close()


def _frames(data: bytes) -> list:
    out = []
    while len(data) >= 9:
        frame, length = Frame.parse_frame_header(memoryview(data[:9]))
        if len(data) < 9 + length:
            break
        frame.parse_body(memoryview(data[9 : 9 + length]))
        out.append(frame)
        data = data[9 + length :]
    return out
