#!/usr/bin/env python3
"""1,000 concurrent `GET /v1/events` subscribers (issue 11).

- 1,000 HTTP/1.1 streams are opened on one reeld and all answer 200 with the
  `retry:` field; reeld's RSS is read before and after (idle), and the cost
  per idle subscriber is reported (and bounded at 64 KiB, which says that no
  stream holds a request-sized buffer; not checked under AddressSanitizer,
  whose quarantine keeps freed memory);
- a burst of 200 jobs (a command pipeline that reports a stage and exits)
  runs to the end while every subscriber reads: each subscriber receives
  every event of the store, in order, with no gap or duplicate (compared
  with a replay of the store read afterwards, by count, sum and last id,
  and checked to increase on each stream);
- `reel_event_streams` in /metrics says 1000 while they are open;
- closing them all brings `reel_event_streams` back to 0.

How it fails: a fan-out that stops at a per-loop or per-read limit, drops a
subscriber that is busy, or skips an event for some subscribers leaves a
count or sum unequal; a stream that keeps its request buffers shows in RSS.
"""

import os
import re
import resource
import selectors
import socket
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import reelharness as h  # noqa: E402
from sseclients import RawReader, parse_sse  # noqa: E402

SUBSCRIBERS = 1000
JOBS = 200
ID_LINE = re.compile(rb"(?:^|\n)id: (\d+)\n")


class Subscriber:
    """One raw stream: counts the ids it receives (they may be split across reads)."""

    def __init__(self, port, token):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.sock.sendall(("GET /v1/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n\r\n" % token).encode())
        self.sock.setblocking(False)
        self.head = b""
        self.status = 0
        self.ready = False  # the head and the retry field arrived
        self.rest = b""
        self.count = 0
        self.total = 0
        self.last = 0
        self.ordered = True

    def feed(self, data):
        if not self.ready:
            self.head += data
            if b"\r\n\r\n" not in self.head or b"retry:" not in self.head:
                return
            self.status = int(self.head.split(b" ", 2)[1])
            data = self.head.split(b"\r\n\r\n", 1)[1]
            self.ready = True
        buf = self.rest + data
        cut = buf.rfind(b"\n\n")  # parse whole events only; keep the tail for the next read
        if cut < 0:
            self.rest = buf
            return
        whole, self.rest = buf[:cut + 2], buf[cut + 2:]
        for m in ID_LINE.finditer(whole):
            i = int(m.group(1))
            if i <= self.last:
                self.ordered = False
            self.last = i
            self.count += 1
            self.total += i


def pump(sel, seconds, until=None):
    """Reads every readable subscriber for up to seconds, or until until() is true."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for key, _ in sel.select(0.1):
            sub = key.data
            try:
                data = sub.sock.recv(65536)
            except BlockingIOError:
                continue
            except OSError:
                data = b""
            if not data:
                sel.unregister(sub.sock)
                continue
            sub.feed(data)
        if until and until():
            return True
    return bool(until and until())


def metric(r, name):
    status, _, text = r.request("GET", "/metrics", token=False)
    for line in (text.decode() if isinstance(text, bytes) else text).splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return None


def body(c):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = SUBSCRIBERS + 512
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(want, hard), hard))
    if resource.getrlimit(resource.RLIMIT_NOFILE)[0] < want:
        c.fail("the test needs %d open files (ulimit -n is %d)" % (want, soft))
        return
    tmp = tempfile.mkdtemp(prefix="reel-fanout-")
    script = h.write_script(tmp, "job.sh", """
        echo "REEL_PROGRESS 50 clips"
        mkdir -p output && printf v > output/final_video.mp4
    """)
    with h.Reeld(service={"sse_max_streams_per_client": SUBSCRIBERS + 10, "max_queue_depth": 10000, "workers": 2},
                 pipeline={"default_backend": "command", "command": [script]}) as r:
        time.sleep(0.3)
        rss_before = h.rss_kb(r.proc.pid)
        sel = selectors.DefaultSelector()
        subs = []
        for _ in range(SUBSCRIBERS):
            s = Subscriber(r.port, r.token)
            subs.append(s)
            sel.register(s.sock, selectors.EVENT_READ, s)
        all_ready = pump(sel, 60, lambda: all(s.ready for s in subs))
        c.check(all_ready and all(s.status == 200 for s in subs),
                "%d event streams open, each 200 with its retry field (%d ready)"
                % (SUBSCRIBERS, sum(s.ready for s in subs)))
        pump(sel, 1.0)  # idle: nothing to send but nothing is read either
        rss_idle = h.rss_kb(r.proc.pid)
        per = (rss_idle - rss_before) / SUBSCRIBERS
        print("info   RSS: %d KiB before, %d KiB with %d idle subscribers: %.1f KiB per subscriber"
              % (rss_before, rss_idle, SUBSCRIBERS, per))
        if h.sanitized():
            print("skip   RSS per idle subscriber bound: AddressSanitizer build (its quarantine keeps freed memory)")
        else:
            c.check(per < 64, "an idle subscriber costs %.1f KiB of RSS (< 64)" % per)
        c.eq(metric(r, "reel_event_streams"), SUBSCRIBERS, "reel_event_streams counts them")

        # the burst
        ids = []
        for i in range(JOBS):
            status, _, job = r.json("POST", "/v1/jobs", {"prompt": "burst %d" % i})
            if status != 202:
                c.fail("POST %d answered %d" % (i, status))
                return
            ids.append(job["id"])
            if i % 20 == 19:
                pump(sel, 0.01)
        checked = [0.0, False]

        def all_finished():  # asked at most twice a second, while the subscribers are read
            if time.monotonic() - checked[0] >= 0.5:
                checked[0] = time.monotonic()
                checked[1] = metric(r, 'reel_jobs{status="finished"}') == JOBS
            return checked[1]
        done = pump(sel, 120, all_finished)
        c.check(done, "the %d jobs of the burst finished" % JOBS)

        # the store's events, replayed by one reader
        replay = RawReader(r, "/v1/events?after=0")
        time.sleep(0.2)
        h.wait_for(lambda: parse_sse(replay.text())[0] and
                   parse_sse(replay.text())[0][-1]["id"] == str(max(s.last for s in subs)), 10)
        replay.stop()
        store_ids = [int(e["id"]) for e in parse_sse(replay.text())[0]]
        finished = sum(1 for e in parse_sse(replay.text())[0] if e["event"] == "job.finished")
        c.eq(finished, JOBS, "the store holds a job.finished for each job of the burst")
        want_last, want_count, want_total = store_ids[-1], len(store_ids), sum(store_ids)
        # every subscriber reaches the last event
        pump(sel, 30, lambda: all(s.last >= want_last for s in subs))
        got_all = sum(1 for s in subs if (s.count, s.total, s.last) == (want_count, want_total, want_last))
        c.eq(got_all, SUBSCRIBERS, "subscribers that received all %d events of the store (count, sum, last id)"
             % want_count)
        c.check(all(s.ordered for s in subs), "every stream's ids increase")
        short = [(s.count, s.last) for s in subs if s.count != want_count][:5]
        if short:
            print("info   some subscribers (count, last id): %s" % short)
        c.eq(r.log_text().count("event stream cut off"), 0, "no subscriber was cut off")

        sel.close()
        for s in subs:
            s.sock.close()
        c.check(h.wait_for(lambda: metric(r, "reel_event_streams") == 0, 20),
                "closed streams leave reel_event_streams at 0 (%s)" % metric(r, "reel_event_streams"))


if __name__ == "__main__":
    sys.exit(h.run(body))
