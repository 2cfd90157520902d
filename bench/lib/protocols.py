#!/usr/bin/python3
"""Helpers for bench/protocols.sh: run one load client while counting the CPU
time of the client, of the server under test and of everything else on the
machine; read h2load's output and per-request log; print the table and write
the JSON.

    protocols.py measure --name NAME --results DIR --server-pgids G[,G] [--metrics URL --route R] -- CMD...
        runs CMD once (its output to DIR/NAME.txt), writes DIR/NAME.cpu.json
    protocols.py parallel --name NAME --results DIR --server-pgids G --procs P --duration S
                          --per-run N [--metrics URL --route R] [--env K=V ...] -- CMD...
        keeps P copies of CMD running (each sends N requests over one connection and
        exits) for S seconds, then waits for the last ones; writes DIR/NAME.json
    protocols.py h2load --name NAME --results DIR
        reads DIR/NAME.txt and DIR/NAME.log (h2load --log-file), writes DIR/NAME.json
    protocols.py report --results DIR --out FILE [--root DIR] [settings...]
"""
import argparse
import datetime
import json
import os
import platform
import re
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from report import cpu_model, version  # noqa: E402  (the machine description bench/run.sh reports too)
import urllib.request

TICK = os.sysconf("SC_CLK_TCK")


# ---- CPU accounting ----------------------------------------------------------------------------
def machine_jiffies():
    """(busy, total) jiffies of all CPUs since boot."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    idle = v[3] + v[4]
    total = sum(v[:8])  # guest time is already in user
    return total - idle, total


def group_cpu_seconds(pgids):
    """utime + stime of every live process in those process groups (whole thread groups)."""
    want = {int(g) for g in pgids if g}
    s = 0
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as f:
                st = f.read()
        except OSError:
            continue
        fields = st[st.rindex(")") + 2:].split()
        # fields[0] is field 3 (state): pgrp is field 5, utime 14, stime 15
        if int(fields[2]) in want:
            s += int(fields[11]) + int(fields[12])
    return s / TICK


def group_thread_cpu_seconds(pgids):
    """{(pid, tid): (name, utime + stime)} of every thread of the processes in those groups."""
    want = {int(g) for g in pgids if g}
    out = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as f:
                st = f.read()
            if int(st[st.rindex(")") + 2:].split()[2]) not in want:
                continue
            for tid in os.listdir(f"/proc/{name}/task"):
                with open(f"/proc/{name}/task/{tid}/stat") as f:
                    ts = f.read()
                fields = ts[ts.rindex(")") + 2:].split()
                out[(name, tid)] = (ts[ts.index("(") + 1:ts.rindex(")")], (int(fields[11]) + int(fields[12])) / TICK)
        except (OSError, ValueError):
            continue
    return out


class CpuWindow:
    def __init__(self, pgids):
        self.pgids = pgids
        self.t0 = time.monotonic()
        self.m0 = machine_jiffies()
        self.s0 = group_cpu_seconds(pgids)
        self.th0 = group_thread_cpu_seconds(pgids)

    def close(self, client_cpu_s):
        wall = time.monotonic() - self.t0
        m1 = machine_jiffies()
        server = group_cpu_seconds(self.pgids) - self.s0
        th1 = group_thread_cpu_seconds(self.pgids)
        busiest = max(((v[1] - self.th0.get(k, (None, 0.0))[1], v[0]) for k, v in th1.items()), default=(0.0, None))
        busy = (m1[0] - self.m0[0]) / TICK
        ncpu = os.cpu_count() or 1
        return {
            "wall_s": round(wall, 3),
            "cpus": ncpu,
            "client_cpu_s": round(client_cpu_s, 3),
            "server_cpu_s": round(server, 3),
            "machine_busy_cpu_s": round(busy, 3),
            # in cores (of ncpu): who used the machine during the run
            "client_cores": round(client_cpu_s / wall, 2) if wall else None,
            "server_cores": round(server / wall, 2) if wall else None,
            "other_cores": round(max(0.0, busy - client_cpu_s - server) / wall, 2) if wall else None,
            # the server's busiest thread (reeld: its event loop), in cores: 1.0 means that thread is saturated
            "server_busiest_thread_cores": round(busiest[0] / wall, 2) if wall else None,
            "server_busiest_thread": busiest[1],
            "machine_busy_pct": round(100 * busy / (wall * ncpu), 1) if wall else None,
        }


def rusage_cpu(ru):
    return ru.ru_utime + ru.ru_stime


# ---- reel's /metrics: server-side count of answered requests ------------------------------------
def route_counts(url, route):
    """{status: count} of reel_http_requests_total for that route."""
    if not url:
        return None
    with urllib.request.urlopen(url, timeout=5) as r:
        text = r.read().decode()
    prefix = 'reel_http_requests_total{route="%s",status="' % route
    out = {}
    for line in text.splitlines():
        if line.startswith(prefix):
            status = line[len(prefix):].split('"', 1)[0]
            out[status] = out.get(status, 0) + int(float(line.rsplit(" ", 1)[1]))
    return out


def counts_delta(before, after):
    if before is None or after is None:
        return None
    return {k: after.get(k, 0) - before.get(k, 0) for k in set(before) | set(after) if after.get(k, 0) - before.get(k, 0)}


# ---- subcommands ---------------------------------------------------------------------------------
def cmd_measure(a, cmd):
    before = route_counts(a.metrics, a.route)
    win = CpuWindow(a.server_pgids.split(","))
    with open(os.path.join(a.results, a.name + ".txt"), "wb") as out:
        p = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
        _, status, ru = os.wait4(p.pid, 0)
        p.returncode = os.waitstatus_to_exitcode(status)
    cpu = win.close(rusage_cpu(ru))
    cpu["client_exit"] = p.returncode
    cpu["server_counts"] = counts_delta(before, route_counts(a.metrics, a.route))
    write_json(os.path.join(a.results, a.name + ".cpu.json"), cpu)


def pid_cpu_seconds(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            st = f.read()
    except OSError:
        return 0.0
    fields = st[st.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def cmd_parallel(a, cmd):
    """P loops, each starting CMD again as soon as it exits, until the deadline. The rate is
    taken over the window from the start to the deadline, while all P are running (the server's
    count of 200s for the route), not over the tail where the last connections finish."""
    env = dict(os.environ)
    for kv in a.env or []:
        k, _, v = kv.partition("=")
        env[k] = v
    before = route_counts(a.metrics, a.route)
    win = CpuWindow(a.server_pgids.split(","))
    deadline = time.monotonic() + a.duration
    lock = threading.Lock()
    tally = {"runs": 0, "failed_runs": 0, "client_cpu_s": 0.0}
    live = set()

    def loop():
        while time.monotonic() < deadline:
            with lock:
                p = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                live.add(p.pid)
            _, status, ru = os.wait4(p.pid, 0)
            with lock:
                live.discard(p.pid)
                tally["runs"] += 1
                tally["client_cpu_s"] += rusage_cpu(ru)
                if os.waitstatus_to_exitcode(status) != 0:
                    tally["failed_runs"] += 1

    threads = [threading.Thread(target=loop) for _ in range(a.procs)]
    for t in threads:
        t.start()
    time.sleep(max(0.0, deadline - time.monotonic()))
    with lock:  # the steady window ends: every loop is still running
        client_now = tally["client_cpu_s"] + sum(pid_cpu_seconds(p) for p in live)
        cpu = win.close(client_now)
    window = counts_delta(before, route_counts(a.metrics, a.route))
    for t in threads:
        t.join()
    total_wall = time.monotonic() - win.t0
    counts = counts_delta(before, route_counts(a.metrics, a.route))
    ok = counts.get("200", 0) if counts is not None else None
    ok_window = window.get("200", 0) if window is not None else None
    res = {
        "procs": a.procs,
        "requests_per_connection": a.per_run,
        "connections": tally["runs"],
        "failed_client_runs": tally["failed_runs"],
        "requests_sent": tally["runs"] * a.per_run,
        # the server's own count of 200s for the route (the client prints nothing with -q)
        "requests_ok": ok,
        "server_counts": counts,
        "window_s": cpu["wall_s"],
        "requests_ok_in_window": ok_window,
        "rps": round(ok_window / cpu["wall_s"], 1) if ok_window is not None else None,
        "total_wall_s": round(total_wall, 3),
        "rps_including_tail": round(ok / total_wall, 1) if ok is not None else None,
        "cpu": cpu,
    }
    add_per_request(res)
    write_json(os.path.join(a.results, a.name + ".json"), res)
    print(f"    {res['connections']} connections × {a.per_run} requests, {ok} answered 200 by the server "
          f"({res['requests_sent'] - (ok or 0)} not), {res['failed_client_runs']} client runs failed; "
          f"{ok_window} in the {cpu['wall_s']} s window with all {a.procs} running", file=sys.stderr)
    summary(res)


def add_per_request(res):
    """CPU time per answered request, in µs, of the client and of the server."""
    cpu = res.get("cpu") or {}
    served = sum((cpu.get("server_counts") or {}).values())  # reel's own count over the CPU window
    n = (res.get("requests_ok_in_window") or served or res.get("requests") or res.get("status_2xx")
         or (res.get("rps") or 0) * (cpu.get("wall_s") or 0))
    if n and cpu:
        res["server_cpu_us_per_request"] = round(1e6 * cpu["server_cpu_s"] / n, 1)
        res["client_cpu_us_per_request"] = round(1e6 * cpu["client_cpu_s"] / n, 1)


def percentile(sorted_values, q):
    if not sorted_values:
        return None
    i = min(len(sorted_values) - 1, max(0, int(round(q / 100.0 * len(sorted_values) + 0.5)) - 1))
    return sorted_values[i]


def cmd_h2load(a):
    """h2load's text (req/s, status codes) and its --log-file: one line per request,
    "start time (µs since the epoch) TAB status TAB duration (µs)"."""
    base = os.path.join(a.results, a.name)
    res = {}
    with open(base + ".txt", errors="replace") as f:
        text = f.read()
    for line in text.splitlines():
        w = line.split()
        if line.startswith("finished in"):
            res["rps"] = float(w[3])
        elif line.startswith("requests:"):  # "requests: 10 total, 10 started, 10 done, 10 succeeded, 0 failed, ..."
            for n, k in re.findall(r"(\d+) (\w+)", line):
                res["requests_" + k] = int(n)
        elif line.startswith("status codes:"):  # "status codes: 10 2xx, 0 3xx, 0 4xx, 0 5xx"
            for n, k in re.findall(r"(\d+) (\dxx)", line):
                res["status_" + k] = int(n)
        elif line.startswith("Application protocol:"):
            res["protocol"] = w[2]
    durs = []
    non200 = 0
    try:
        with open(base + ".log") as f:
            for line in f:
                p = line.split("\t")
                if len(p) >= 3:
                    durs.append(int(p[2]))
                    if p[1] != "200":
                        non200 += 1
    except FileNotFoundError:
        pass
    durs.sort()
    res["latency_samples"] = len(durs)
    res["non_200"] = non200
    for q in (50, 90, 99, 99.9):
        v = percentile(durs, q)
        res["p%s_ms" % str(q).replace(".", "")] = None if v is None else round(v / 1000.0, 3)
    res["max_ms"] = round(durs[-1] / 1000.0, 3) if durs else None
    res["unexpected_status"] = non200
    res["socket_errors"] = (res.get("requests_errored") or 0) + (res.get("requests_timeout") or 0)
    cpu_path = base + ".cpu.json"
    if os.path.exists(cpu_path):
        res["cpu"] = load(cpu_path)
    add_per_request(res)
    write_json(base + ".json", res)
    summary(res)


def cmd_wrk(a):
    """wrk's WRK_JSON line (from bench/get_job.lua) plus the CPU of that run."""
    base = os.path.join(a.results, a.name)
    res = {}
    with open(base + ".txt", errors="replace") as f:
        for line in f:
            if line.startswith("WRK_JSON "):
                res = json.loads(line[len("WRK_JSON "):])
    if res:
        res["socket_errors"] = sum(res.get(k, 0) for k in ("connect_errors", "read_errors", "write_errors", "timeouts"))
    if os.path.exists(base + ".cpu.json"):
        res["cpu"] = load(base + ".cpu.json")
    add_per_request(res)
    write_json(base + ".json", res)
    summary(res)


