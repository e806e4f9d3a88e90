#!/usr/bin/env python3
"""Holds N idle connections to a vigil server until stdin closes.

Usage: idle_clients.py HOST:PORT N [--hello]
Prints "ready <opened> <failed>" on stdout once all connections are open
(and, with --hello, welcomed), then waits for stdin to close or 120 s.
"""
import select
import socket
import sys


def main():
    host, port = sys.argv[1].rsplit(":", 1)
    n = int(sys.argv[2])
    hello = "--hello" in sys.argv[3:]
    socks, failed = [], 0
    for i in range(n):
        try:
            s = socket.create_connection((host, int(port)), timeout=10)
            if hello:
                s.sendall(b"HELLO idle-%d\n" % i)
            socks.append(s)
        except OSError:
            failed += 1
    if hello:
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
