"""Loopback test upstreams for the chaos script (standard library only).
  slow PORT     : every request answers 200 after ?ms=N milliseconds (default 2000)
  hang PORT     : accepts connections and never answers
"""
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse


class Slow(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        q = parse_qs(urlparse(self.path).query)
        time.sleep(int(q.get("ms", ["2000"])[0]) / 1000)
        body = b'{"slow": true}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def hang(port):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", port))
    s.listen(1024)
    held = []
    while True:
        c, _ = s.accept()
        held.append(c)  # never read, never answered, never closed


if __name__ == "__main__":
    mode, port = sys.argv[1], int(sys.argv[2])
    if mode == "slow":
        ThreadingHTTPServer.daemon_threads = True
        ThreadingHTTPServer(("127.0.0.1", port), Slow).serve_forever()
    else:
        hang(port)
