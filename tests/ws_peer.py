"""A WebSocket peer nobody here wrote: the `websockets` library from PyPI,
driven by tests/ws.rs. Each scenario prints what it saw, one line per
step, and exits 0; the Rust test reads the lines.

Usage: ws_peer.py SCENARIO ARGS...
  alive WS_URL SILENT_S      HELLO, then silence: only the server's pings
                             (answered by the library) keep it online
  takeover WS_URL TCP_PORT   the same id on a WebSocket and on TCP, both ways
  wss WSS_URL CA_FILE        HELLO and PING over TLS
"""

import asyncio
import socket
import ssl
import sys

import websockets


def say(*words):
    print(*words, flush=True)


async def alive(url, silent):
    # ping_interval=None: the library never pings on its own, so only the
    # server's pings (which it answers) can keep the connection alive.
    async with websockets.connect(url, ping_interval=None) as ws:
        await ws.send("HELLO py-alive")
        say("got", await ws.recv())
        await asyncio.sleep(float(silent))
        await ws.send("PING after-silence")
        say("got", await ws.recv())
        await ws.close(1000, "done")
        say("closed", ws.close_code, ws.close_reason)


def tcp_hello(port, ident):
    s = socket.create_connection(("127.0.0.1", int(port)), timeout=5)
    s.sendall(b"HELLO " + ident.encode() + b"\n")
    return s


def tcp_line(s):
    data = b""
    while not data.endswith(b"\n"):
        chunk = s.recv(1)
        if not chunk:
            break
        data += chunk
    return data.decode().strip()


async def takeover(url, port):
    # TCP first, then the page takes the id over...
    tcp = tcp_hello(port, "pat")
    say("tcp", tcp_line(tcp))
    async with websockets.connect(url, ping_interval=None) as ws:
        await ws.send("HELLO pat")
        say("ws", await ws.recv())
        say("tcp", tcp_line(tcp))
        tcp.close()
        # ...and TCP takes it back.
        tcp2 = tcp_hello(port, "pat")
        say("tcp2", tcp_line(tcp2))
        try:
            while True:
                say("ws", await asyncio.wait_for(ws.recv(), 5))
        except websockets.ConnectionClosed:
            say("ws closed", ws.close_code, ws.close_reason)
        tcp2.close()


async def wss(url, ca):
    ctx = ssl.create_default_context(cafile=ca)
    async with websockets.connect(url, ssl=ctx, ping_interval=None) as ws:
        await ws.send("HELLO py-tls")
        say("got", await ws.recv())
        await ws.send("PING 1")
        say("got", await ws.recv())


def main():
    scenario, *args = sys.argv[1:]
    run = {"alive": alive, "takeover": takeover, "wss": wss}[scenario]
    asyncio.run(asyncio.wait_for(run(*args), 30))


if __name__ == "__main__":
    main()
