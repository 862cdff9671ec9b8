"""HTTP/2 towards instances (h2c with prior knowledge), end to end: a FastAPI app under uvicorn's
HTTP/2 server (`--http zttp --http2`) registered with `protocol="h2c"`, and a gRPC server
(grpcio, generic handlers: no generated code) reached through the gateway by a grpcio client —
unary calls with trailing metadata, server streaming, error statuses (trailers-only answers),
messages larger than the flow-control windows, and the gRPC health check as the active probe.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import queue
import re
import sys
import threading
import time
from pathlib import Path
from typing import List, Optional, Tuple

import grpc
import httpx
import pytest

from support import Procs, free_port, get_json, http, wait_for
from test_gateway import Gateway, gateway_available, start_gateway, wait_routable  # noqa: F401 (fixture)

APP = """\
import asyncio, hashlib
from fastapi import FastAPI, Request
from fastapi.responses import StreamingResponse
from tapper import Service

app = Service(name="h2up", version="1.0.0", ttl=5, protocol="h2c")(FastAPI())


@app.get("/info/{item_id}")
async def info(item_id: int, request: Request):
    return {"item_id": item_id, "http_version": request.scope["http_version"], "query": request.url.query,
            "host": request.headers.get("host"), "forwarded_for": request.headers.get("x-forwarded-for")}


@app.post("/upload")
async def upload(request: Request):
    body = await request.body()
    return {"bytes": len(body), "sha256": hashlib.sha256(body).hexdigest(), "http_version": request.scope["http_version"]}


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
    await asyncio.sleep(0.5)
    return {"slow": True}
"""

GRPC_SERVER = """\
import sys, time
from concurrent import futures
import grpc

SERVING = bytes([0x08, 0x01])  # grpc.health.v1.HealthCheckResponse{status: SERVING}


def unary(request, context):
    context.set_trailing_metadata((("x-echo-len", str(len(request))),))
    return b"echo:" + request


def stream(request, context):
    count, gap = request.decode().split(",")
    for i in range(int(count)):
        yield f"item{i}".encode()
        time.sleep(float(gap))


def fail(request, context):
    context.abort(grpc.StatusCode.NOT_FOUND, "no such thing")


def chat(requests, context):
    # Bidirectional: each message is answered as it arrives.
    for r in requests:
        yield b"re:" + r


def health(request, context):
    return SERVING


handlers = [grpc.method_handlers_generic_handler("test.Echo", {
    "Unary": grpc.unary_unary_rpc_method_handler(unary),
    "Stream": grpc.unary_stream_rpc_method_handler(stream),
    "Fail": grpc.unary_unary_rpc_method_handler(fail),
    "Chat": grpc.stream_stream_rpc_method_handler(chat),
})]
if sys.argv[2] == "with-health":
    handlers.append(grpc.method_handlers_generic_handler("grpc.health.v1.Health", {
        "Check": grpc.unary_unary_rpc_method_handler(health),
    }))
