#!/usr/bin/python3
"""bench/events.py — issue 11's benchmark: job events pushed to subscribers
and webhooks, reel against a FastAPI + Redis pub/sub peer, in one run.
bench/events.sh installs what is missing and runs it; see bench/README.md
("Events").

  (a) event latency: N subscribers (1, 100, 1,000 and, for reel, 10,000)
      hold `GET /v1/events` open over HTTP/1.1 (bench/lib/sse_subs.c, one
      epoll loop in C, so that the figure is the server's); one client posts
      jobs one at a time, BENCH_EVENTS_RATE a second, and every subscriber
      stamps the `job.created` event of each. Latency is the time from the
      POST's 202 to the event's arrival, and from the moment the POST was sent
      (the commit lies between the two: reel answers 202 after it); p50/p99
      over every (subscriber, event) pair, and how many pairs never arrived.
  (b) memory per idle subscriber: the server's resident memory (VmRSS, every
      process of it) with N idle streams open, less what it held before they
      opened, divided by N.
  (c) webhook deliveries per second: wrk posts jobs for BENCH_HOOK_SECONDS
      at full speed, one endpoint subscribed to `job.created`; a local
      receiver (bench/lib/hook_receiver.py) checks every signature and stamps
      every delivery; the figure is signed deliveries / (last − first).

reel runs on its embedded defaults (SQLite, one process) with
`service.workers: 0`, so the events are the submits' own. The peer
(bench/peers/fastapi_sse.py) is FastAPI's StreamingResponse on uvicorn
(uvloop, httptools) with BENCH_PEER_WORKERS processes, each with one Redis
subscription fanned out to per-stream queues, and webhooks sent by a
BackgroundTask through httpx.

Prints a table and appends it to bench/results/events-<UTC date>.txt; the
figures go to bench/results/events-latest.json (ignored by git).
"""
import datetime
import http.client
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH = os.path.join(ROOT, "bench")
sys.path.insert(0, BENCH)
sys.path.insert(0, os.path.join(BENCH, "lib"))
from report import sh, version  # noqa: E402
from submit_latency import percentile  # noqa: E402
from scaleout import CpuWindow, Procs, children, env_int, free_port, print_log_tails, say, wait_http  # noqa: E402

TOKEN = "bench-token-123456"
PY = "/usr/bin/python3"
HOOK_SECRET = "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


def env_list(name, default):
    return [int(x) for x in os.environ.get(name, default).split(",") if x]


REEL_SUBS = env_list("BENCH_REEL_SUBS", "1,100,1000,10000")
PEER_SUBS = env_list("BENCH_PEER_SUBS", "1,100,1000")
EVENTS = env_int("BENCH_EVENTS", 200)            # measured events per cell
WARM_EVENTS = env_int("BENCH_WARM_EVENTS", 10)   # sent first, not counted
RATE = float(os.environ.get("BENCH_EVENTS_RATE", "10"))
HOOK_SECONDS = env_int("BENCH_HOOK_SECONDS", 5)
PEER_WORKERS = env_int("BENCH_PEER_WORKERS", 2)
ONLY = set(filter(None, os.environ.get("BENCH_ONLY", "").split(",")))  # reel,peer,a,b,c