def summary(res):
    cpu = res.get("cpu") or {}
    if not res.get("rps"):
        print("    no result (see the client's output above)", file=sys.stderr)
        return
    errors = ""
    if res.get("p99_ms") is not None:
        errors = (f", p99 {res.get('p99_ms')} ms, non-200 {res.get('unexpected_status')}, "
                  f"socket errors {res.get('socket_errors')}")
    print(f"    → {res['rps']:.0f} req/s{errors}; CPU cores: client {cpu.get('client_cores')}, "
          f"server {cpu.get('server_cores')}, other {cpu.get('other_cores')}; CPU µs/request: server "
          f"{res.get('server_cpu_us_per_request')}, client {res.get('client_cpu_us_per_request')}", file=sys.stderr)


# ---- the report ------------------------------------------------------------------------------------
def load(path, default=None):
    try:
        with open(path) as f:
            text = f.read().strip()
    except FileNotFoundError:
        return default
    if not text:
        return default
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def write_json(path, obj):
    with open(path, "w") as f:
        json.dump(obj, f, indent=2)
        f.write("\n")


def sh(*argv):
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=10)
        return (out.stdout + out.stderr).strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def git_head(root):
    """The checked-out commit, read from .git without running git."""
    try:
        gitdir = os.path.join(root, ".git")
        if os.path.isfile(gitdir):  # a worktree: "gitdir: PATH"
            with open(gitdir) as f:
                gitdir = os.path.join(root, f.read().split(":", 1)[1].strip())
        with open(os.path.join(gitdir, "HEAD")) as f:
            head = f.read().strip()
        if not head.startswith("ref: "):
            return head[:7]
        ref = head[5:]
        common = gitdir
        if os.path.exists(os.path.join(gitdir, "commondir")):
            with open(os.path.join(gitdir, "commondir")) as f:
                common = os.path.join(gitdir, f.read().strip())
        for d in (gitdir, common):
            p = os.path.join(d, ref)
            if os.path.exists(p):
                with open(p) as f:
                    return f.read().strip()[:7]
        with open(os.path.join(common, "packed-refs")) as f:
            for line in f:
                if line.rstrip().endswith(" " + ref):
                    return line.split()[0][:7]
    except (OSError, IndexError):
        pass
    return None


