#!/usr/bin/python3
"""Reads the per-phase results bench/run.sh left in a directory, prints the
table comparing reel with the peer, and writes the same as JSON."""
import argparse
import datetime
import json
import os
import platform
import subprocess


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


def sh(*argv, cwd=None):
    try:
        return subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def version(module):
    try:
        import importlib.metadata as md
        return md.version(module)
    except Exception:
        return None


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--results", required=True)
    ap.add_argument("--root", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--duration", type=float)
    ap.add_argument("--conns", type=int)
    ap.add_argument("--threads", type=int)
    ap.add_argument("--peer-hypercorn-workers", type=int)
    ap.add_argument("--peer-worker-class")
    ap.add_argument("--peer-rq-workers", type=int)
    ap.add_argument("--reel-log-level", default="info")
    a = ap.parse_args()
    R = lambda name, default=None: load(os.path.join(a.results, name), default)

    stacks = {}
    for s in ("reel", "peer"):
        stacks[s] = {
            "post": R(f"{s}_post.json", {}),
            "get": R(f"{s}_get.json", {}),
            "submit_to_start": R(f"{s}_latency.json", {}),
            "memory_idle": R(f"{s}_mem_idle.json", {}),
            "memory_api_only_idle": R(f"{s}_mem_api_idle.json", {}),
        }
    stacks["reel"]["memory_after_load"] = R("reel_mem_after_load.json", {})
    stacks["reel"]["log_error_lines"] = {"api_run": R("reel_api_error_lines"), "workers_run": R("reel_run_error_lines")}
    stacks["reel"]["log_error_samples"] = R("reel_api_error_samples")
    stacks["peer"]["queued_after_load"] = R("peer_queued")

    def get(stack, *path):
        v = stacks[stack]
        for p in path:
            if not isinstance(v, dict):
                return None
            v = v.get(p)
        return v

    def mib(kb):
        return None if kb is None else kb / 1024.0

    rows = []  # (label, reel, peer, unit, better, target_text, verdict)

    def ratio(r, p):
        if r is None or p is None or p == 0:
            return None
        return r / p

    post_r, post_p = get("reel", "post", "rps"), get("peer", "post", "rps")
    post_ratio = ratio(post_r, post_p)
    p99_r = get("reel", "post", "p99_ms")
    rss_r = mib(get("reel", "memory_idle", "rss_kb"))

    def verdict(ok):
        return None if ok is None else ("met" if ok else "NOT met")

    targets = {
        "post_rps": ("≥ 10000/s", verdict(None if post_r is None else post_r >= 10000)),
        "post_ratio": ("≥ 20×", verdict(None if post_ratio is None else post_ratio >= 20)),
        "post_p99": ("≤ 10 ms", verdict(None if p99_r is None else p99_r <= 10)),
        "rss": ("≤ 10 MiB", verdict(None if rss_r is None else rss_r <= 10)),
    }

    metrics = [
        ("(a) durable POST /v1/jobs, req/s", "post", "rps", "{:.0f}", "post_rps"),
        ("(a) POST p50 latency, ms", "post", "p50_ms", "{:.2f}", None),
        ("(a) POST p99 latency, ms", "post", "p99_ms", "{:.2f}", "post_p99"),
        ("(a) POST non-202 / socket errors", "post", None, None, None),
        ("(b) GET /v1/jobs/{id}, req/s", "get", "rps", "{:.0f}", None),
        ("(b) GET p99 latency, ms", "get", "p99_ms", "{:.2f}", None),
        ("(b) GET non-200 / socket errors", "get", None, None, None),
        ("(c) submit→start p50, ms", "submit_to_start", "p50_ms", "{:.1f}", None),
        ("(c) submit→start p99, ms", "submit_to_start", "p99_ms", "{:.1f}", None),
        ("(c) jobs started / submitted", "submit_to_start", None, None, None),
        ("(c) jobs finished / submitted", "submit_to_start", "_finished", None, None),
        ("(d) idle RSS, MiB (whole stack)", "memory_idle", "rss_kb", "{:.1f}", "rss"),
        ("(d) idle PSS, MiB (whole stack)", "memory_idle", "pss_kb", "{:.1f}", None),
    ]
    table = []
    for label, section, key, fmt, target in metrics:
        cells = []
        values = []
        for s in ("reel", "peer"):
            d = get(s, section) or {}
            if section in ("post", "get") and key is None:
                if not d:
                    cells.append("n/a"); continue
                sock = sum(d.get(k, 0) for k in ("connect_errors", "read_errors", "write_errors", "timeouts"))
                cells.append(f"{d.get('unexpected_status', 0)} / {sock}")
                continue
            if section == "submit_to_start" and key == "_finished":
                fin = (d.get("final_statuses") or {}).get("finished", 0)
                cells.append(f"{fin} / {d.get('jobs', 0)}" if d else "n/a")
                continue
            if section == "submit_to_start" and key is None:
                cells.append(f"{d.get('started', 0)} / {d.get('jobs', 0)}" if d else "n/a")
                continue
            v = d.get(key)
            if v is not None and section.startswith("memory"):
                v = mib(v)
            values.append(v)
            cells.append("n/a" if v is None else fmt.format(v))
        rat = ""
        if len(values) == 2 and None not in values and values[1]:
            rat = f"{values[0] / values[1]:.2f}×" if values[0] / values[1] < 10 else f"{values[0] / values[1]:.1f}×"
        tgt, ver = ("", "")
        if target:
            tgt, v = targets[target]
            ver = v or "n/a"
        if target == "post_rps":
            t2, v2 = targets["post_ratio"]
            tgt = f"{tgt}; {t2} peer"
            ver = f"{ver}; {v2 or 'n/a'}"
        table.append((label, cells[0], cells[1], rat, tgt, ver))

    headers = ("metric", "reel", "peer", "reel/peer", "target", "verdict")
    widths = [max(len(str(r[i])) for r in table + [headers]) for i in range(6)]
    line = "  ".join("{:<%d}" % w for w in widths)
    print()
    print(line.format(*headers))
    print("  ".join("-" * w for w in widths))
    for r in table:
        print(line.format(*r))

    commit = sh("git", "rev-parse", "--short", "HEAD", cwd=a.root)
    dirty = bool(sh("git", "status", "--porcelain", "--untracked-files=no", "--", "src", cwd=a.root))
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
        "memory_mib": os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // (1 << 20),
        "loadavg_start": R("loadavg_start"),
        "loadavg_end": R("loadavg_end"),
        "cpu_busy_before_pct": R("cpu_busy_start"),
        "data_filesystem": R("data_fs"),
        "fsync_4k_append": R("fsync_ms"),
    }
    setup = {
        "client": f"wrk, {a.threads} threads, {a.conns} connections, {a.duration:g} s per run, same machine",
        "reel": {"commit": commit, "src_modified": dirty, "build_type": build_type,
                 "log_level": a.reel_log_level, "api_runs": "service.workers: 0", "latency_run": "service.workers: 2",
                 "durability": "SQLite WAL, synchronous=FULL, group commit before the 202"},
        "peer": {"hypercorn_workers": a.peer_hypercorn_workers, "worker_class": a.peer_worker_class,
                 "rq_workers": a.peer_rq_workers, "durability": "Redis appendonly yes, appendfsync always",
                 "versions": {"fastapi": version("fastapi"), "hypercorn": version("hypercorn"),
                              "rq": version("rq"), "redis-py": version("redis"), "uvloop": version("uvloop"),
                              "redis-server": sh("redis-server", "--version")}},
        "wrk": sh("sh", "-c", "wrk -v 2>&1 | head -n 1"),
    }
    out = {
        "machine": machine,
        "setup": setup,
        "targets": {k: {"target": t, "verdict": v} for k, (t, v) in targets.items()},
        "ratios_reel_over_peer": {
            "post_rps": post_ratio,
            "post_p99": ratio(get("reel", "post", "p99_ms"), get("peer", "post", "p99_ms")),
            "get_rps": ratio(get("reel", "get", "rps"), get("peer", "get", "rps")),
            "get_p99": ratio(get("reel", "get", "p99_ms"), get("peer", "get", "p99_ms")),
            "submit_to_start_p50": ratio(get("reel", "submit_to_start", "p50_ms"), get("peer", "submit_to_start", "p50_ms")),
            "submit_to_start_p99": ratio(get("reel", "submit_to_start", "p99_ms"), get("peer", "submit_to_start", "p99_ms")),
            "idle_rss": ratio(get("reel", "memory_idle", "rss_kb"), get("peer", "memory_idle", "rss_kb")),
        },
        "stacks": stacks,
        "table": [dict(zip(headers, r)) for r in table],
    }
    with open(a.out, "w") as f:
        json.dump(out, f, indent=2)
        f.write("\n")
    print()
    print(f"machine: {machine['cpus']} CPUs ({machine['cpu_model']}), load average before {machine['loadavg_start']}, "
          f"CPU busy in the second before: {machine['cpu_busy_before_pct']}%")
    print(f"data on {machine['data_filesystem']}; one 4 KiB append + fsync there: {machine['fsync_4k_append']}")
    print(f"reel {commit}{' (src modified)' if dirty else ''}, {build_type}, log_level {a.reel_log_level}; peer: hypercorn {a.peer_hypercorn_workers} "
          f"× {a.peer_worker_class} workers, {a.peer_rq_workers} rq workers, redis appendfsync always")
    errs = stacks["reel"]["log_error_lines"]
    if errs and any(str(v) not in ("0", "None") for v in errs.values()):
        print(f"reel error lines in its log: {errs}; samples: {stacks['reel']['log_error_samples']}")
    print(f"JSON: {a.out}")


if __name__ == "__main__":
    main()