def rss_kib(pids):
    """Summed VmRSS (KiB) of these processes and their descendants."""
    total, todo, seen = 0, list(pids), set()
    while todo:
        p = todo.pop()
        if p in seen:
            continue
        seen.add(p)
        try:
            with open(f"/proc/{p}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
        except OSError:
            continue
        todo += children(p)
    return total


class Subs:
    """bench/lib/sse_subs: N event streams on one epoll loop."""

    def __init__(self, binary, port, path, n):
        self.p = subprocess.Popen((binary if isinstance(binary, list) else [binary]) + ["127.0.0.1", str(port), path, TOKEN, str(n)], stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, text=True, bufsize=1)
        ready = self.p.stdout.readline().split()
        if not ready or ready[0] != "ready":
            raise RuntimeError(f"sse_subs did not start: {ready}")
        self.ok, self.failed, self.statuses = int(ready[1]), int(ready[2]), ready[3]

    def cmd(self, line):
        self.p.stdin.write(line + "\n")
        self.p.stdin.flush()
        return self.p.stdout.readline().split()

    def records(self, path):
        self.cmd("dump " + path)
        jobs, recs = {}, []
        with open(path) as f:
            for line in f:
                k = line.split()
                if k[0] == "J":
                    jobs[int(k[1])] = k[2]
                elif k[0] == "R":
                    recs.append((int(k[1]), jobs.get(int(k[2])), int(k[3])))
        os.unlink(path)
        return recs

    def close(self):
        try:
            self.p.stdin.close()
        except OSError:
            pass
        try:
            self.p.wait(10)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.wait()


class Poster:
    """POST /v1/jobs over one keep-alive connection, with CLOCK_MONOTONIC stamps."""

    def __init__(self, port):
        self.c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)

    def post(self, prompt):
        body = json.dumps({"prompt": prompt})
        t_sent = time.monotonic_ns()
        self.c.request("POST", "/v1/jobs", body, {"Authorization": "Bearer " + TOKEN,
                                                  "Content-Type": "application/json"})
        r = self.c.getresponse()
        data = r.read()
        t_ack = time.monotonic_ns()
        if r.status != 202:
            raise RuntimeError(f"POST answered {r.status}: {data[:200]!r}")
        return json.loads(data)["id"], t_sent, t_ack

    def close(self):
        self.c.close()


