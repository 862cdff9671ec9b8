#!/usr/bin/env python3
"""A do-nothing OTLP/HTTP receiver for costing tracing: answers every POST 200 at once.

    Benchmarks/gateway/otlp-sink.py PORT
    TAPPER_ARGS="--otlp-endpoint http://127.0.0.1:PORT" Benchmarks/gateway/run.sh ...

Keeps connections alive (HTTP/1.1) and reads each body without parsing it; on SIGTERM or
Ctrl-C it prints how many export requests and bytes it took.
"""
import signal
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

stats = {"requests": 0, "bytes": 0}


class Sink(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # As a collector does (Go sets TCP_NODELAY on every connection), and the answer goes out in
    # one write: with Nagle on, the body's 2 bytes waited for the client's delayed ACK (40 ms),
    # capping the sink at 25 exports a second and the benchmark's spans were dropped, not sent.
    disable_nagle_algorithm = True

    def do_GET(self):  # noqa: N802 (readiness: the benchmark polls it before the load)
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_POST(self):  # noqa: N802
        n = int(self.headers.get("Content-Length", "0"))
        self.rfile.read(n)
        stats["requests"] += 1
        stats["bytes"] += n
        self.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}")

    def log_message(self, *args):
        pass


def main():
    server = ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Sink)

    def stop(*_):
        print(f"otlp-sink: {stats['requests']} export requests, {stats['bytes']} bytes", flush=True)
        sys.exit(0)

    signal.signal(signal.SIGTERM, stop)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        stop()


if __name__ == "__main__":
    main()
