#!/usr/bin/env python3
"""Webhooks (SPEC section 8), with a receiver that verifies every delivery
with the official `standardwebhooks` npm package (webhook_receiver.js).

a. A receiver answering 500, 500, then 200 gets three attempts with one
   webhook-id, each signed (verified by standardwebhooks) with its own
   timestamp; the body is {"type", "timestamp", "data": job}; the delivery
   list shows it delivered after 3 attempts; metrics count the outcomes.
b. Retry-After is honoured: 503 with Retry-After: 2 (schedule 0, 0.2 s):
   the next attempt comes no sooner than 2 s later.
c. 410 disables the endpoint: a later job's delivery is failed without an
   attempt, and the log says why.
d. kill -9 of reeld between attempts, then a restart: the delivery still
   arrives, with the same webhook-id.
e. A receiver that hangs delays no other endpoint's delivery.
f. The secret never reaches the log, in any encoding.
"""

import base64
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import tempfile
import shutil
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import reelharness as h  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
KEY_B64 = "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


class Receiver:
    def __init__(self, script, secret=SECRET):
        self.proc = subprocess.Popen(["node", os.path.join(HERE, "webhook_receiver.js"), secret, script],
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        first = self.proc.stdout.readline().split()
        if len(first) != 2 or first[0] != "listening":
            raise RuntimeError("the receiver did not start: %r" % first)
        self.url = "http://127.0.0.1:%s/hook?token=receiver-query-secret" % first[1]
        self.lines = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        self.got = []

    def _read(self):
        for line in self.proc.stdout:
            try:
                self.lines.put(json.loads(line))
            except ValueError:
                pass

    def wait(self, n, timeout):
        deadline = time.monotonic() + timeout
        while len(self.got) < n and time.monotonic() < deadline:
            try:
                self.got.append(self.lines.get(timeout=0.1))
            except queue.Empty:
                pass
        return self.got

    def close(self):
        self.proc.kill()
        self.proc.wait()


def pipeline(tmp):
    script = h.write_script(tmp, "done.sh", "#!/bin/sh\nmkdir -p output && echo v > output/final_video.mp4\n")
    return {"default_backend": "command", "command": [script]}


def submit(r, prompt):
    status, _, job = r.json("POST", "/v1/jobs", {"prompt": prompt})
    if status != 202:
        raise RuntimeError("POST answered %d" % status)
    return job["id"]


def hook(url, schedule=None, events=None):
    w = {"url": url, "secret": SECRET}
    if schedule is not None:
        w["retry_schedule_seconds"] = schedule
    if events is not None:
        w["events"] = events
    return w


def body(c):
    if not c.check(os.path.isdir(os.path.join(h.SOURCE_DIR, "tools", "node_modules", "standardwebhooks")),
                   "standardwebhooks is installed in tools/node_modules (scripts/install-deps.sh --test)"):
        return
    tmp = tempfile.mkdtemp(prefix="reel-webhooks-")

    # a, f
    rx = Receiver("500,500,200")
    try:
        with h.Reeld(service={"webhooks": [hook(rx.url, [0, 0.2, 0.2, 0.2])]}, pipeline=pipeline(tmp)) as r:
            job = submit(r, "three tries")
            got = rx.wait(3, 30)
            c.eq(len(got), 3, "three attempts reached the receiver")
            c.eq(len({g["id"] for g in got}), 1, "all with one webhook-id")
            c.check(all(g["id"] and g["id"].startswith("msg_") for g in got), "a msg_ id: %r" % got[0]["id"] if got else "")
            c.check(all(g["verified"] for g in got), "standardwebhooks verified every attempt's signature (%s)" %
                    [g["error"] for g in got if not g["verified"]])
            c.check(all(g["content_type"] == "application/json" for g in got), "sent as application/json")
            if got:
                payload = json.loads(got[0]["body"])
                c.eq(payload.get("type"), "job.finished", "the body's type")
                c.check(isinstance(payload.get("timestamp"), str), "the body's timestamp")
                c.eq(payload.get("data", {}).get("id"), job, "data is the job")
                c.eq(payload.get("data", {}).get("status"), "finished", "data is the job as it ended")
            def listed():
                _, _, v = r.json("GET", "/v1/webhooks/deliveries")
                return v["deliveries"][0] if v and v.get("deliveries") else None
            d = h.wait_for(lambda: (lambda x: x if x and x["status"] == "delivered" else None)(listed()), 10)
            c.check(d is not None, "GET /v1/webhooks/deliveries lists it delivered")
            if d:
                c.eq(d["attempts"], 3, "after 3 attempts")
                c.eq(d["last_status"], 200, "the last answer was 200")
                c.check("receiver-query-secret" not in json.dumps(d), "the endpoint is listed without its query string")
            s, _, _ = r.request("GET", "/v1/webhooks/deliveries", token=False)
            c.eq(s, 401, "the delivery list needs the token")
            _, _, m = r.request("GET", "/metrics", token=False)
            m = m.decode()
            c.eq(h.metric(m, "reel_webhook_deliveries_total", 'outcome="retry"'), 2.0, "metrics: 2 retries")
            c.eq(h.metric(m, "reel_webhook_deliveries_total", 'outcome="delivered"'), 1.0, "metrics: 1 delivered")
            log = r.log_text()
            key = base64.b64decode(KEY_B64)
            c.check(KEY_B64 not in log and SECRET not in log and key.hex() not in log and "receiver-query-secret" not in log,
                    "the secret (and the endpoint's query string) never reach the log")
    finally:
        rx.close()

    # b
    rx = Receiver("503:retry-after=2,200")
    try:
        with h.Reeld(service={"webhooks": [hook(rx.url, [0, 0.2, 0.2])]}, pipeline=pipeline(tmp)) as r:
            submit(r, "retry after")
            got = rx.wait(2, 30)
            c.eq(len(got), 2, "two attempts")
            if len(got) == 2:
                gap = (got[1]["time_ms"] - got[0]["time_ms"]) / 1000.0
                c.check(gap >= 1.9, "Retry-After: 2 was honoured (the next attempt came %.2f s later)" % gap)
    finally:
        rx.close()

    # c
    rx = Receiver("410")
    try:
        with h.Reeld(service={"webhooks": [hook(rx.url, [0, 0.2])]}, pipeline=pipeline(tmp)) as r:
            submit(r, "gone")
            c.eq(len(rx.wait(1, 30)), 1, "the first delivery reached the receiver")
            h.wait_for(lambda: "410 Gone: disabled" in r.log_text(), 10)
            c.check("410 Gone: disabled" in r.log_text(), "the log says the endpoint answered 410 and is disabled")
            submit(r, "after gone")
            def both_failed():
                _, _, v = r.json("GET", "/v1/webhooks/deliveries")
                ds = v["deliveries"] if v else []
                return ds if len(ds) == 2 and all(d["status"] == "failed" for d in ds) else None
            ds = h.wait_for(both_failed, 15)
            c.check(ds is not None, "both deliveries are failed")
            if ds:
                c.eq(ds[0]["attempts"], 1, "the later one was claimed once")
                c.check(ds[0]["last_status"] is None and "disabled" in (ds[0]["last_error"] or ""),
                        "and failed as disabled, without a request: %r" % ds[0]["last_error"])
            time.sleep(0.5)
            c.eq(len(rx.wait(2, 0.5)), 1, "the receiver saw one request in all")
    finally:
        rx.close()

    # d
    rx = Receiver("500,200")
    try:
        with h.Reeld(service={"webhooks": [hook(rx.url, [0, 3])]}, pipeline=pipeline(tmp)) as r:
            submit(r, "survives kill -9")
            first = rx.wait(1, 30)
            c.eq(len(first), 1, "the first attempt (500) arrived")
            r.kill9()
            r.start()
            got = rx.wait(2, 30)
            c.eq(len(got), 2, "after kill -9 and a restart the delivery still arrives")
            if len(got) == 2:
                c.eq(got[1]["id"], got[0]["id"], "with the same webhook-id")
                c.check(got[1]["verified"], "and a valid signature")
    finally:
        rx.close()

    # e
    slow, fast = Receiver("hang"), Receiver("200")
    try:
        with h.Reeld(service={"webhooks": [hook(slow.url, [0, 60]), hook(fast.url)], "webhook_timeout_seconds": 6},
                     pipeline=pipeline(tmp)) as r:
            start = time.monotonic()
            submit(r, "one hangs")
            c.eq(len(slow.wait(1, 30)), 1, "the hanging receiver got its request")
            got = fast.wait(1, 30)
            took = time.monotonic() - start
            c.eq(len(got), 1, "the other endpoint got its delivery")
            c.check(took < 5.5, "before the hanging one's timeout (%.2f s after the POST)" % took)
    finally:
        slow.close()
        fast.close()
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(h.run(body))
