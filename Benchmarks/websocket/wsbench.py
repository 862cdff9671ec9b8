#!/usr/bin/env python3
"""WebSocket benchmark peers, standard library only (asyncio), loopback only.

  wsbench.py server PORT
      A WebSocket echo server (RFC 6455 handshake, frames echoed unmasked); `GET /health` -> 200.
  wsbench.py echo URL --conns N --seconds D --size BYTES
      N connections, each sending a BYTES text message and waiting for its echo, over and over
      for D seconds; prints JSON {"round_trips": ..., "per_second": ..., "p50_ms": ..., "p99_ms": ...}.
  wsbench.py idle URL --conns N
      Opens N WebSockets (each checked with one echo), prints "open N" and holds them, silent,
      until stdin closes; then closes them.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
import struct
import sys
import time
from urllib.parse import urlparse

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


# -- server ------------------------------------------------------------------------------------


async def serve_conn(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        headers = {}
        for line in lines[1:]:
            if ":" in line:
                k, v = line.split(":", 1)
                headers[k.strip().lower()] = v.strip()
        if "websocket" not in headers.get("upgrade", "").lower():
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: text/plain\r\n\r\nok")
            await writer.drain()
            writer.close()
            return
        accept = base64.b64encode(hashlib.sha1(headers["sec-websocket-key"].encode() + GUID).digest())
        writer.write(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: " + accept + b"\r\n\r\n")
        while True:
            b0, b1 = await reader.readexactly(2)
            n = b1 & 0x7F
            if n == 126:
                (n,) = struct.unpack("!H", await reader.readexactly(2))
            elif n == 127:
                (n,) = struct.unpack("!Q", await reader.readexactly(8))
            mask = await reader.readexactly(4) if b1 & 0x80 else b""
            payload = await reader.readexactly(n)
            if mask:
                payload = unmask(payload, mask)
            opcode = b0 & 0x0F
            if opcode == 8:
                writer.write(frame(8, payload[:2], masked=False))
                await writer.drain()
                break
            if opcode == 9:
                writer.write(frame(10, payload, masked=False))
            elif opcode in (1, 2):
                writer.write(frame(opcode, payload, masked=False))
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


def unmask(payload: bytes, mask: bytes) -> bytes:
    n = len(payload)
    key = int.from_bytes((mask * (n // 4 + 1))[:n], "big")
    return (int.from_bytes(payload, "big") ^ key).to_bytes(n, "big")


def frame(opcode: int, payload: bytes, masked: bool) -> bytes:
    n = len(payload)
    head = bytes([0x80 | opcode])
    bit = 0x80 if masked else 0
    if n < 126:
        head += bytes([bit | n])
    elif n < 65536:
        head += bytes([bit | 126]) + struct.pack("!H", n)
    else:
        head += bytes([bit | 127]) + struct.pack("!Q", n)
    if not masked:
        return head + payload
    mask = os.urandom(4)
    return head + mask + unmask(payload, mask)


async def server(port: int) -> None:
    srv = await asyncio.start_server(serve_conn, "127.0.0.1", port, backlog=4096, limit=1 << 24)
    async with srv:
        await srv.serve_forever()


# -- clients -----------------------------------------------------------------------------------


async def open_ws(url: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    u = urlparse(url)
    host = u.hostname or "127.0.0.1"
    assert host in ("127.0.0.1", "localhost"), "loopback only"
    reader, writer = await asyncio.open_connection(host, u.port or 80, limit=1 << 24)
    key = base64.b64encode(os.urandom(16))
    writer.write(
        b"GET " + (u.path or "/").encode() + b" HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
        b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: " + key + b"\r\n\r\n"
    )
    head = await reader.readuntil(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 101"):
        raise RuntimeError(f"handshake refused: {head[:200]!r}")
    want = base64.b64encode(hashlib.sha1(key + GUID).digest())
    if want.lower() not in head.lower():
        raise RuntimeError("bad Sec-WebSocket-Accept")
    return reader, writer


async def read_frame(reader: asyncio.StreamReader) -> bytes:
    b0, b1 = await reader.readexactly(2)
    n = b1 & 0x7F
    if n == 126:
        (n,) = struct.unpack("!H", await reader.readexactly(2))
    elif n == 127:
        (n,) = struct.unpack("!Q", await reader.readexactly(8))
    return await reader.readexactly(n)


async def echo(url: str, conns: int, seconds: float, size: int) -> None:
    message = b"x" * size
    lat: list[float] = []
    sockets = [await open_ws(url) for _ in range(conns)]
    deadline = time.perf_counter() + seconds

    async def loop(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            t = time.perf_counter()
            if t >= deadline:
                return
            writer.write(frame(1, message, masked=True))
            got = await read_frame(reader)
            lat.append(time.perf_counter() - t)
            if len(got) != size:
                raise RuntimeError("short echo")

    started = time.perf_counter()
    await asyncio.gather(*(loop(r, w) for r, w in sockets))
    elapsed = time.perf_counter() - started
    for _, w in sockets:
        w.close()
    lat.sort()
    print(json.dumps({
        "round_trips": len(lat), "per_second": round(len(lat) / elapsed, 1),
        "p50_ms": round(lat[len(lat) // 2] * 1000, 3), "p99_ms": round(lat[int(len(lat) * 0.99)] * 1000, 3),
    }))


async def idle(url: str, conns: int) -> None:
    sem = asyncio.Semaphore(200)
    opened = []

    async def one() -> None:
        async with sem:
            r, w = await open_ws(url)
            w.write(frame(1, b"hi", masked=True))
            assert await read_frame(r) == b"hi"
            opened.append((r, w))

    await asyncio.gather(*(one() for _ in range(conns)))
    print(f"open {len(opened)}", flush=True)
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, sys.stdin.read)
    for _, w in opened:
        w.close()


def main() -> None:
    args = sys.argv[1:]
    opts = {args[i]: args[i + 1] for i in range(2, len(args) - 1, 2) if args[i].startswith("--")}
    if args[0] == "server":
        asyncio.run(server(int(args[1])))
    elif args[0] == "echo":
        asyncio.run(echo(args[1], int(opts.get("--conns", "16")), float(opts.get("--seconds", "10")), int(opts.get("--size", "32"))))
    elif args[0] == "idle":
        asyncio.run(idle(args[1], int(opts.get("--conns", "10000"))))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
