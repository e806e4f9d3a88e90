#!/usr/bin/env python3
"""Opens N connections that each say HELLO, get WELCOME, then fall silent,
and times how long after its last byte the server closes each one.

Usage: silent_clients.py HOST:PORT N SPREAD_MS LIMIT_S

HELLOs are spread evenly over SPREAD_MS, so the last bytes fall at every
phase of the server's tick. For each connection: the monotonic time just
after HELLO was written (its last byte), and the time the end of stream was
seen; also what the server said last (BYE <reason>). Prints one JSON object:
{"ids": [...], "sent": [...], "eof": [...], "bye": [...], "failed": n}, times
in seconds. Gives up after LIMIT_S seconds.
"""
import json
import select
import socket
import sys
import time


def main():
    host, port = sys.argv[1].rsplit(":", 1)
    n, spread_ms, limit_s = int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
    start = time.monotonic()
    ep = select.epoll()
    socks, ids, sent, eof, bye, buf = [], [], [], [], [], []
    failed = 0
    for i in range(n):
        due = start + spread_ms / 1000 * i / n
        while time.monotonic() < due:
            time.sleep(max(0.0, min(0.001, due - time.monotonic())))
        try:
            s = socket.create_connection((host, int(port)), timeout=5)
            cid = "silent-%d" % i
            s.sendall(b"HELLO %s\n" % cid.encode())
            t = time.monotonic()
            s.setblocking(False)
        except OSError:
            failed += 1
            continue
        ep.register(s.fileno(), select.EPOLLIN)
        socks.append(s)
        ids.append(cid)
        sent.append(t)
        eof.append(None)
        bye.append(None)
        buf.append(b"")
    by_fd = {s.fileno(): k for k, s in enumerate(socks)}
    left = len(socks)
    while left and time.monotonic() - start < limit_s:
        for fd, _ in ep.poll(0.05):
            k = by_fd[fd]
            while True:
                try:
                    chunk = socks[k].recv(4096)
                except BlockingIOError:
                    break
                except OSError:
                    chunk = b""
                if not chunk:
                    eof[k] = time.monotonic()
                    ep.unregister(fd)
                    left -= 1
                    break
                buf[k] += chunk
    for k, b in enumerate(buf):
        lines = b.decode(errors="replace").splitlines()
        bye[k] = lines[-1] if lines and lines[-1].startswith("BYE") else None
        socks[k].close()
    print(json.dumps({"ids": ids, "sent": sent, "eof": eof, "bye": bye, "failed": failed}))


if __name__ == "__main__":
    main()
