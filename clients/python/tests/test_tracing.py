"""Tracing end to end: the gateway's span and a FastAPI app's span join one trace.

A real OTLP/HTTP receiver (this file's, on 127.0.0.1) takes spans from both sides: the gateway
(`--otlp-endpoint`, OTLP protobuf encoded by the gateway itself) and a FastAPI app under uvicorn
instrumented with opentelemetry-instrumentation-fastapi (opentelemetry-exporter-otlp-proto-http,
OTLP protobuf); both are decoded with opentelemetry-proto.
The test then checks what a tracing backend would show: one trace id, the app's server span a
child of the gateway's span, the gateway span named after the route template.
"""

from __future__ import annotations

import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Dict, Iterator, List, Optional

import pytest
from google.protobuf.json_format import MessageToDict
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from support import Procs, free_port, get_json, http, wait_for
from test_gateway import Gateway, gateway_available, start_gateway, wait_routable  # noqa: F401 (fixture)

TRACED_APP = """\
from fastapi import FastAPI, Request
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from tapper import Service

# OTEL_EXPORTER_OTLP_TRACES_ENDPOINT (set by the test) tells the exporter where to send.
provider = TracerProvider(resource=Resource.create({"service.name": "users-app"}))
provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(), schedule_delay_millis=100))
trace.set_tracer_provider(provider)

app = Service(name="users", version="1.0.0", ttl=5)(FastAPI())


@app.get("/users/{user_id}")
async def user(user_id: int, request: Request):
    return {"user_id": user_id, "traceparent": request.headers.get("traceparent"), "tracestate": request.headers.get("tracestate")}


FastAPIInstrumentor.instrument_app(app, tracer_provider=provider)
"""

PLAIN_APP = """\
from fastapi import FastAPI, Request
from tapper import Service

app = Service(name="users", version="1.0.0", ttl=5)(FastAPI())


@app.get("/users/{user_id}")
async def user(user_id: int, request: Request):
    return {"user_id": user_id, "traceparent": request.headers.get("traceparent"), "tracestate": request.headers.get("tracestate")}
"""

CLIENT_TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
CLIENT_PARENT = "00f067aa0ba902b7"


class Receiver:
    """An OTLP/HTTP trace receiver: `POST /v1/traces`, JSON or protobuf; keeps every span.

    HTTP/1.1 with keep-alive, as collectors answer: the gateway posts its batches over one
    connection. `status` is what it answers (spans are kept only on 200); `chunked` sends the
    answer's body chunked (the gateway then closes the connection after the status)."""

    def __init__(self, status: int = 200, chunked: bool = False) -> None:
        self.spans: List[Dict[str, Any]] = []
        self.content_types: List[str] = []
        self.posts = 0
        self.connections: set = set()
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def answer(self, code: int, kind: str = "application/json") -> None:
                self.send_response(code)
                self.send_header("Content-Type", kind)
                if chunked:
                    self.send_header("Transfer-Encoding", "chunked")
                    self.end_headers()
                    self.wfile.write(b"2\r\n{}\r\n0\r\n\r\n")
                else:
                    self.send_header("Content-Length", "2")
                    self.end_headers()
                    self.wfile.write(b"{}")

            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                kind = self.headers.get("Content-Type", "")
                with receiver.lock:
                    receiver.posts += 1
                    receiver.connections.add(self.client_address)
                if self.path != "/v1/traces":
                    return self.answer(404)
                if status != 200:
                    return self.answer(status)
                if kind.startswith("application/json"):
                    doc = json.loads(body)
                elif kind.startswith("application/x-protobuf"):
                    request = ExportTraceServiceRequest()
                    request.ParseFromString(body)
                    # The proto3 JSON mapping writes ids as base64; OTLP JSON (and this receiver's
                    # view) uses hex, as the gateway sends.
                    doc = MessageToDict(request)
                    for rs in doc.get("resourceSpans", []):
                        for ss in rs.get("scopeSpans", []):
                            for s in ss.get("spans", []):
                                for key in ("traceId", "spanId", "parentSpanId"):
                                    if key in s:
                                        s[key] = __import__("base64").b64decode(s[key]).hex()
                else:
                    return self.answer(415)
                with receiver.lock:
                    receiver.content_types.append(kind)
                    for rs in doc.get("resourceSpans", []):
                        attributes = rs.get("resource", {}).get("attributes", [])
                        service = next((a["value"].get("stringValue") for a in attributes if a["key"] == "service.name"), None)
                        for ss in rs.get("scopeSpans", []):
                            for s in ss.get("spans", []):
                                s["service.name"] = service
                                s["content_type"] = kind
                                s["attrs"] = {a["key"]: next(iter(a["value"].values()), None) for a in s.get("attributes", [])}
                                receiver.spans.append(s)
                self.answer(200, kind or "application/json")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def find(self, service: str, trace_id: str, name: Optional[str] = None) -> Optional[Dict[str, Any]]:
        with self.lock:
            for s in self.spans:
                if s["service.name"] == service and s["traceId"] == trace_id and (name is None or s["name"] == name) and s.get("kind") in (2, "SPAN_KIND_SERVER"):
                    return s
        return None

    def wait_span(self, service: str, trace_id: str, name: Optional[str] = None, timeout: float = 15) -> Dict[str, Any]:
        return wait_for(lambda: self.find(service, trace_id, name), timeout, f"a {service} server span of trace {trace_id} at the receiver")


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def _traced_app(gateway: Gateway, procs: Procs, receiver: Receiver, source: str = TRACED_APP) -> None:
    env = gateway.service_env(OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=receiver.url + "/v1/traces")
    app = procs.uvicorn(source, "users", env=env)
    gateway.registry.wait_instance("users", f"127.0.0.1-{app.port}")
    wait_routable(gateway, "/users/0")


