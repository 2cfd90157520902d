#!/usr/bin/env python3
"""Server-sent job events (SPEC section 8), from outside.

a. With the WHATWG-conformant `eventsource` npm client: a job's whole life in
   order (created, started, progress with every stage, log lines, finished),
   ids increasing; resume after a forced disconnect with Last-Event-ID: no
   gap, no duplicate against the full replay.
b. Over raw HTTP/1.1: `retry:` first; the per-job stream ends after the
   terminal event with the chunked terminator; keep-alive comments come
   every sse_keepalive_seconds; types= filters /v1/events; a failed and a
   canceled job end their streams too; bad input is a 400 or 404.
c. The same job stream over HTTP/2 (curl --http2-prior-knowledge) and
   HTTP/3 (gtlsclient): in order, and it ends.
d. Limits: the third stream of a client over sse_max_streams_per_client 2 is
   429 (another client's is fine); past sse_max_streams the answer is 503.
e. Backpressure with sse_max_buffered_bytes 4096: a replay far larger than
   the buffer arrives whole (paced by the client's reading); a reader that
   reads slowly gets every event and is not cut off; a subscriber that stops
   reading is cut off after the stall limit (4 keep-alive periods, at least
   4 s) and its connection closed; the server's memory stays bounded.
"""

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import reelharness as h  # noqa: E402
from h3client import H3Client, H3ClientError  # noqa: E402
from sseclients import RawReader, node_client, parse_sse, raw_stream, read_node  # noqa: E402

OTHER = "other-token-0123456789"
STAGES = ["plan", "keyframes", "clips", "assembly"]


def job_script(tmp):
    """Reports every stage and a log line each; waits for gate file $GATE (if named in the prompt) midway;
    exits 3 for a prompt with 'fail', sleeps for 'slow'; prints N log lines of 4,000 bytes for 'chatty N'."""
    return h.write_script(tmp, "job.sh", r"""
        prompt=$(grep '^prompt:' "$1" | head -1)
        case "$prompt" in *chatty*) n=$(echo "$prompt" | tr -dc 0-9); i=0; pad=$(printf '%%4000s' '' | tr ' ' p)
          while [ $i -lt $n ]; do echo "chatty line $i $pad"; i=$((i+1)); done;; esac
        echo "REEL_PROGRESS 10 plan"; echo "planning"
        echo "REEL_PROGRESS 30 keyframes"; echo "drawing"
        case "$prompt" in *gate*) while [ ! -e %s/gate ]; do sleep 0.05; done;; esac
        case "$prompt" in *slow*) sleep 30;; esac
        echo "REEL_PROGRESS 60 clips"; echo "animating"
        case "$prompt" in *fail*) echo "boom" >&2; exit 3;; esac
        echo "REEL_PROGRESS 90 assembly"; echo "assembling"
        mkdir -p output && echo v > output/final_video.mp4
    """ % tmp)


def submit(r, prompt, token=None):
    status, _, job = r.json("POST", "/v1/jobs", {"prompt": prompt}, token=token or True)
    if status != 202:
        raise h.ReeldError("POST answered %d" % status)
    return job["id"]


def check_life(c, events, job_id, how, terminal="job.finished"):
    types = [e.get("type") or e.get("event") for e in events]
    ids = [int(e["id"]) for e in events]
    c.check(ids == sorted(ids) and len(set(ids)) == len(ids), "%s: ids increase: %s" % (how, ids))
    c.check(types and types[0] == "job.created" and types[1] == "job.started" and types[-1] == terminal,
            "%s: created, started ... %s: %s" % (how, terminal, types))
    datas = [e["data"] for e in events]
    stages = [d["data"]["stage"] for d, t in zip(datas, types) if t == "job.progress"]
    if terminal == "job.finished":
        c.eq(stages, STAGES, "%s: every stage as job.progress" % how)
    logs = [d["data"]["line"] for d, t in zip(datas, types) if t == "job.log"]
    c.check("planning" in logs and "drawing" in logs, "%s: log lines as job.log: %s" % (how, logs))
    c.check(all(d["job_id"] == job_id and d["type"] == t for d, t in zip(datas, types)),
            "%s: each data line is the event object of this job" % how)
    last = datas[-1]["data"] if datas else {}
    c.eq(last.get("status"), terminal.split(".")[1], "%s: the terminal event carries the job" % how)