options = [("grpc.max_receive_message_length", 16 << 20), ("grpc.max_send_message_length", 16 << 20)]
server = grpc.server(futures.ThreadPoolExecutor(8), options=options)
server.add_generic_rpc_handlers(handlers)
server.add_insecure_port("127.0.0.1:" + sys.argv[1])
server.start()
print("grpc serving", flush=True)
server.wait_for_termination()
"""

GRPC_OPTIONS = [("grpc.max_receive_message_length", 16 << 20), ("grpc.max_send_message_length", 16 << 20)]


def _app(procs: Procs, gw: Gateway) -> int:
    app = procs.uvicorn(APP, "h2up", env=gw.service_env(), extra_args=["--http", "zttp", "--http2"])
    gw.registry.wait_instance("h2up", f"127.0.0.1-{app.port}")
    wait_routable(gw, "/info/0")
    return app.port


def _established_to(port: int) -> int:
    """Open TCP connections to 127.0.0.1:port (the gateway's ends), from /proc/net/tcp."""
    count = 0
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        remote, state = fields[2], fields[3]
        if state == "01" and int(remote.split(":")[1], 16) == port:
            count += 1
    return count


def _io_threads(gw: Gateway) -> int:
    m = re.search(r"\((\d+) I/O threads\)", gw.proc.output)
    assert m, gw.proc.describe()
    return int(m.group(1))


def test_a_fastapi_app_on_h2c_gets_every_request_over_http2(gateway_available: None, procs: Procs) -> None:
    gw = start_gateway(procs)
    _app(procs, gw)
    with http() as c:
        r = c.get(gw.url + "/info/7?b=2&a=%20x")
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["http_version"] == "2"
        assert body["item_id"] == 7 and body["query"] == "b=2&a=%20x"
        assert body["host"] == f"127.0.0.1:{gw.port}" and body["forwarded_for"] == "127.0.0.1"
        # The app's own error answers pass through as they are.
        assert c.get(gw.url + "/info/notanint").status_code == 422
        payload = bytes(range(256)) * (5 * 4096)  # 5 MiB
        up = c.post(gw.url + "/upload", content=payload).json()
        assert up == {"bytes": len(payload), "sha256": hashlib.sha256(payload).hexdigest(), "http_version": "2"}

        def pieces():
            for i in range(0, len(payload), 100_000):
                yield payload[i:i + 100_000]

        chunked = c.post(gw.url + "/upload", content=pieces()).json()
        assert chunked["bytes"] == len(payload) and chunked["sha256"] == hashlib.sha256(payload).hexdigest()
        n = 20 * 1024 * 1024
        with c.stream("GET", gw.url + f"/stream/{n}") as s:
            assert s.status_code == 200
            got = sum(len(b) for b in s.iter_bytes())
        assert got == n
    # HTTP/2 on both sides.
    with httpx.Client(http1=False, http2=True, timeout=20) as h2:
        r = h2.get(gw.url + "/info/8")
        assert r.http_version == "HTTP/2" and r.json()["http_version"] == "2"


def test_concurrent_requests_share_one_connection_per_gateway_thread(gateway_available: None, procs: Procs) -> None:
    gw = start_gateway(procs)
    port = _app(procs, gw)
    threads = _io_threads(gw)
    peak = 0
    stop = threading.Event()

    def watch() -> None:
        nonlocal peak
        while not stop.is_set():
            peak = max(peak, _established_to(port))
            time.sleep(0.01)

    watcher = threading.Thread(target=watch)
    watcher.start()
    started = time.monotonic()
    try:
        with concurrent.futures.ThreadPoolExecutor(60) as pool:
            def one(_: int) -> int:
                with httpx.Client(timeout=20) as c:
                    return c.get(gw.url + "/slow").status_code

            codes = list(pool.map(one, range(60)))
    finally:
        stop.set()
        watcher.join()
    elapsed = time.monotonic() - started
    assert codes == [200] * 60
    # Sixty half-second requests at once over HTTP/1.1 would need sixty connections; over h2c
    # they are streams of one connection per I/O thread. Two more may be seen beside them: a
    # health probe's (one per probe, closed after it) and the gateway's fetch of the app's
    # /openapi.json (an HTTP/1.1 client keeping its connection).
    assert 1 <= peak <= threads + 2, (peak, threads)
    assert elapsed < 10, elapsed
    h2s = get_json(gw.url + "/_tapper/status")["gateway"]["http2"]
    assert 1 <= h2s["upstream_sessions"] <= threads and h2s["upstream_streams"] >= 60, h2s


def test_upstream_protocol_flag_and_bad_protocols(gateway_available: None, procs: Procs) -> None:
    gw = start_gateway(procs, "--upstream-protocol", "h2c")
    app_src = APP.replace(', protocol="h2c"', "")
    app = procs.uvicorn(app_src, "h2up", env=gw.service_env(), extra_args=["--http", "zttp", "--http2"])
    gw.registry.wait_instance("h2up", f"127.0.0.1-{app.port}")
    wait_routable(gw, "/info/0")
    assert get_json(gw.url + "/info/1")["http_version"] == "2"
    with http() as c:
        r = c.put(gw.registry_url + "/v1/services/bad/instances/one",
                  json={"url": "http://127.0.0.1:1", "protocol": "h3", "routes": [{"path": "/bad"}]})
        assert r.status_code == 400, r.text
        assert "protocol" in r.text and "h2c" in r.text


def _grpc_server(procs: Procs, health: str) -> int:
    port = free_port()
    apps = procs.tmp / "apps"
    apps.mkdir(exist_ok=True)
    (apps / "grpc_server.py").write_text(GRPC_SERVER)
    proc = procs.start(f"grpc-{health}", [sys.executable, str(apps / "grpc_server.py"), str(port), health])

    def ready() -> bool:
        if "grpc serving" in proc.output:
            return True
        assert proc.alive(), proc.describe()
        return False

    wait_for(ready, 20, "the gRPC server to serve")
    return port


def _register_grpc(gw: Gateway, name: str, port: int, package: str = "test.Echo") -> None:
    body = {
        "url": f"http://127.0.0.1:{port}", "protocol": "h2c", "health_endpoint": "/grpc.health.v1.Health/Check",
        "routes": [{"path": f"/{package}/{{method}}", "methods": ["POST"]}], "ttl_seconds": 60,
    }
    with http() as c:
        r = c.put(gw.registry_url + f"/v1/services/{name}/instances/one", json=body)
        assert r.status_code in (200, 201), r.text


def _instance_state(gw: Gateway, service: str) -> str:
    for s in get_json(gw.url + "/_tapper/status")["services"]:
        if s["name"] == service:
            return s["instances"][0]["state"]
    return "absent"


def test_grpc_unary_streaming_and_errors_pass_through_with_trailers(gateway_available: None, procs: Procs) -> None:
    gw = start_gateway(procs, "--health-interval", "0.2", "--health-fall", "2", "--health-rise", "1")
    port = _grpc_server(procs, "with-health")
    _register_grpc(gw, "grpcsvc", port)
    with grpc.insecure_channel(f"127.0.0.1:{gw.port}", options=GRPC_OPTIONS) as channel:
        unary = channel.unary_unary("/test.Echo/Unary")

        def routable() -> bool:
            try:
                unary(b"ping", timeout=2)
                return True
            except grpc.RpcError:
                return False

        wait_for(routable, 15, "the gRPC route to answer through the gateway")
        reply, call = unary.with_call(b"hello", timeout=10)
        assert reply == b"echo:hello"
        assert call.code() == grpc.StatusCode.OK
        assert ("x-echo-len", "5") in [(m.key, m.value) for m in call.trailing_metadata()]
        # Larger than every flow-control window on the way (256 KiB streams, 4 MiB connections).
        big = bytes(range(256)) * (6 * 4096)
        assert unary(big, timeout=20) == b"echo:" + big

        # Server streaming arrives as it is produced, not when the call ends.
        arrivals: List[Tuple[float, bytes]] = []
        started = time.monotonic()
        for item in channel.unary_stream("/test.Echo/Stream")(b"4,0.3", timeout=20):
            arrivals.append((time.monotonic() - started, item))
        assert [i for _, i in arrivals] == [b"item0", b"item1", b"item2", b"item3"]
        assert arrivals[-1][0] - arrivals[0][0] >= 0.6, arrivals

        # Bidirectional streaming: each answer comes back before the next message is sent (the
        # request body streams through the gateway, it is not collected first).
        outbox: "queue.Queue[Optional[bytes]]" = queue.Queue()

        def messages():
            while True:
                m = outbox.get(timeout=10)
                if m is None:
                    return
                yield m

        answers = channel.stream_stream("/test.Echo/Chat")(messages(), timeout=20)
        for word in (b"one", b"two", b"three"):
            outbox.put(word)
            assert next(answers) == b"re:" + word
        outbox.put(None)
        assert list(answers) == []

        # An error status (a trailers-only answer) with its message.
        with pytest.raises(grpc.RpcError) as failure:
            channel.unary_unary("/test.Echo/Fail")(b"", timeout=10)
        assert failure.value.code() == grpc.StatusCode.NOT_FOUND
        assert failure.value.details() == "no such thing"
        # A method the server lacks: its UNIMPLEMENTED, not a gateway error.
        with pytest.raises(grpc.RpcError) as missing:
            channel.unary_unary("/test.Echo/Nope")(b"", timeout=10)
        assert missing.value.code() == grpc.StatusCode.UNIMPLEMENTED

        # Many calls at once on one client connection, multiplexed to the server.
        with concurrent.futures.ThreadPoolExecutor(16) as pool:
            replies = list(pool.map(lambda i: unary(str(i).encode(), timeout=20), range(200)))
        assert replies == [b"echo:" + str(i).encode() for i in range(200)]
    assert _instance_state(gw, "grpcsvc") == "healthy"


def test_grpc_health_check_probes_h2c_instances(gateway_available: None, procs: Procs) -> None:
    gw = start_gateway(procs, "--health-interval", "0.2", "--health-fall", "2", "--health-rise", "1")
    serving = _grpc_server(procs, "with-health")
    lacking = _grpc_server(procs, "without-health")
    _register_grpc(gw, "serving", serving)
    _register_grpc(gw, "lacking", lacking, package="other.Echo")
    # The server without the health service answers UNIMPLEMENTED: taken out of rotation.
    wait_for(lambda: _instance_state(gw, "lacking") == "unhealthy", 15, "the instance without a health service to be unhealthy")
    assert _instance_state(gw, "serving") == "healthy"


def test_grpc_over_tls_reaches_an_h2c_instance(gateway_available: None, procs: Procs, tmp_path: Path) -> None:
    from test_http2 import _certificate

    cert, key = _certificate(tmp_path)
    tls_port = free_port()
    gw = start_gateway(procs, "--tls-port", str(tls_port), "--tls-cert", cert, "--tls-key", key)
    port = _grpc_server(procs, "with-health")
    _register_grpc(gw, "grpcsvc", port)
    credentials = grpc.ssl_channel_credentials(Path(cert).read_bytes())
    # The certificate names localhost: the channel's target says so.
    with grpc.secure_channel(f"localhost:{tls_port}", credentials, options=GRPC_OPTIONS) as channel:
        unary = channel.unary_unary("/test.Echo/Unary")

        def routable() -> bool:
            try:
                return unary(b"ping", timeout=2) == b"echo:ping"
            except grpc.RpcError:
                return False

        wait_for(routable, 15, "the gRPC route to answer over TLS")
        assert list(channel.unary_stream("/test.Echo/Stream")(b"3,0", timeout=10)) == [b"item0", b"item1", b"item2"]


def test_an_instance_closing_its_idle_connection_costs_no_request(gateway_available: None, procs: Procs) -> None:
    gw = start_gateway(procs, "--health-interval", "60")
    app = procs.uvicorn(APP, "h2up", env=gw.service_env(), extra_args=["--http", "zttp", "--http2", "--timeout-keep-alive", "1"])
    gw.registry.wait_instance("h2up", f"127.0.0.1-{app.port}")
    wait_routable(gw, "/info/0")
    with http() as c:
        for round in range(3):
            assert [c.get(gw.url + f"/info/{i}").status_code for i in range(5)] == [200] * 5
            # uvicorn ends the idle HTTP/2 connection after its keep-alive timeout (GOAWAY, close);
            # the next request opens a new one.
            wait_for(lambda: _established_to(app.port) == 0, 15, "uvicorn to close the idle h2c connection")
            wait_for(lambda: get_json(gw.url + "/_tapper/status")["gateway"]["http2"]["upstream_sessions"] == 0, 5,
                     "the gateway to see the session end")
        assert c.get(gw.url + "/info/9").json()["http_version"] == "2"