class Bench:
    def __init__(self, reeld, work):
        self.reeld = reeld
        self.work = work
        self.procs = Procs()
        self.results = {}
        self.subs_bin = self.path("sse_subs")
        subprocess.run(["cc", "-std=c11", "-O2", "-Wall", "-o", self.subs_bin,
                        os.path.join(BENCH, "lib", "sse_subs.c")], check=True)

    def path(self, *p):
        return os.path.join(self.work, *p)

    # -- servers
    def start_reel(self, name, webhook_url=None):
        port = free_port()
        data = self.path(name + "-data")
        os.makedirs(data, exist_ok=True)
        lines = ["service:", f"  listen: 127.0.0.1:{port}", f"  data_dir: {data}",
                 f"  auth: {{tokens: [{TOKEN}]}}", "  workers: 0", "  max_queue_depth: 10000000",
                 "  max_connections: 30000", "  sse_max_streams: 20000", "  sse_max_streams_per_client: 20000",
                 "  log_level: warn"]
        if webhook_url:
            lines += ["  webhooks:", f"    - url: {webhook_url}", f"      secret: {HOOK_SECRET}",
                      "      events: [job.created]"]
        cfg = self.path(name + ".yaml")
        with open(cfg, "w") as f:
            f.write("\n".join(lines) + "\n")
        p = self.procs.start([self.reeld, "--config", cfg], self.path(name + ".log"))
        wait_http(f"http://127.0.0.1:{port}/healthz", p)
        return {"port": port, "pids": lambda: [p.pid], "path": "/v1/events?types=job.created", "name": name}

    def start_peer(self, name, webhook_url=None):
        rport, port = free_port(), free_port()
        redis = self.procs.start(["redis-server", "--port", str(rport), "--bind", "127.0.0.1", "--save", "",
                                  "--appendonly", "no", "--maxclients", "20000"], self.path(name + "-redis.log"))
        deadline = time.monotonic() + 10
        while subprocess.run(["redis-cli", "-p", str(rport), "ping"], capture_output=True).stdout.strip() != b"PONG":
            if time.monotonic() > deadline or redis.poll() is not None:
                raise RuntimeError("redis-server did not start")
            time.sleep(0.05)
        env = dict(os.environ, PEER_REDIS_URL=f"redis://127.0.0.1:{rport}/0", PEER_TOKENS=TOKEN,
                   PEER_WEBHOOK_URL=webhook_url or "", PEER_WEBHOOK_SECRET=HOOK_SECRET)
        p = self.procs.start([PY, "-m", "uvicorn", "fastapi_sse:app", "--host", "127.0.0.1", "--port", str(port),
                              "--workers", str(PEER_WORKERS), "--loop", "uvloop", "--http", "httptools",
                              "--no-access-log", "--log-level", "warning", "--backlog", "4096",
                              "--limit-concurrency", "30000"],
                             self.path(name + ".log"), cwd=os.path.join(BENCH, "peers"), env=env)
        wait_http(f"http://127.0.0.1:{port}/healthz", p, seconds=30)
        time.sleep(1.0)  # every worker process up, not only the first
        return {"port": port, "pids": lambda: [p.pid], "redis": lambda: [redis.pid], "path": "/v1/events",
                "name": name}

    # (a) + (b)
    def fanout(self, label, srv, counts):
        poster = Poster(srv["port"])
        for i in range(WARM_EVENTS):  # the server's first requests, not counted
            poster.post(f"warm {i}")
        out = {}
        for n in counts:
            say(f"(a/b) {label}: {n} subscribers")
            time.sleep(1.0)
            before = rss_kib(srv["pids"]())
            subs = Subs(self.subs_bin, srv["port"], srv["path"], n)
            cell = {"subscribers": n, "streams_open": subs.ok, "streams_failed": subs.failed,
                    "statuses": subs.statuses}
            try:
                time.sleep(1.0)
                after = rss_kib(srv["pids"]())
                cell["rss_kib_before"], cell["rss_kib_with_streams"] = before, after
                if n >= 100:
                    cell["kib_per_idle_subscriber"] = round((after - before) / n, 2)
                for i in range(WARM_EVENTS):
                    poster.post(f"warm {n} {i}")
                time.sleep(0.5)
                subs.cmd("reset")
                sent = {}
                gap = 1.0 / RATE
                with CpuWindow({"server": srv["pids"]}) as cpu:
                    t_next = time.monotonic()
                    for i in range(EVENTS):
                        t_next += gap
                        job, t_sent, t_ack = poster.post(f"event {n} {i}")
                        sent[job] = (t_sent, t_ack)
                        time.sleep(max(0.0, t_next - time.monotonic()))
                    time.sleep(1.0)
                recs = subs.records(self.path("dump.txt"))
                cell["cpu_cores"] = cpu.cores
                from_ack, from_sent, pairs = [], [], set()
                for conn, job, t in recs:
                    if job not in sent or (conn, job) in pairs:
                        continue
                    pairs.add((conn, job))
                    from_sent.append((t - sent[job][0]) / 1e6)
                    from_ack.append((t - sent[job][1]) / 1e6)
                post_ms = sorted((a - s) / 1e6 for s, a in sent.values())
                from_ack.sort()
                from_sent.sort()
                cell.update({
                    "events": len(sent), "expected_pairs": subs.ok * len(sent), "received_pairs": len(pairs),
                    "missing_pairs": subs.ok * len(sent) - len(pairs),
                    "p50_from_ack_ms": round(percentile(from_ack, 50), 3) if from_ack else None,
                    "p99_from_ack_ms": round(percentile(from_ack, 99), 3) if from_ack else None,
                    "p50_from_send_ms": round(percentile(from_sent, 50), 3) if from_sent else None,
                    "p99_from_send_ms": round(percentile(from_sent, 99), 3) if from_sent else None,
                    "max_from_send_ms": round(max(from_sent), 3) if from_sent else None,
                    "post_p50_ms": round(percentile(post_ms, 50), 3)})
            finally:
                subs.close()
            print("    " + json.dumps(cell), file=sys.stderr, flush=True)
            out[str(n)] = cell
        poster.close()
        return out

    # (c)
    def webhooks(self, label, start):
        say(f"(c) {label}: webhook deliveries")
        rx = subprocess.Popen([PY, os.path.join(BENCH, "lib", "hook_receiver.py"), HOOK_SECRET],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)
        try:
            ready = rx.stdout.readline().split()
            if not ready or ready[0] != "ready":
                raise RuntimeError(f"hook_receiver did not start: {ready}")

            def stats():
                rx.stdin.write("stats\n")
                rx.stdin.flush()
                return json.loads(rx.stdout.readline())

            srv = start(f"{label}-hooks", webhook_url=f"http://127.0.0.1:{ready[1]}/hook")
            env = dict(os.environ, BENCH_TOKEN=TOKEN)
            t0 = time.monotonic_ns()
            with CpuWindow({"server": srv["pids"], "receiver": lambda: [rx.pid]}) as cpu:
                w = subprocess.run(["wrk", "-t1", "-c16", f"-d{HOOK_SECONDS}s", "--timeout", "5s", "-s",
                                    os.path.join(BENCH, "post_job.lua"), f"http://127.0.0.1:{srv['port']}/v1/jobs"],
                                   capture_output=True, text=True, env=env, timeout=HOOK_SECONDS + 30)
                t_posted = time.monotonic_ns()
                wj = next((json.loads(x[9:]) for x in w.stdout.splitlines() if x.startswith("WRK_JSON ")), None)
                if not wj:
                    raise RuntimeError(f"wrk printed no figures: {w.stdout[-400:]} {w.stderr[-400:]}")
                created = wj["requests"] - wj["unexpected_status"]
                # wait for the deliveries: every job's, then none more for 2 s (or none at all for 10 s)
                last, last_change = -1, time.monotonic()
                while True:
                    s = stats()
                    if s["received"] != last:
                        last, last_change = s["received"], time.monotonic()
                    elif time.monotonic() - last_change > (2 if s["received"] >= created else 10):
                        break
                    time.sleep(0.2)
            span = (s["last_ns"] - s["first_ns"]) / 1e9 if s["received"] > 1 else 0
            r = {"jobs_created": created, "posts_per_s": round(wj["rps"], 1), "delivered": s["received"],
                 "unique_webhook_ids": s["unique_ids"], "bad_signatures": s["bad_signatures"],
                 "malformed": s["malformed"], "deliveries_per_s": round(s["received"] / span, 1) if span else None,
                 "first_delivery_after_first_post_ms": round((s["first_ns"] - t0) / 1e6, 1) if s["first_ns"] else None,
                 "last_delivery_after_last_post_s": round((s["last_ns"] - t_posted) / 1e9, 2) if s["last_ns"] else None,
                 "cpu_cores": cpu.cores}
            print("    " + json.dumps(r), file=sys.stderr, flush=True)
            return r
        finally:
            rx.stdin.close()
            rx.wait(10)

    def stop_servers(self):
        self.procs.stop_all()