def test_gateway_and_app_spans_join_one_trace(gateway_available: None, procs: Procs, receiver: Receiver) -> None:
    gw = start_gateway(procs, "--otlp-endpoint", receiver.url)
    _traced_app(gw, procs, receiver)

    # 1. The client sends a traceparent (and a tracestate): the gateway's span is its child,
    #    and the app's span the gateway's.
    sent = f"00-{CLIENT_TRACE_ID}-{CLIENT_PARENT}-01"
    with http() as c:
        r = c.get(gw.url + "/users/7", headers={"traceparent": sent, "tracestate": "vendor=opaque,x=1"})
    assert r.status_code == 200, r.text
    seen = r.json()
    assert seen["tracestate"] == "vendor=opaque,x=1"  # passed through untouched
    version, trace_id, gateway_span_id, flags = seen["traceparent"].split("-")
    assert (version, trace_id, flags) == ("00", CLIENT_TRACE_ID, "01")
    assert gateway_span_id != CLIENT_PARENT  # the gateway's own span, not the client's

    gateway_span = receiver.wait_span("tapper-gateway", CLIENT_TRACE_ID)
    app_span = receiver.wait_span("users-app", CLIENT_TRACE_ID)
    assert gateway_span["name"] == "GET /users/{user_id}"  # the route template, not the path
    assert gateway_span["spanId"] == gateway_span_id
    assert gateway_span["parentSpanId"] == CLIENT_PARENT
    assert gateway_span["kind"] in (2, "SPAN_KIND_SERVER")
    assert gateway_span["content_type"] == "application/x-protobuf"  # OTLP/HTTP's default encoding
    assert app_span["parentSpanId"] == gateway_span["spanId"]
    attrs = gateway_span["attrs"]
    assert attrs["http.request.method"] == "GET"
    assert attrs["http.route"] == "/users/{user_id}"
    assert attrs["url.path"] == "/users/7"
    assert attrs["server.address"] == "127.0.0.1"
    assert str(attrs["http.response.status_code"]) == "200"
    assert attrs["tapper.service"] == "users"
    assert attrs["tapper.instance.url"].startswith("http://127.0.0.1:")
    # The gateway's span starts before the app's (its end is when the response reached the
    # gateway, which can be before the app's instrumentation closes its own span).
    assert int(gateway_span["startTimeUnixNano"]) <= int(app_span["startTimeUnixNano"])

    # 2. No traceparent: the gateway starts the trace, and its span is the root.
    with http() as c:
        r = c.get(gw.url + "/users/8")
    assert r.status_code == 200
    version, trace_id, gateway_span_id, flags = r.json()["traceparent"].split("-")
    assert version == "00" and flags == "01" and trace_id != "0" * 32 and trace_id != CLIENT_TRACE_ID
    root = receiver.wait_span("tapper-gateway", trace_id)
    child = receiver.wait_span("users-app", trace_id)
    assert root["spanId"] == gateway_span_id
    assert not root.get("parentSpanId")
    assert child["parentSpanId"] == root["spanId"]
    assert {t.split(";")[0] for t in receiver.content_types} == {"application/x-protobuf"}

    # 3. An invalid traceparent (all-zero trace id) is ignored: a new trace starts.
    with http() as c:
        r = c.get(gw.url + "/users/9", headers={"traceparent": "00-" + "0" * 32 + "-00f067aa0ba902b7-01"})
    _, trace_id, _, _ = r.json()["traceparent"].split("-")
    assert trace_id != "0" * 32
    assert not receiver.wait_span("tapper-gateway", trace_id).get("parentSpanId")

    # The exporter's counters in /_tapper/status.
    def exported() -> Optional[Dict[str, Any]]:
        t = get_json(gw.url + "/_tapper/status")["gateway"].get("tracing")
        return t if t and t["exported"] >= 3 else None

    tracing = wait_for(exported, 10, "the status to count the exported spans")
    assert tracing["endpoint"] == receiver.url + "/v1/traces"
    assert tracing["sample_rate"] == 1 and tracing["dropped"] == 0 and tracing["failed"] == 0


