"""Clients of reeld's server-sent event streams, shared by the SSE tests:
the WHATWG `eventsource` npm client (sse_client.js), a whole-body HTTP/1.1
read, a raw socket reader that keeps reading in a thread, and a parser of
text/event-stream bodies."""

import http.client
import json
import os
import socket
import subprocess
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def node_client(r, path, last_id=None, stop_after=None):
    args = ["node", os.path.join(HERE, "sse_client.js"), r.url + path, r.token, last_id or "", str(stop_after or "")]
    return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def read_node(proc, timeout=60):
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
    events, other = [], []
    for line in out.splitlines():
        try:
            events.append(json.loads(line))
        except ValueError:
            other.append(line)
    return events, other


def raw_stream(r, path, headers=None, token=None, timeout=30):
    """GET path over HTTP/1.1 and read the whole chunked body (until the terminator or timeout).
    Returns (status, headers, text, ended_cleanly)."""
    conn = http.client.HTTPConnection("127.0.0.1", r.port, timeout=timeout)
    hd = {"Authorization": "Bearer " + (token or r.token)}
    hd.update(headers or {})
    conn.request("GET", path, headers=hd)
    resp = conn.getresponse()
    try:
        body = resp.read()
        ended = True
    except (http.client.IncompleteRead, socket.timeout, OSError) as e:
        body = getattr(e, "partial", b"") or b""
        ended = False
    conn.close()
    return resp.status, {k.lower(): v for k, v in resp.getheaders()}, body.decode("utf-8", "replace"), ended


def parse_sse(text):
    """Events (dicts with id, event, data) in a text/event-stream body, plus the comments and fields seen."""
    events, comments, retry = [], [], None
    for block in text.replace("\r\n", "\n").split("\n\n"):
        ev = {}
        for line in block.split("\n"):
            if not line:
                continue
            if line.startswith(":"):
                comments.append(line)
                continue
            name, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if name == "retry":
                retry = value
            elif name in ("id", "event", "data"):
                ev[name] = value
        if "event" in ev:
            ev["data"] = json.loads(ev["data"])
            events.append(ev)
    return events, comments, retry


class RawReader(threading.Thread):
    """Reads GET path as raw bytes until stopped; .text() is the event-stream body (chunk framing removed)."""

    def __init__(self, r, path, rcvbuf=None, pause=0):
        super().__init__(daemon=True)
        self.pause = pause
        self.sock = socket.socket()
        if rcvbuf:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(0.5)
        self.sock.connect(("127.0.0.1", r.port))
        self.sock.sendall(("GET %s HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n\r\n" % (path, r.token)).encode())
        self.buf = bytearray()  # appends in place: a reader that copied all it had per read would fall behind
        self.stopped = False
        self.start()

    def run(self):
        while not self.stopped:
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                continue
            except OSError:
                break
            if not chunk:
                break
            self.buf += chunk
            if self.pause:
                time.sleep(self.pause)

    def stop(self):
        self.stopped = True
        self.join(5)
        self.sock.close()

    def text(self):
        body = self.buf.split(b"\r\n\r\n", 1)[1] if b"\r\n\r\n" in self.buf else b""
        out, pos = bytearray(), 0
        while pos < len(body):  # de-chunk
            eol = body.find(b"\r\n", pos)
            if eol < 0:
                break
            size = int(body[pos:eol], 16)
            out += body[eol + 2:eol + 2 + size]
            pos = eol + 2 + size + 2
            if size == 0:
                break
        return out.decode("utf-8", "replace")
