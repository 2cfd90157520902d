#!/usr/bin/python3
"""The webhook receiver of bench/events.sh, the same for reel and the peer:
an HTTP/1.1 server (asyncio on uvloop, keep-alive, no framework) that answers
every POST with 204 and checks each delivery's Standard Webhooks signature
(HMAC-SHA256 over "webhook-id.webhook-timestamp.body" with the secret's key),
so that a fast sender of bad signatures would not count.

  hook_receiver.py SECRET        (SECRET is whsec_ + base64)

Prints "ready PORT" once it listens on 127.0.0.1 (a free port). Commands on
stdin, one a line, each answered with one JSON line:

  stats   {"received", "unique_ids", "bad_signatures", "malformed",
           "first_ns", "last_ns", "cpu_s"}   times are CLOCK_MONOTONIC ns
  reset   forgets what was counted ({"reset": true})

EOF ends it.
"""
import asyncio
import base64
import hashlib
import hmac
import json
import os
import socket
import sys
import time

try:
    import uvloop
except ImportError:  # plain asyncio still works, only slower
    uvloop = None

HEAD_MAX = 16384
BODY_MAX = 1 << 20

secret = sys.argv[1]
KEY = base64.b64decode(secret[len("whsec_"):] if secret.startswith("whsec_") else secret)
st = {"received": 0, "ids": set(), "bad_signatures": 0, "malformed": 0, "first_ns": 0, "last_ns": 0}


def verify(headers, body):
    msg_id, ts, sig = headers.get(b"webhook-id"), headers.get(b"webhook-timestamp"), headers.get(b"webhook-signature")
    if not (msg_id and ts and sig):
        return None, False
    mac = base64.b64encode(hmac.new(KEY, msg_id + b"." + ts + b"." + body, hashlib.sha256).digest())
    ok = any(s.startswith(b"v1,") and hmac.compare_digest(s[3:], mac) for s in sig.split(b" "))
    return msg_id, ok


class Conn(asyncio.Protocol):
    def connection_made(self, transport):
        self.t = transport
        self.buf = b""

    def data_received(self, data):
        self.buf += data
        while True:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                if len(self.buf) > HEAD_MAX:
                    self.t.close()
                return
            lines = self.buf[:end].split(b"\r\n")
            headers = {}
            for line in lines[1:]:
                k, _, v = line.partition(b":")
                headers[k.strip().lower()] = v.strip()
            try:
                n = int(headers.get(b"content-length", b"0"))
            except ValueError:
                n = -1
            if n < 0 or n > BODY_MAX or b"chunked" in headers.get(b"transfer-encoding", b""):
                st["malformed"] += 1
                self.t.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                self.t.close()
                return
            if len(self.buf) < end + 4 + n:
                return
            body = self.buf[end + 4:end + 4 + n]
            self.buf = self.buf[end + 4 + n:]
            now = time.monotonic_ns()
            msg_id, ok = verify(headers, body)
            if msg_id is None:
                st["malformed"] += 1
            elif not ok:
                st["bad_signatures"] += 1
            else:
                st["received"] += 1
                st["ids"].add(msg_id)
                st["first_ns"] = st["first_ns"] or now
                st["last_ns"] = now
            close = headers.get(b"connection", b"").lower() == b"close"
            self.t.write(b"HTTP/1.1 204 No Content\r\n" + (b"Connection: close\r\n" if close else b"") + b"\r\n")
            if close:
                self.t.close()
                return


def on_stdin(loop):
    line = sys.stdin.readline()
    if not line:
        loop.stop()
        return
    cmd = line.strip()
    if cmd == "stats":
        out = {"received": st["received"], "unique_ids": len(st["ids"]), "bad_signatures": st["bad_signatures"],
               "malformed": st["malformed"], "first_ns": st["first_ns"], "last_ns": st["last_ns"],
               "cpu_s": time.process_time()}
    elif cmd == "reset":
        st.update(received=0, ids=set(), bad_signatures=0, malformed=0, first_ns=0, last_ns=0)
        out = {"reset": True}
    else:
        out = {"error": "unknown command"}
    print(json.dumps(out), flush=True)


def main():
    if uvloop:
        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    loop = asyncio.new_event_loop()
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(1024)
    server = loop.run_until_complete(loop.create_server(Conn, sock=sock, backlog=1024))
    loop.add_reader(sys.stdin.fileno(), on_stdin, loop)
    print("ready %d" % sock.getsockname()[1], flush=True)
    try:
        loop.run_forever()
    finally:
        server.close()
        os._exit(0)


if __name__ == "__main__":
    main()