def test_unsampled_parent_is_followed(gateway_available: None, procs: Procs, receiver: Receiver) -> None:
    # Sample rate 0 for new traces; a sampled parent still wins, an unsampled one is not recorded.
    gw = start_gateway(procs, "--otlp-endpoint", receiver.url, "--trace-sample-rate", "0")
    _traced_app(gw, procs, receiver)
    unsampled_trace = "11111111111111111111111111111111"
    sampled_trace = "22222222222222222222222222222222"
    with http() as c:
        r = c.get(gw.url + "/users/1", headers={"traceparent": f"00-{unsampled_trace}-{CLIENT_PARENT}-00"})
        assert r.json()["traceparent"].startswith(f"00-{unsampled_trace}-") and r.json()["traceparent"].endswith("-00")
        r = c.get(gw.url + "/users/2", headers={"traceparent": f"00-{sampled_trace}-{CLIENT_PARENT}-01"})
        assert r.json()["traceparent"].endswith("-01")
        r = c.get(gw.url + "/users/3")
        _, new_trace, _, flags = r.json()["traceparent"].split("-")
        assert flags == "00"
    receiver.wait_span("tapper-gateway", sampled_trace)
    # The unsampled requests came first and were never recorded.
    assert receiver.find("tapper-gateway", unsampled_trace) is None
    assert receiver.find("tapper-gateway", new_trace) is None


def test_tracing_off_passes_traceparent_unchanged(gateway_available: None, procs: Procs) -> None:
    gateway = start_gateway(procs)
    app = procs.uvicorn(PLAIN_APP, "users", env=gateway.service_env())
    gateway.registry.wait_instance("users", f"127.0.0.1-{app.port}")
    wait_routable(gateway, "/users/0")
    for sent in (f"00-{CLIENT_TRACE_ID}-{CLIENT_PARENT}-01", "not-a-traceparent", "ff-" + "a" * 32 + "-" + "b" * 16 + "-01"):
        with http() as c:
            r = c.get(gateway.url + "/users/5", headers={"traceparent": sent, "tracestate": "k=v"})
        assert r.status_code == 200
        assert r.json()["traceparent"] == sent
        assert r.json()["tracestate"] == "k=v"
    with http() as c:
        assert c.get(gateway.url + "/users/5").json()["traceparent"] is None  # none is invented
    assert "tracing" not in get_json(gateway.url + "/_tapper/status")["gateway"]


class SilentReceiver:
    """Accepts connections and reads what comes, but never answers."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.accepted = 0
        self.conns: List[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            self.conns.append(conn)
            threading.Thread(target=self._drain, args=(conn,), daemon=True).start()

    @staticmethod
    def _drain(conn: socket.socket) -> None:
        try:
            while conn.recv(65536):
                pass
        except OSError:
            pass

    def close(self) -> None:
        self.sock.close()
        for c in self.conns:
            # shutdown, not only close: a close does not end a recv blocked in another thread,
            # so the gateway would not see the connection end.
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            c.close()


@pytest.mark.parametrize("mode", ["refused", "chunked", "unreachable", "silent"])
def test_export_outcomes_are_counted(gateway_available: None, procs: Procs, mode: str) -> None:
    # What the exporter does with a receiver that refuses (503: failed), answers with a chunked
    # body (exported; the connection is not reused), is not there (failed), or takes the
    # request and never answers (failed when the export's 10 s timeout passes, the connection
    # dropped; the gateway serves on meanwhile); never retried.
    silent = SilentReceiver() if mode == "silent" else None
    receiver = Receiver(status=503 if mode == "refused" else 200, chunked=mode == "chunked")
    url = silent.url if silent else receiver.url
    if mode == "unreachable":
        receiver.close()
        url = f"http://127.0.0.1:{free_port()}"
    try:
        gw = start_gateway(procs, "--otlp-endpoint", url)
        app = procs.uvicorn(PLAIN_APP, "users", env=gw.service_env())
        gw.registry.wait_instance("users", f"127.0.0.1-{app.port}")
        wait_routable(gw, "/users/0")
        with http() as c:
            for i in range(5):
                assert c.get(gw.url + f"/users/{i}").status_code == 200

        def settled() -> Optional[Dict[str, Any]]:
            t = get_json(gw.url + "/_tapper/status")["gateway"].get("tracing")
            return t if t and t["exported"] + t["failed"] >= 5 else None

        tracing = wait_for(settled, 30 if silent else 15, "the exporter to count the spans")
        if silent:
            # The first export timed out; the gateway answered all along, and the next export
            # goes out on a new connection (the silent one was dropped).
            assert tracing["failed"] >= 5 and tracing["exported"] == 0
            with http() as c:
                for i in range(5, 10):
                    assert c.get(gw.url + f"/users/{i}").status_code == 200
            wait_for(lambda: silent.accepted >= 2 or None, 30, "a second connection after the timeout")
        if mode == "chunked":
            assert tracing["exported"] >= 5 and tracing["failed"] == 0
            with receiver.lock:
                # One connection per request: a chunked answer is not read to its end.
                assert receiver.posts == len(receiver.connections)
            assert len(receiver.spans) >= 5
        elif not silent:
            assert tracing["failed"] >= 5 and tracing["exported"] == 0
        assert tracing["dropped"] == 0
        if mode == "refused":
            with receiver.lock:
                posts = receiver.posts
            assert posts >= 1 and not receiver.spans
    finally:
        if mode != "unreachable":
            receiver.close()
        if silent:
            silent.close()
