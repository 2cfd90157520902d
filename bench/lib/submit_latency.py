#!/usr/bin/python3
"""Submit-to-process-start latency.

Submits N jobs (POST /v1/jobs) at a fixed rate over one keep-alive connection.
Each job's prompt is a unique name; the pipeline command (lib/stamp.sh) writes
the wall clock at which the job's process started to STAMP_DIR/<name>. The
latency of a job is start_time - submit_time, where submit_time is the client's
wall clock just before it sends the POST. Prints one JSON object.

    submit_latency.py --url http://127.0.0.1:PORT --token T --stamps DIR --label reel [--jobs 200 --rate 20]
"""
import argparse
import http.client
import json
import os
import time
import urllib.parse


def percentile(values, p):
    """Nearest-rank percentile of a sorted list."""
    if not values:
        return None
    k = max(0, min(len(values) - 1, int(-(-p * len(values) // 100)) - 1))
    return values[k]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True)
    ap.add_argument("--token", required=True)
    ap.add_argument("--stamps", required=True)
    ap.add_argument("--label", default="job")
    ap.add_argument("--jobs", type=int, default=200)
    ap.add_argument("--rate", type=float, default=20.0)
    ap.add_argument("--wait", type=float, default=30.0, help="seconds to wait for the last jobs to start")
    a = ap.parse_args()

    u = urllib.parse.urlsplit(a.url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=10)
    headers = {"Authorization": f"Bearer {a.token}", "Content-Type": "application/json"}
    submitted, post_ms, failures, ids = {}, [], [], {}
    interval = 1.0 / a.rate
    t0 = time.monotonic()
    for i in range(a.jobs):
        next_at = t0 + i * interval
        delay = next_at - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        name = f"{a.label}-{i:05d}"
        body = json.dumps({"prompt": name})
        t_submit = time.time()
        m0 = time.monotonic()
        try:
            conn.request("POST", "/v1/jobs", body=body, headers=headers)
            resp = conn.getresponse()
            data = resp.read()
            status = resp.status
        except (OSError, http.client.HTTPException) as e:
            conn.close()
            conn = http.client.HTTPConnection(u.hostname, u.port, timeout=10)
            failures.append(f"{name}: {e!r}")
            continue
        post_ms.append((time.monotonic() - m0) * 1000)
        if status != 202:
            failures.append(f"{name}: HTTP {status}")
            continue
        submitted[name] = t_submit
        try:
            ids[name] = json.loads(data)["id"]
        except (ValueError, KeyError, TypeError):
            pass
    conn.close()
    submit_span = time.monotonic() - t0

    # Wait for every accepted job's process to have started.
    deadline = time.monotonic() + a.wait
    started = {}
    while time.monotonic() < deadline and len(started) < len(submitted):
        for name in submitted:
            if name in started:
                continue
            path = os.path.join(a.stamps, name)
            try:
                with open(path) as f:
                    text = f.read()
            except FileNotFoundError:
                continue
            if text.endswith("\n"):
                started[name] = float(text)
        if len(started) < len(submitted):
            time.sleep(0.05)

    # Then every job should reach a terminal state: count the final statuses (10 s at most).
    final = {}
    deadline = time.monotonic() + 10
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=10)
    pending = list(ids.items())
    while pending and time.monotonic() < deadline:
        still = []
        for name, job_id in pending:
            try:
                conn.request("GET", f"/v1/jobs/{job_id}", headers={"Authorization": f"Bearer {a.token}"})
                resp = conn.getresponse()
                doc = json.loads(resp.read()) if resp.status == 200 else {"status": f"HTTP {resp.status}"}
            except (OSError, http.client.HTTPException, ValueError) as e:
                conn.close()
                conn = http.client.HTTPConnection(u.hostname, u.port, timeout=10)
                doc = {"status": repr(e)}
            final[name] = doc.get("status")
            if final[name] not in ("finished", "failed", "canceled"):
                still.append((name, job_id))
        pending = still
        if pending:
            time.sleep(0.2)
    conn.close()
    statuses = {}
    for st in final.values():
        statuses[st] = statuses.get(st, 0) + 1

    lat = sorted((started[n] - submitted[n]) * 1000 for n in started)
    post_ms.sort()
    out = {
        "jobs": a.jobs,
        "rate_per_s": a.rate,
        "submit_span_s": round(submit_span, 3),
        "accepted": len(submitted),
        "started": len(started),
        "not_started": len(submitted) - len(started),
        "failures": len(failures),
        "failure_samples": failures[:5],
        "p50_ms": percentile(lat, 50),
        "p90_ms": percentile(lat, 90),
        "p99_ms": percentile(lat, 99),
        "max_ms": lat[-1] if lat else None,
        "min_ms": lat[0] if lat else None,
        "mean_ms": sum(lat) / len(lat) if lat else None,
        "final_statuses": statuses,
        "post_p50_ms": percentile(post_ms, 50),
        "post_p99_ms": percentile(post_ms, 99),
    }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