def binary_info(path):
    try:
        import hashlib
        st = os.stat(path)
        with open(path, "rb") as f:
            digest = hashlib.sha256(f.read()).hexdigest()[:12]
        mtime = datetime.datetime.fromtimestamp(st.st_mtime, datetime.timezone.utc).isoformat(timespec="seconds")
        return {"path": "build/reeld", "mtime_utc": mtime, "bytes": st.st_size, "sha256_12": digest}
    except OSError:
        return None


def fmt_rps(v):
    return "n/a" if v is None else f"{v:.0f}"


def fmt_ms(v):
    return "n/a" if v is None else f"{v:.2f}"


def fmt_ratio(v):
    if v is None:
        return "n/a"
    return f"{v:.2f}×" if v < 10 else f"{v:.1f}×"


def ratio(a, b):
    return None if a is None or not b else a / b


def cmd_report(a):
    R = lambda name: load(os.path.join(a.results, name + ".json"), None)
    note = lambda name: load(os.path.join(a.results, name), None)

    cells = [
        ("h1", "HTTP/1.1 (wrk)"),
        ("h1tls", "HTTP/1.1 + TLS (wrk)"),
        ("h2", "HTTP/2 + TLS, h2 (h2load)"),
        ("h2c", "h2c, prior knowledge (h2load)"),
        ("h3", f"HTTP/3 (gtlsclient ×{a.procs})"),
        ("h2same", f"HTTP/2 + TLS (nghttp ×{a.procs})"),
    ]
    no_timing = {"h3": "n/a (gtlsclient)", "h2same": "n/a (nghttp)"}
    peer_missing = {"h3": "n/a (aioquic not in Debian)", "h2same": "not run"}
    if note("peer_h2c_unsupported"):
        peer_missing["h2c"] = "not supported by the peer"
    rows, cpu_rows, data = [], [], {}
    for key, label in cells:
        r = R("reel_" + key)
        p = R("peer_" + key)
        if r is not None and not r.get("rps"):
            r = None
        if p is not None and not p.get("rps"):
            p = None
        d = {"label": label, "reel": r, "peer": p}
        rr = (r or {}).get("rps")
        pr = (p or {}).get("rps")
        d["ratio_rps_reel_over_peer"] = ratio(rr, pr)
        d["ratio_p99_reel_over_peer"] = ratio((r or {}).get("p99_ms"), (p or {}).get("p99_ms"))
        peer_gone = "not run (BENCH_ONLY=reel)" if a.only == "reel" else peer_missing.get(key, "failed (see above)")
        reel_gone = "not run (BENCH_ONLY=peer)" if a.only == "peer" else "failed (see above)"

        def errs(x):
            if not x:
                return "-"
            if key in no_timing:  # the server's count of other statuses; client processes that failed
                bad = sum(v for k, v in (x.get("server_counts") or {}).items() if k != "200")
                return f"{bad} / {x.get('failed_client_runs') or 0}"
            return f"{x.get('unexpected_status') or 0} / {x.get('socket_errors') or 0}"

        rows.append((
            label,
            fmt_rps(rr) if r else reel_gone,
            (no_timing.get(key) or fmt_ms(r.get("p99_ms"))) if r else "",
            fmt_rps(pr) if p else peer_gone,
            fmt_ms(p.get("p99_ms")) if p else "",
            fmt_ratio(d["ratio_rps_reel_over_peer"]) if (r and p) else "",
            errs(r), errs(p),
        ))
        for stack, x in (("reel", r), ("peer", p)):
            c = (x or {}).get("cpu") or {}
            if c:
                cpu_rows.append((label, stack, f"{c.get('client_cores')}", f"{c.get('server_cores')}",
                                 f"{c.get('server_busiest_thread_cores')}",
                                 f"{c.get('other_cores')}", f"{c.get('machine_busy_pct')}",
                                 f"{x.get('server_cpu_us_per_request')}", f"{x.get('client_cpu_us_per_request')}"))
        data[key] = d

    def show(headers, rows):
        widths = [max(len(str(r[i])) for r in rows + [headers]) for i in range(len(headers))]
        line = "  ".join("{:<%d}" % w for w in widths)
        print(line.format(*headers).rstrip())
        print("  ".join("-" * w for w in widths))
        for r in rows:
            print(line.format(*r).rstrip())

    headers = ("protocol", "reel req/s", "reel p99 ms", "peer req/s", "peer p99 ms", "reel/peer",
               "reel non-200/err", "peer non-200/err")
    print()
    print(f"GET /v1/jobs/{{id}} of one queued job, with the bearer token; {a.duration:g} s per cell, one cell at a time")
    print(f"  wrk -t{a.threads} -c{a.conns} --latency (64 requests in flight); "
          f"h2load -t{a.threads} -c{a.conns} -m{a.streams} ({a.conns * a.streams} in flight), p99 from its --log-file;")
    print(f"  HTTP/3 and its h2 twin: {a.procs} client processes, each one connection × {a.per_run} requests, "
          f"restarted until the end; req/s over the window with all {a.procs} running")
    show(headers, rows)

    def rps(stack, key):
        return ((data.get(key) or {}).get(stack) or {}).get("rps")

    own = {}
    for stack in ("reel", "peer"):
        own[stack] = {
            "h2_over_h1": ratio(rps(stack, "h2"), rps(stack, "h1")),
            "h2c_over_h1": ratio(rps(stack, "h2c"), rps(stack, "h1")),
            "h1tls_over_h1": ratio(rps(stack, "h1tls"), rps(stack, "h1")),
            "h2_over_h1tls": ratio(rps(stack, "h2"), rps(stack, "h1tls")),
        }
    own["reel"]["h3_over_h2_h2load"] = ratio(rps("reel", "h3"), rps("reel", "h2"))
    own["reel"]["h3_over_h2_same_client_shape"] = ratio(rps("reel", "h3"), rps("reel", "h2same"))
    print()
    for stack in ("reel", "peer"):
        o = own[stack]
        if all(v is None for v in o.values()):
            continue
        print(f"{stack}'s own ratios (req/s): h2/h1 {fmt_ratio(o['h2_over_h1'])}, h2c/h1 {fmt_ratio(o['h2c_over_h1'])}, "
              f"h1+TLS/h1 {fmt_ratio(o['h1tls_over_h1'])}, h2/(h1+TLS) {fmt_ratio(o['h2_over_h1tls'])}")
        if stack == "reel":
            print(f"  h3/h2 {fmt_ratio(o['h3_over_h2_same_client_shape'])} with the same client shape "
                  f"(gtlsclient ×{a.procs} against nghttp ×{a.procs}); "
                  f"h3/h2 {fmt_ratio(o['h3_over_h2_h2load'])} against h2load (different clients)")

    print()
    print(f"CPU during each cell, in cores of {os.cpu_count()}: the load client, the server under test "
          "(reeld; Hypercorn's processes + Redis) and its busiest")
    print("thread (reeld's event loop; 1.0 = that thread saturated), everything else on the machine; "
          "CPU µs per answered request")
    show(("protocol", "stack", "client", "server", "server's busiest thread", "other", "busy %", "server µs/req",
          "client µs/req"), cpu_rows)

    busy_cells = []
    for key, label in cells + [("h3x2", "HTTP/3, twice the clients")]:
        for stack in ("reel", "peer"):
            x = R(f"{stack}_{key}") or {}
            o = (x.get("cpu") or {}).get("other_cores")
            if o is not None and o > 0.3:
                busy_cells.append(f"{label} / {stack} ({o})")
    if busy_cells:
        print()
        print("WARNING: other processes on the machine used more than 0.3 cores during: " + "; ".join(busy_cells))
        print("  Those figures are lower than on a quiet machine; the per-request CPU columns are the least affected.")

    h3 = (data.get("h3") or {}).get("reel") or {}
    c = h3.get("cpu") or {}
    print()
    print("HTTP/3: gtlsclient is ngtcp2's example client, a debug tool that prints a log line per packet unless "
          "run with -q (as here);")
    print("  it has no per-request timing (no p99) and no header option (an LD_PRELOAD shim adds the token), and "
          "each process drives one")
    print(f"  connection. The figure is what {a.procs} such clients get on the cores they share with reeld:")
    scale = None
    if c:
        share = c["client_cpu_s"] / max(1e-9, c["client_cpu_s"] + c["server_cpu_s"])
        busy = c.get("machine_busy_pct") or 0
        loop = c.get("server_busiest_thread_cores") or 0
        print(f"  the gtlsclients used {c.get('client_cores')} cores, reeld {c.get('server_cores')} (its event loop "
              f"thread {loop}), other processes {c.get('other_cores')}; {100 * share:.0f} % of the client's + reeld's "
              f"CPU was the client's; the machine was {busy} % busy.")
        x2 = R("reel_h3x2") or {}
        scale = ratio(x2.get("rps"), h3.get("rps"))
        if x2.get("rps"):
            print(f"  With {x2.get('procs')} gtlsclients instead of {h3.get('procs')}: {x2['rps']:.0f} req/s "
                  f"({fmt_ratio(scale)}).", end=" ")
        if scale is not None and scale >= 1.1:
            print("More clients, more requests: the figure is client-bound.")
        elif c.get("client_cores", 0) >= c.get("server_cores", 0):
            print("The client used more CPU than reeld: the figure is client-bound.")
        elif scale is not None:
            print("More clients did not help: the limit is the two cores the client shares with reeld, with reeld's")
            print("  single event loop thread the nearest to saturation — not the number of gtlsclient processes.")
        else:
            print()
        print(f"  reeld's CPU per HTTP/3 request ({h3.get('server_cpu_us_per_request')} µs) does not depend on the "
              "client: compare it with the other rows.")
    data["h3_twice_the_clients"] = {"reel": R("reel_h3x2"), "ratio_rps_over_h3": scale}

    cache = os.path.join(a.root, "build", "CMakeCache.txt")
    build_type = None
    try:
        with open(cache) as f:
            for l in f:
                if l.startswith("CMAKE_BUILD_TYPE:"):
                    build_type = l.split("=", 1)[1].strip()
    except OSError:
        pass
    machine = {
        "date_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "cpus": os.cpu_count(),
        "cpu_model": cpu_model(),
        "kernel": platform.release(),
        "loadavg_start": note("loadavg_start"),
        "loadavg_end": note("loadavg_end"),
        "cpu_busy_before_pct": note("cpu_busy_start"),
    }
    setup = {
        "request": "GET /v1/jobs/{id} of one queued job (service.workers: 0), Authorization: Bearer",
        "duration_s_per_cell": a.duration,
        "wrk": {"threads": a.threads, "connections": a.conns, "script": "bench/get_job.lua",
                "version": sh("sh", "-c", "wrk -v 2>&1 | head -n 1")},
        "h2load": {"threads": a.threads, "connections": a.conns, "streams_per_connection": a.streams,
                   "version": sh("sh", "-c", "h2load --version | head -n 1"),
                   "p99": "from --log-file (per-request time from submit to end of response)"},
        "h3": {"client": "gtlsclient (Debian ngtcp2-client) -q --exit-on-all-streams-close, "
                         "authorization added by an LD_PRELOAD shim (tests/blackbox/h3client.py SHIM_C)",
               "processes": a.procs, "requests_per_connection": a.per_run,
               "version": sh("sh", "-c", "dpkg-query -W -f='${Version}' ngtcp2-client")},
        "h2_same_shape": {"client": "nghttp -n -m N (Debian nghttp2-client)", "processes": a.procs,
                          "requests_per_connection": a.per_run},
        "reel": {"commit": git_head(a.root), "build_type": build_type, "log_level": a.reel_log_level,
                 # the checked-out commit need not be what build/reeld was built from: say which binary ran
                 "binary": binary_info(os.path.join(a.root, "build", "reeld")),
                 "listen": "http:// (HTTP/1.1 + h2c), https:// (TLS, ALPN h2/http1.1), h3:// (QUIC) on the https port",
                 "tls": "scripts/dev-cert.sh, ECDSA P-256"},
        "peer": {"server": f"hypercorn --workers {a.peer_workers} --worker-class {a.peer_worker_class}, "
                           "--certfile/--keyfile on --bind, cleartext on --insecure-bind; Redis appendfsync always",
                 "versions": {"fastapi": version("fastapi"), "hypercorn": version("hypercorn"),
                              "h2": version("h2"), "rq": version("rq"), "uvloop": version("uvloop")},
                 "h3": "n/a: Hypercorn's HTTP/3 needs aioquic, which Debian 12 does not package",
                 "h2c": "not supported by the peer" if note("peer_h2c_unsupported") else "prior knowledge accepted"},
    }
    table = [dict(zip(headers, r)) for r in rows]
    out = {"machine": machine, "setup": setup, "cells": data, "own_ratios": own, "table": table,
           "busy_machine_warnings": busy_cells,
           "cpu_table": [dict(zip(("protocol", "stack", "client_cores", "server_cores",
                                   "server_busiest_thread_cores", "other_cores",
                                   "machine_busy_pct", "server_cpu_us_per_request", "client_cpu_us_per_request"), r))
                         for r in cpu_rows]}
    os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
    write_json(a.out, out)
    print()
    print(f"machine: {machine['cpus']} CPUs ({machine['cpu_model']}), load average before {machine['loadavg_start']}, "
          f"CPU busy in the second before: {machine['cpu_busy_before_pct']}%")
    b = setup["reel"]["binary"] or {}
    print(f"reel: HEAD {setup['reel']['commit']}, build/reeld of {b.get('mtime_utc')} (sha256 {b.get('sha256_12')}), "
          f"{build_type}, log_level {a.reel_log_level}; "
          f"peer: hypercorn {a.peer_workers} × {a.peer_worker_class} workers")
    print(f"JSON: {a.out}")


