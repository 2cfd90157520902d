#!/usr/bin/env python3
"""Idempotency-Key on POST /v1/jobs (SPEC section 8), from outside.

a. The same key and body: the first 202 again, byte for byte, with
   Idempotent-Replayed: true, and no second job; another body with that key
   is 422; the same key from another client (token) is a new job.
b. 50 concurrent POSTs with one key and one body: exactly one job, every
   answer names it.
c. A replay is answered with the queue full (workers: 0, max_queue_depth 1),
   while a new request is 429.
d. Durable: after a restart the key still replays.
e. Expiry: with service.idempotency_ttl_seconds 1, the key makes a new job
   once it expired.
f. Bad keys (empty, over 255, control characters, sent twice) are 400.
"""

import http.client
import json
import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import reelharness as h  # noqa: E402

OTHER_TOKEN = "other-token-0123456789"


def post(r, body, key=None, token=None, extra=None):
    headers = {"Content-Type": "application/json"}
    if key is not None:
        headers["Idempotency-Key"] = key
    if token:
        headers["Authorization"] = "Bearer " + token
    headers.update(extra or {})
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return r.request("POST", "/v1/jobs", raw_body=raw, headers=headers, token=token is None)


def job_count(r):
    return len(r.list_jobs())


def body(c):
    with h.Reeld(service={"workers": 0, "auth": {"tokens": [h.TOKEN, OTHER_TOKEN]}}) as r:
        # a
        s1, hd1, b1 = post(r, {"prompt": "a lighthouse"}, key="key-a")
        c.eq(s1, 202, "a first POST with a key is 202")
        c.check(hd1.get("idempotent-replayed") is None, "the first answer is not marked replayed")
        s2, hd2, b2 = post(r, {"prompt": "a lighthouse"}, key="key-a")
        c.eq(s2, 202, "the same key and body again: 202")
        c.eq(hd2.get("idempotent-replayed"), "true", "marked Idempotent-Replayed: true")
        c.eq(b2, b1, "the replay is the first response's body, byte for byte")
        c.check(hd1.get("location") and hd2.get("location") == hd1.get("location"), "and its Location")
        c.eq(job_count(r), 1, "no second job was made")
        s3, _, b3 = post(r, {"prompt": "another lighthouse"}, key="key-a")
        c.eq(s3, 422, "the same key with another body is 422")
        c.check(b"idempotency-key-reused" in b3, "a problem naming the reuse: %r" % b3[:120])
        s4, hd4, b4 = post(r, {"prompt": "a lighthouse"}, key="key-a", token=OTHER_TOKEN)
        c.eq(s4, 202, "the same key from another client is its own request")
        c.check(hd4.get("idempotent-replayed") is None and b4 != b1, "a new job for the other client")
        c.eq(job_count(r), 2, "two jobs now")
        first_id = json.loads(b1)["id"]

        # b
        answers = []
        lock = threading.Lock()

        def one():
            conn = http.client.HTTPConnection("127.0.0.1", r.port, timeout=30)
            conn.request("POST", "/v1/jobs", body=json.dumps({"prompt": "many at once"}),
                         headers={"Content-Type": "application/json", "Idempotency-Key": "key-b",
                                  "Authorization": "Bearer " + h.TOKEN})
            resp = conn.getresponse()
            data = resp.read()
            with lock:
                answers.append((resp.status, data))
            conn.close()

        threads = [threading.Thread(target=one) for _ in range(50)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        c.eq(len(answers), 50, "50 concurrent POSTs with one key answered")
        c.eq(sorted({s for s, _ in answers}), [202], "every one is 202")
        ids = {json.loads(d)["id"] for s, d in answers if s == 202}
        c.eq(len(ids), 1, "they all name one job")
        c.eq(job_count(r), 3, "exactly one job was made for them")

        # d
        r.stop()
        r.start()
        s5, hd5, b5 = post(r, {"prompt": "a lighthouse"}, key="key-a")
        c.check(s5 == 202 and hd5.get("idempotent-replayed") == "true" and json.loads(b5)["id"] == first_id,
                "after a restart the key still replays the first job")

        # f
        for bad, why in (("", "empty"), ("x" * 256, "256 characters"), ("a\x01b", "a control character")):
            try:
                s, _, _ = post(r, {"prompt": "p"}, key=bad)
            except (ValueError, http.client.HTTPException):
                s = "refused by the client library"
                if why == "a control character":
                    c.check(True, "a key with %s cannot even be sent (client refused it)" % why)
                    continue
            c.eq(s, 400, "a key that is %s is 400" % why)
        conn = http.client.HTTPConnection("127.0.0.1", r.port, timeout=10)
        conn.putrequest("POST", "/v1/jobs")
        for name, value in (("Content-Type", "application/json"), ("Authorization", "Bearer " + h.TOKEN),
                            ("Idempotency-Key", "k1"), ("Idempotency-Key", "k2"), ("Content-Length", "15")):
            conn.putheader(name, value)
        conn.endheaders(b'{"prompt":"p"}\n')
        c.eq(conn.getresponse().status, 400, "two Idempotency-Key headers are 400")
        conn.close()

    # c, e
    with h.Reeld(service={"workers": 0, "max_queue_depth": 1, "idempotency_ttl_seconds": 1}) as r:
        s1, _, b1 = post(r, {"prompt": "fills the queue"}, key="key-c")
        c.eq(s1, 202, "the queue's one slot is taken")
        s2, _, _ = post(r, {"prompt": "one more"}, key="key-c2")
        c.eq(s2, 429, "a new request is 429 with the queue full")
        s3, hd3, b3 = post(r, {"prompt": "fills the queue"}, key="key-c")
        c.check(s3 == 202 and hd3.get("idempotent-replayed") == "true" and b3 == b1,
                "a replay is answered even with the queue full (%s)" % s3)
        time.sleep(1.3)
        r.request("POST", "/v1/jobs/%s/cancel" % json.loads(b1)["id"])  # frees the slot
        s4, hd4, b4 = post(r, {"prompt": "fills the queue"}, key="key-c")
        c.check(s4 == 202 and hd4.get("idempotent-replayed") is None and b4 != b1,
                "after idempotency_ttl_seconds the key makes a new job (%s %s)" % (s4, hd4.get("idempotent-replayed")))


if __name__ == "__main__":
    sys.exit(h.run(body))