def body(c):
    tmp = tempfile.mkdtemp(prefix="reel-sse-")
    try:
        run(c, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def run(c, tmp):
    script = job_script(tmp)
    pipeline = {"default_backend": "command", "command": [script, "{config}"]}
    have_node = os.path.isdir(os.path.join(h.SOURCE_DIR, "tools", "node_modules", "eventsource"))
    c.check(have_node, "eventsource is installed in tools/node_modules (scripts/install-deps.sh --test)")
    with h.Reeld(service={"sse_keepalive_seconds": 1, "cancel_grace_seconds": 1,
                          "auth": {"tokens": [h.TOKEN, OTHER]}}, pipeline=pipeline) as r:
        # a
        if have_node:
            job = submit(r, "a whole life")
            events, other = read_node(node_client(r, "/v1/jobs/%s/events" % job))
            c.check("open" in other and "closed" in other, "eventsource opened and saw the stream end: %s" % other)
            check_life(c, events, job, "eventsource")
            job = submit(r, "resume gate")
            first, _ = read_node(node_client(r, "/v1/jobs/%s/events" % job, stop_after=3))
            c.eq(len(first), 3, "a client read 3 events and dropped")
            open(os.path.join(tmp, "gate"), "w").close()
            rest, _ = read_node(node_client(r, "/v1/jobs/%s/events" % job, last_id=first[-1]["id"]))
            _, _, text, _ = raw_stream(r, "/v1/jobs/%s/events?after=0" % job)
            full, _, _ = parse_sse(text)
            c.eq([int(e["id"]) for e in first + rest], [int(e["id"]) for e in full],
                 "resumed with Last-Event-ID: no gap, no duplicate")
            os.remove(os.path.join(tmp, "gate"))

        # b
        job = submit(r, "raw")
        status, hd, text, ended = raw_stream(r, "/v1/jobs/%s/events" % job)
        c.eq(status, 200, "GET /v1/jobs/{id}/events is 200")
        c.check(hd.get("content-type", "").startswith("text/event-stream"), "as text/event-stream")
        c.eq(hd.get("transfer-encoding"), "chunked", "chunked over HTTP/1.1")
        c.check(text.startswith("retry: "), "retry: comes first")
        c.check(ended, "the stream ended with the chunked terminator after the terminal event")
        events, _, _ = parse_sse(text)
        check_life(c, events, job, "HTTP/1.1")
        # replay of an ended job: the same events, and the end
        status, _, again, ended = raw_stream(r, "/v1/jobs/%s/events" % job)
        c.check(ended and [e["id"] for e in parse_sse(again)[0]] == [e["id"] for e in events],
                "an ended job's stream replays its events and ends")
        status, _, tail, ended = raw_stream(r, "/v1/jobs/%s/events" % job, headers={"Last-Event-ID": events[-1]["id"]})
        c.check(ended and not parse_sse(tail)[0], "after its last id: nothing, and the end")
        for prompt, terminal in (("fail please", "job.failed"),):
            j = submit(r, prompt)
            _, _, t, ended = raw_stream(r, "/v1/jobs/%s/events" % j)
            c.check(ended, "a failed job's stream ends")
            check_life(c, parse_sse(t)[0], j, "failed job", terminal=terminal)
        j = submit(r, "slow cancel")
        h.wait_for(lambda: r.json("GET", "/v1/jobs/" + j)[2].get("status") in ("started", "progress"), 20)
        threading.Timer(0.5, lambda: r.request("POST", "/v1/jobs/%s/cancel" % j)).start()
        _, _, t, ended = raw_stream(r, "/v1/jobs/%s/events" % j)
        types = [e["event"] for e in parse_sse(t)[0]]
        c.check(ended and types and types[-1] == "job.canceled", "a canceled job's stream ends with job.canceled: %s" % types)
        # keep-alive, types filter on /v1/events (raw socket: comments are invisible to eventsource)
        sock = socket.create_connection(("127.0.0.1", r.port), timeout=0.5)
        sock.sendall(("GET /v1/events?types=job.finished,job.created HTTP/1.1\r\nHost: x\r\n"
                      "Authorization: Bearer %s\r\n\r\n" % r.token).encode())
        time.sleep(0.3)
        j = submit(r, "filtered")
        buf, deadline = b"", time.monotonic() + 20
        while time.monotonic() < deadline and (b"event: job.finished" not in buf or buf.count(b": keep-alive\n") < 2):
            try:
                chunk = sock.recv(65536)
            except socket.timeout:
                continue
            if not chunk:
                break
            buf += chunk
        sock.close()
        text = buf.decode("utf-8", "replace")
        text = text.split("\r\n\r\n", 1)[1] if "\r\n\r\n" in text else text
        # strip the chunk-size lines of the chunked encoding
        text = "\n".join(line for line in text.replace("\r\n", "\n").split("\n")
                         if not (line and all(ch in "0123456789abcdef" for ch in line)))
        got, comments, _ = parse_sse(text)
        c.check(len([x for x in comments if x.startswith(": keep-alive")]) >= 2,
                "keep-alive comments every sse_keepalive_seconds (%d seen)" % len(comments))
        c.eq(sorted({e["event"] for e in got if e["data"]["job_id"] == j}), ["job.created", "job.finished"],
             "types= passes only the types asked for")
        for path, status_want, what in (("/v1/events?types=job.bogus", 400, "an unknown type"),
                                        ("/v1/events?after=x", 400, "a bad after"),
                                        ("/v1/jobs/job_00000000000000000000000000/events", 404, "an unknown job")):
            s, _, _ = r.request("GET", path)
            c.eq(s, status_want, "%s is %d" % (what, status_want))
        s, _, _ = r.request("GET", "/v1/events", headers={"Last-Event-ID": "abc"})
        c.eq(s, 400, "a bad Last-Event-ID is 400")
        s, _, _ = r.request("GET", "/v1/events", token=False)
        c.eq(s, 401, "the streams need the token")

        # c: HTTP/2 (h2c with prior knowledge)
        if shutil.which("curl"):
            j = submit(r, "over h2")
            out = subprocess.run(["curl", "-sS", "-N", "--http2-prior-knowledge", "--max-time", "30", "-H",
                                  "Authorization: Bearer " + r.token, r.url + "/v1/jobs/%s/events" % j],
                                 capture_output=True, text=True, timeout=60)
            c.eq(out.returncode, 0, "curl over HTTP/2 saw the stream end normally (%s)" % out.stderr.strip())
            check_life(c, parse_sse(out.stdout)[0], j, "HTTP/2")

    # c: HTTP/3
    certs = os.path.join(tmp, "certs")
    subprocess.run(["bash", os.path.join(h.SOURCE_DIR, "scripts", "dev-cert.sh"), certs], capture_output=True,
                   check=True, timeout=60)
    port = h.free_port()
    with h.Reeld(service={"tls": {"cert_file": os.path.join(certs, "server.pem"),
                                  "key_file": os.path.join(certs, "server-key.pem")}},
                 pipeline=pipeline) as r:
        r.config["service"]["listen"] = ["127.0.0.1:%d" % r.port, "h3://127.0.0.1:%d" % port]
        r.stop()
        r.start()
        try:
            client = H3Client(tmp)
        except H3ClientError as e:
            c.fail(str(e))
        else:
            j = submit(r, "over h3")
            status, _, data, output = client.request("127.0.0.1", port, "https://localhost:%d/v1/jobs/%s/events" % (port, j),
                                                     headers={"authorization": "Bearer " + r.token}, timeout=30)
            c.eq(status, 200, "HTTP/3: 200 (%s)" % ("" if status else output[-300:]))
            if status == 200:
                check_life(c, parse_sse(data.decode("utf-8", "replace"))[0], j, "HTTP/3")

    # d: limits
    with h.Reeld(service={"sse_max_streams_per_client": 2, "sse_max_streams": 3,
                          "auth": {"tokens": [h.TOKEN, OTHER]}}, pipeline=pipeline) as r:
        socks = []

        def open_stream(token):
            s = socket.create_connection(("127.0.0.1", r.port), timeout=10)
            s.sendall(("GET /v1/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n\r\n" % token).encode())
            head = s.recv(4096).decode("latin-1")
            socks.append(s)
            return int(head.split()[1]) if head.startswith("HTTP/1.1") else 0, head

        c.eq(open_stream(r.token)[0], 200, "a client's first stream")
        c.eq(open_stream(r.token)[0], 200, "its second")
        st, head = open_stream(r.token)
        c.check(st == 429 and "retry-after" in head.lower(), "its third is 429 with Retry-After")
        c.eq(open_stream(OTHER)[0], 200, "another client's stream is fine")
        st, head = open_stream(OTHER)
        c.check(st == 503 and "retry-after" in head.lower(), "past sse_max_streams: 503 with Retry-After")
        socks[0].close()
        time.sleep(0.5)
        c.eq(open_stream(OTHER)[0], 200, "a closed stream frees its place")
        for s in socks:
            s.close()

    # e: slow readers are paced, a stopped one is cut off
    with h.Reeld(service={"sse_max_buffered_bytes": 4096, "sse_keepalive_seconds": 1, "max_log_lines": 100000},
                 pipeline=pipeline) as r:
        stalled = socket.socket()
        stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        stalled.connect(("127.0.0.1", r.port))
        stalled.sendall(("GET /v1/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n\r\n" % r.token).encode())
        time.sleep(0.3)
        rss_before = h.rss_kb(r.proc.pid)
        reader = RawReader(r, "/v1/events")
        slow = RawReader(r, "/v1/events", rcvbuf=8192, pause=0.003)
        time.sleep(0.5)
        j = submit(r, "chatty 5000")
        h.wait_for(lambda: r.json("GET", "/v1/jobs/" + j)[2].get("status") == "finished", 60)
        # the per-job stream replays ~5,000 events of 4 KB each (the scheduler may drop lines it cannot store
        # fast enough) through a 4 KiB buffer: paced, not cut off, though each event is larger than the buffer
        status, _, text, ended = raw_stream(r, "/v1/jobs/%s/events" % j, timeout=60)
        replay = parse_sse(text)[0]
        want = [e["id"] for e in replay]
        # what the kernel could hold for the stopped client (its send buffer at most) is far less than the
        # job's events, so the server itself had to hold them back
        with open("/proc/sys/net/ipv4/tcp_wmem") as f:
            wmem_max = int(f.read().split()[2])
        c.check(len(text) > wmem_max + (1 << 20), "the job's events (%d bytes) outweigh a socket send buffer (%d)"
                % (len(text), wmem_max))
        c.check(status == 200 and ended and len(want) > 1000 and replay[-1]["event"] == "job.finished",
                "a replay far larger than sse_max_buffered_bytes arrives whole and ends (%d events)" % len(want))
        cut = h.wait_for(lambda: "event stream cut off" in r.log_text(), 20)
        c.check(cut, "the subscriber that stopped reading was cut off (logged)")
        rss_after = h.rss_kb(r.proc.pid)
        if h.sanitized():
            print("skip   memory stayed bounded: AddressSanitizer build (its quarantine keeps freed memory)")
        else:
            c.check(rss_after - rss_before < 50 * 1024, "memory stayed bounded (%d KiB more)" % (rss_after - rss_before))
        stalled.settimeout(5)
        closed = False
        deadline = time.time() + 10  # keep-alives would keep a live stream busy forever
        try:
            while time.time() < deadline:
                if not stalled.recv(65536):
                    closed = True
                    break
        except OSError:
            closed = True
        c.check(closed, "its connection was closed by the server")
        stalled.close()
        for who, rd in (("a reader alongside", reader), ("a slow reader", slow)):
            h.wait_for(lambda: bool(want) and ("id: %s\n" % want[-1]).encode() in rd.buf, 60)
            rd.stop()
            got = [e["id"] for e in parse_sse(rd.text())[0] if e["data"]["job_id"] == j]
            c.eq(got, want, "%s got every event of the job, in order (%d)" % (who, len(want)))
        c.eq(r.log_text().count("event stream cut off"), 1, "only the stopped subscriber was cut off")
        # replays that read as fast as they can, each a page of the store at a time: a keep-alive that comes
        # while one waits for its next page (its last event still unsent) must not cut it off;
        # another chatty job keeps the store busy meanwhile, so page reads wait behind its writes
        submit(r, "chatty 5000")
        results = [None] * 4
        def replay_into(i):
            results[i] = raw_stream(r, "/v1/jobs/%s/events" % j, timeout=60)
        threads = [threading.Thread(target=replay_into, args=(i,)) for i in range(len(results))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(90)
        whole = [bool(x) and x[3] and [e["id"] for e in parse_sse(x[2])[0]] == want for x in results]
        c.eq(whole, [True] * len(results), "concurrent replays of the job each arrive whole and end")
        c.eq(r.log_text().count("event stream cut off"), 1, "none of them was cut off")

if __name__ == "__main__":
    sys.exit(h.run(body))