def main():
    argv = sys.argv[1:]
    cmd = []
    if "--" in argv:
        i = argv.index("--")
        argv, cmd = argv[:i], argv[i + 1:]
    ap = argparse.ArgumentParser()
    ap.add_argument("what", choices=("measure", "parallel", "h2load", "wrk", "report"))
    ap.add_argument("--name")
    ap.add_argument("--results", required=True)
    ap.add_argument("--server-pgids", default="")
    ap.add_argument("--metrics")
    ap.add_argument("--route", default="GET /v1/jobs/{id}")
    ap.add_argument("--procs", type=int, default=8)
    ap.add_argument("--duration", type=float, default=10)
    ap.add_argument("--per-run", type=int, default=2000)
    ap.add_argument("--env", action="append")
    ap.add_argument("--out")
    ap.add_argument("--root", default=".")
    ap.add_argument("--only", default="")
    ap.add_argument("--conns", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--streams", type=int, default=10)
    ap.add_argument("--reel-log-level", default="info")
    ap.add_argument("--peer-workers", type=int, default=2)
    ap.add_argument("--peer-worker-class", default="uvloop")
    a = ap.parse_args(argv)
    if a.what == "measure":
        cmd_measure(a, cmd)
    elif a.what == "parallel":
        cmd_parallel(a, cmd)
    elif a.what == "h2load":
        cmd_h2load(a)
    elif a.what == "wrk":
        cmd_wrk(a)
    else:
        cmd_report(a)


if __name__ == "__main__":
    main()
