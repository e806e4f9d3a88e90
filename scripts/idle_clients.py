#!/usr/bin/env python3
"""Holds N idle connections to a vigil server until stdin closes.

Usage: idle_clients.py HOST:PORT N [--hello] [--ws]
Prints "ready <opened> <failed>" on stdout once all connections are open
(and, with --hello, welcomed), then waits for stdin to close or 120 s.

--ws: each connection is a WebSocket (RFC 6455) one, for a server listening
on ws://: it sends the opening handshake (GET / with Upgrade: websocket and
a random Sec-WebSocket-Key) and reads the 101 answer, checking its
Sec-WebSocket-Accept; with --hello it then sends `HELLO <id>` as one masked
text frame and reads the WELCOME frame. A connection whose upgrade or
WELCOME fails counts as failed.
"""
import base64
import hashlib
import os
import select
import socket
import sys

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def ws_text(payload):
    """A masked text frame (client frames must be masked), payload < 126 B."""
    assert len(payload) < 126
    mask = os.urandom(4)
    return bytes([0x81, 0x80 | len(payload)]) + mask + bytes(
        b ^ mask[i % 4] for i, b in enumerate(payload))


def recv_into(s, buf, n):
    """Reads until buf holds at least n bytes; False at end of stream."""
    while len(buf) < n:
        chunk = s.recv(4096)
        if not chunk:
            return False
        buf += chunk
    return True


def ws_upgrade(s, buf, key):
    """Reads the handshake answer into buf (consumed); True if it is a 101
    with the right Sec-WebSocket-Accept."""
    while b"\r\n\r\n" not in buf:
        chunk = s.recv(4096)
        if not chunk:
            return False
        buf += chunk
    head, _, rest = bytes(buf).partition(b"\r\n\r\n")
    buf[:] = rest
    lines = head.split(b"\r\n")
    if not lines[0].startswith(b"HTTP/1.1 101"):
        return False
    accept = base64.b64encode(hashlib.sha1(key + GUID).digest())
    return any(l.split(b":", 1)[0].strip().lower() == b"sec-websocket-accept"
               and l.split(b":", 1)[1].strip() == accept for l in lines[1:])


def ws_read_frame(s, buf):
    """One (unmasked) server frame from buf/s: (opcode, payload) or None."""
    if not recv_into(s, buf, 2):
        return None
    n, at = buf[1] & 0x7F, 2
    if n >= 126:
        ext = 2 if n == 126 else 8
        if not recv_into(s, buf, 2 + ext):
            return None
        n, at = int.from_bytes(buf[2:2 + ext], "big"), 2 + ext
    if not recv_into(s, buf, at + n):
        return None
    op, payload = buf[0] & 0x0F, bytes(buf[at:at + n])
    del buf[:at + n]
    return op, payload


def main():
    host, port = sys.argv[1].rsplit(":", 1)
    n = int(sys.argv[2])
    hello = "--hello" in sys.argv[3:]
    ws = "--ws" in sys.argv[3:]
    socks, failed = [], 0
    keys, bufs = [], []
    for i in range(n):
        try:
            s = socket.create_connection((host, int(port)), timeout=10)
            if ws:
                key = base64.b64encode(os.urandom(16))
                s.sendall(b"GET / HTTP/1.1\r\nHost: %s:%s\r\nUpgrade: websocket\r\n"
                          b"Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
                          b"Sec-WebSocket-Version: 13\r\n\r\n" % (host.encode(), port.encode(), key))
                keys.append(key)
                bufs.append(bytearray())
            elif hello:
                s.sendall(b"HELLO idle-%d\n" % i)
            socks.append(s)
        except OSError:
            failed += 1
    if ws:
        ok = []
        for i, s in enumerate(socks):
            try:
                up = ws_upgrade(s, bufs[i], keys[i])
                if up and hello:
                    s.sendall(ws_text(b"HELLO idle-%d" % i))
            except OSError:
                up = False
            ok.append(up)
            failed += not up
        if hello:
            for i, s in enumerate(socks):
                if not ok[i]:
                    continue
                try:
                    frame = ws_read_frame(s, bufs[i])
                except OSError:
                    frame = None
                if frame is None or frame[0] != 1 or not frame[1].startswith(b"WELCOME"):
                    failed += 1
    elif hello:
        for s in socks:
            buf = b""
            while not buf.endswith(b"\n"):
                chunk = s.recv(256)
                if not chunk:
                    failed += 1
                    break
                buf += chunk
    print("ready", len(socks), failed, flush=True)
    select.select([sys.stdin], [], [], 120)


if __name__ == "__main__":
    main()