def versions(reeld):
    pyv = version
    return {"reel_commit": sh("git", "-C", ROOT, "rev-parse", "--short", "HEAD"),
            "reel_tree_dirty": bool(sh("git", "-C", ROOT, "status", "--porcelain", "--untracked-files=no")),
            "reeld": reeld, "redis": sh("redis-server", "--version"), "wrk": (sh("wrk", "-v").splitlines() or [""])[0],
            "fastapi": pyv("fastapi"), "starlette": pyv("starlette"), "uvicorn": pyv("uvicorn"),
            "redis_py": pyv("redis"), "httpx": pyv("httpx"), "python": platform.python_version()}


def fmt(v, unit=""):
    return "-" if v is None else (f"{v:,.2f}{unit}" if isinstance(v, float) else f"{v:,}{unit}")


def table(res, setup):
    rows = ["reel events benchmark (bench/events.sh) — %s UTC" % datetime.datetime.utcnow().strftime("%Y-%m-%d %H:%M"),
            "reel %s%s on SQLite, one process; peer: FastAPI %s / Starlette %s StreamingResponse on uvicorn %s x%d, "
            "Redis pub/sub (%s)" % (setup["reel_commit"], " (dirty)" if setup["reel_tree_dirty"] else "",
                                    setup["fastapi"], setup["starlette"], setup["uvicorn"], PEER_WORKERS,
                                    setup["redis"].split(" ")[2] if setup["redis"] else "?"),
            f"(a) {EVENTS} job.created events at {RATE:g}/s to N subscribers of GET /v1/events (HTTP/1.1); "
            "latency from the 202 / from the POST sent, ms", ""]
    rows.append("%-5s %6s | %8s %8s %9s %9s %8s %7s | %9s %s" % ("", "subs", "p50 ack", "p99 ack", "p50 send",
                                                               "p99 send", "missing", "cores", "KiB/sub", ""))
    for who in ("reel", "peer"):
        for n, c in sorted(res.get(f"a_{who}", {}).items(), key=lambda kv: int(kv[0])):
            rows.append("%-5s %6s | %8s %8s %9s %9s %8s %7s | %9s" % (
                who, n, fmt(c.get("p50_from_ack_ms")), fmt(c.get("p99_from_ack_ms")), fmt(c.get("p50_from_send_ms")),
                fmt(c.get("p99_from_send_ms")), fmt(c.get("missing_pairs")),
                fmt(c.get("cpu_cores", {}).get("server")), fmt(c.get("kib_per_idle_subscriber"))))
    rows.append("")
    rows.append("(c) webhook deliveries to a local receiver (every signature checked), wrk -t1 -c16 posting "
                f"{HOOK_SECONDS} s")
    for who in ("reel", "peer"):
        c = res.get(f"c_{who}")
        if c:
            rows.append("%-5s %s jobs, %s posts/s -> %s delivered (%s unique, %s bad signatures), %s deliveries/s, "
                        "last %s s after the last post" % (who, fmt(c["jobs_created"]), fmt(c["posts_per_s"]),
                                                           fmt(c["delivered"]), fmt(c["unique_webhook_ids"]),
                                                           fmt(c["bad_signatures"]), fmt(c["deliveries_per_s"]),
                                                           fmt(c["last_delivery_after_last_post_s"])))
    rows.append("")
    rows += verdicts(res)
    return "\n".join(rows)


