#!/usr/bin/env python3
"""Presence churn against two vigil nodes of one cluster, bounded in count
and time. Usage: cluster_churn.py PORT_A PORT_B SECONDS

- churn: HELLO on a fresh connection to either node, then close, as fast as
  one thread can (each connect/HELLO/close is one claim and one release in
  Redis); reports how many per second;
- takeover: HELLO an id on node A, then the same id on node B, and time
  until A's connection gets BYE replaced (across nodes, through Redis);
  reports p50 and p99 over the rounds.
Prints one JSON line."""
import json
import socket
import sys
import time

pa, pb, seconds = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])


def hello(port, cid):
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    s.sendall(f"HELLO {cid}\n".encode())
    buf = b""
    while not buf.endswith(b"\n"):
        chunk = s.recv(4096)
        if not chunk:
            raise RuntimeError("closed before WELCOME")
        buf += chunk
    assert buf.startswith(b"WELCOME"), buf
    return s


n = 0
end = time.monotonic() + seconds / 2
while time.monotonic() < end and n < 1_000_000:
    s = hello(pa if n % 2 else pb, f"churn-{n}")
    s.close()
    n += 1
churn_s = seconds / 2

lat = []
end = time.monotonic() + seconds / 2
k = 0
while time.monotonic() < end and k < 100_000:
    cid = f"take-{k}"
    old = hello(pa, cid)
    time.sleep(0.02)  # let A's claim reach Redis first
    t0 = time.monotonic()
    new = hello(pb, cid)
    old.settimeout(5)
    got = old.recv(100)
    lat.append((time.monotonic() - t0) * 1000)
    assert got.startswith(b"BYE replaced"), got
    old.close()
    new.close()
    k += 1
lat.sort()
pct = lambda q: round(lat[min(len(lat) - 1, int(q * len(lat)))], 2) if lat else None
print(json.dumps({
    "churn_per_s": round(n / churn_s),
    "presence_updates_per_s": round(2 * n / churn_s),
    "takeovers": len(lat),
    "takeover_p50_ms": pct(0.50),
    "takeover_p99_ms": pct(0.99),
}))
