"""Tracing end to end: the gateway's span and a FastAPI app's span join one trace.

A real OTLP/HTTP receiver (this file's, on 127.0.0.1) takes spans from both sides: the gateway
(`--otlp-endpoint`, OTLP JSON) and a FastAPI app under uvicorn instrumented with
opentelemetry-instrumentation-fastapi (opentelemetry-exporter-otlp-proto-http, OTLP protobuf).
The test then checks what a tracing backend would show: one trace id, the app's server span a
child of the gateway's span, the gateway span named after the route template.
"""

from __future__ import annotations

import json
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
    """An OTLP/HTTP trace receiver: `POST /v1/traces`, JSON or protobuf; keeps every span."""

    def __init__(self) -> None:
        self.spans: List[Dict[str, Any]] = []
        self.content_types: List[str] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                kind = self.headers.get("Content-Type", "")
                if self.path != "/v1/traces":
                    self.send_response(404)
                    self.end_headers()
                    return
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
                    self.send_response(415)
                    self.end_headers()
                    return
                with receiver.lock:
                    receiver.content_types.append(kind)
                    for rs in doc.get("resourceSpans", []):
                        attributes = rs.get("resource", {}).get("attributes", [])
                        service = next((a["value"].get("stringValue") for a in attributes if a["key"] == "service.name"), None)
                        for ss in rs.get("scopeSpans", []):
                            for s in ss.get("spans", []):
                                s["service.name"] = service
                                s["attrs"] = {a["key"]: next(iter(a["value"].values()), None) for a in s.get("attributes", [])}
                                receiver.spans.append(s)
                self.send_response(200)
                self.send_header("Content-Type", kind or "application/json")
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

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
    assert gateway_span["kind"] == 2
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
    assert {"application/json", "application/x-protobuf"} <= {t.split(";")[0] for t in receiver.content_types}

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