def verdicts(res):
    out = ["targets:"]
    reel, peer = res.get("a_reel", {}), res.get("a_peer", {})
    r1k = reel.get("1000")
    if r1k:
        p99 = r1k.get("p99_from_send_ms")
        out.append(f"  p99 <= 5 ms at 1,000 subscribers: {fmt(r1k.get('p99_from_ack_ms'))} ms from the 202, "
                   f"{fmt(p99)} ms from the POST sent (the commit is between) -> "
                   + ("met" if p99 is not None and p99 <= 5 else "met from the 202 only"
                      if (r1k.get("p99_from_ack_ms") or 99) <= 5 else "MISSED"))
        kib = r1k.get("kib_per_idle_subscriber")
        out.append(f"  <= 16 KiB per idle subscriber: {fmt(kib)} KiB -> "
                   + ("met" if kib is not None and kib <= 16 else "MISSED"))
    # >= 10x the peer's subscribers at equal latency: reel with 10N against the peer with N
    for small, big in (("100", "1000"), ("1000", "10000")):
        if small in peer and big in reel:
            pp, rp = peer[small].get("p99_from_send_ms"), reel[big].get("p99_from_send_ms")
            if pp is None or rp is None:
                continue
            out.append(f"  >= 10x the peer's subscribers at equal latency: reel with {int(big):,} p99 {fmt(rp)} ms, "
                       f"peer with {int(small):,} p99 {fmt(pp)} ms -> "
                       + ("met" if rp <= pp and reel[big].get("missing_pairs") == 0 else "MISSED"))
    return out


def main():
    reeld = os.path.abspath(os.environ.get("BENCH_REELD", os.path.join(ROOT, "build", "reeld")))
    work = tempfile.mkdtemp(prefix="reel-events-")
    b = Bench(reeld, work)
    who = {w for w in ONLY if w in ("reel", "peer")} or {"reel", "peer"}
    phases = {p for p in ONLY if p in ("a", "b", "c")} or {"a", "b", "c"}
    try:
        for w, start, counts in (("reel", b.start_reel, REEL_SUBS), ("peer", b.start_peer, PEER_SUBS)):
            if w not in who:
                continue
            if phases & {"a", "b"}:
                srv = start(w)
                b.results[f"a_{w}"] = b.fanout(w, srv, counts)
                b.stop_servers()
            if "c" in phases:
                b.results[f"c_{w}"] = b.webhooks(w, start)
                b.stop_servers()
    except BaseException:
        print_log_tails(work)
        raise
    finally:
        b.stop_servers()
        if os.environ.get("REEL_KEEP_TMP") != "1":
            shutil.rmtree(work, ignore_errors=True)
    setup = versions(reeld)
    text = table(b.results, setup)
    print("\n" + text)
    out_dir = os.path.join(BENCH, "results")
    os.makedirs(out_dir, exist_ok=True)
    stamp = datetime.datetime.utcnow().strftime("%Y-%m-%d")
    with open(os.path.join(out_dir, f"events-{stamp}.txt"), "a") as f:
        f.write(text + "\n\n")
    with open(os.path.join(out_dir, "events-latest.json"), "w") as f:
        json.dump({"setup": setup, "results": b.results, "table": text}, f, indent=1)


if __name__ == "__main__":
    main()
