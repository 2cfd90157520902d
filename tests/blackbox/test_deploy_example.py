"""The scale-out example in deploy/scaleout runs as shipped (issue 10: "an
example of one API node and two worker nodes with PostgreSQL and an
S3-compatible store that the tests bring up on loopback").

deploy/scaleout/up.sh is run on free loopback ports (its own PostgreSQL with a
generated password, s3rver, `reeld migrate`, the three nodes). Jobs submitted
to the API node finish on the worker nodes (their "node" is worker-1 or
worker-2), their videos download through the presigned URL from s3rver, the
workers answer 404 for the API but serve /healthz, /readyz and /metrics, the
migration was applied once (by `reeld migrate`), the database password reaches
no log, and down.sh stops every process it started. The systemd units in
deploy/systemd pass `systemd-analyze verify`, with ExecStart pointing at the
binary under test, and their --check-config step accepts the example's configs.
"""

import glob
import json
import os
import shutil
import subprocess
import sys
import tempfile
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import reelharness as h  # noqa: E402

HERE = os.path.join(h.SOURCE_DIR, "deploy", "scaleout")
UNITS = os.path.join(h.SOURCE_DIR, "deploy", "systemd")
TOKEN = "scaleout-example-token"
WORKERS = ("worker-1", "worker-2")
JOBS = 6


def http(port, method, path, body=None, token=True):
    """(status, headers, parsed JSON or raw bytes) of one request to 127.0.0.1:port."""
    import http.client
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    headers = {"Authorization": "Bearer " + TOKEN} if token else {}
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    conn.request(method, path, body=data, headers=headers)
    resp = conn.getresponse()
    raw = resp.read()
    conn.close()
    try:
        parsed = json.loads(raw) if raw else None
    except ValueError:
        parsed = raw
    return resp.status, {k.lower(): v for k, v in resp.getheaders()}, parsed


def metric(text, name):
    for line in text.decode().splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return None


def pid_of(run, name):
    return h.read_pid(os.path.join(run, "pids", name + ".pid"))


def check_units(c, run):
    """systemd-analyze verify on copies of the units whose reeld is the one under test."""
    analyze = shutil.which("systemd-analyze")
    c.check(analyze is not None, "systemd-analyze is installed (Debian package systemd)")
    if not analyze:
        return
    tmp = tempfile.mkdtemp(prefix="reel-units-")
    try:
        names = sorted(os.path.basename(p) for p in glob.glob(os.path.join(UNITS, "*.service")))
        c.check({"reeld.service", "reeld@.service"} <= set(names), "deploy/systemd ships reeld.service and reeld@.service (%r)" % names)
        for name in names:
            with open(os.path.join(UNITS, name)) as f:
                text = f.read()
            for key in ("ProtectSystem=strict", "ProtectHome=", "PrivateTmp=yes", "NoNewPrivileges=yes",
                        "Restart=on-failure", "KillMode=mixed", "TimeoutStopSec=", "--check-config", "User=reel"):
                c.check(key in text, "%s sets %s" % (name, key))
            with open(os.path.join(tmp, name), "w") as f:
                f.write(text.replace("/opt/reel/reeld", h.reeld_binary()))
        targets = [os.path.join(tmp, n) for n in names if "@" not in n]
        targets += [os.path.join(tmp, n.replace("@.", "@worker-1.")) for n in names if "@" in n]
        for n in names:  # an instance needs its template beside it
            if "@" in n:
                os.symlink(os.path.join(tmp, n), os.path.join(tmp, n.replace("@.", "@worker-1.")))
        out = subprocess.run([analyze, "verify"] + targets, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             text=True, cwd=tmp)
        # verify also lints units it pulls in from this machine; only complaints about ours count
        ours = [line for line in out.stdout.splitlines() if "reeld" in line]
        c.check(not ours, "systemd-analyze verify finds nothing wrong with the units (%r)" % ours)
        # the units' ExecStartPre, on the example's configs as up.sh wrote them
        for node in ("api",) + WORKERS:
            res = subprocess.run([h.reeld_binary(), "--check-config", "--config", node + ".yaml"], cwd=run,
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            c.eq(res.returncode, 0, "reeld --check-config accepts %s.yaml (%s)" % (node, res.stdout.strip()))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def body(c):
    tmp = tempfile.mkdtemp(prefix="reel-deploy-")
    os.chmod(tmp, 0o755)  # as root, PostgreSQL runs as postgres, which must reach the run directory
    run = os.path.join(tmp, "run")
    ports = {name: h.free_port() for name in ("api", "worker-1", "worker-2", "pg", "s3")}
    env = dict(os.environ, REELD=h.reeld_binary(), REEL_SCALEOUT_RUN=run, REEL_API_PORT=str(ports["api"]),
               REEL_WORKER1_PORT=str(ports["worker-1"]), REEL_WORKER2_PORT=str(ports["worker-2"]),
               REEL_PG_PORT=str(ports["pg"]), REEL_S3_PORT=str(ports["s3"]))
    up = subprocess.run([os.path.join(HERE, "up.sh")], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                        text=True, timeout=180)
    try:
        c.eq(up.returncode, 0, "deploy/scaleout/up.sh brings the example up\n" + up.stdout[-3000:])
        if up.returncode != 0:
            for log in sorted(glob.glob(os.path.join(run, "logs", "*.log"))):
                with open(log, errors="replace") as f:
                    print("--- %s\n%s" % (log, f.read()[-2000:]))
            return
        api = ports["api"]

        # the roles
        for w in WORKERS:
            status, _, problem = http(ports[w], "GET", "/v1/jobs")
            c.eq(status, 404, "%s answers 404 for GET /v1/jobs" % w)
            c.check(isinstance(problem, dict) and problem.get("type", "").endswith("/not-served-by-worker"),
                    "%s's 404 is the not-served-by-worker problem (%r)" % (w, problem))
            status, _, _ = http(ports[w], "POST", "/v1/jobs", {"prompt": "x"})
            c.eq(status, 404, "%s answers 404 for POST /v1/jobs" % w)
            for path in ("/healthz", "/readyz", "/metrics"):
                status, _, _ = http(ports[w], "GET", path, token=False)
                c.eq(status, 200, "%s serves %s" % (w, path))
        status, _, ready = http(api, "GET", "/readyz", token=False)
        c.eq(status, 200, "the API node is ready")
        c.eq((ready or {}).get("checks", {}).get("workers"), "not run by this process", "the API node runs no job")

        # jobs through the API node, run by the workers
        ids = []
        for i in range(JOBS):
            status, _, job = http(api, "POST", "/v1/jobs", {"prompt": "deploy example %d" % i})
            c.eq(status, 202, "POST /v1/jobs on the API node answers 202")
            ids.append(job["id"])
        done = {}

        def all_ended():
            for job_id in ids:
                if job_id not in done:
                    status, _, job = http(api, "GET", "/v1/jobs/" + job_id)
                    if status == 200 and job["status"] in h.TERMINAL_STATUSES:
                        done[job_id] = job
            return len(done) == len(ids)

        c.check(h.wait_for(all_ended, 120, 0.2), "every job ended within 120 s")
        for job_id, job in sorted(done.items()):
            c.eq(job["status"], "finished", "%s finished (%s)" % (job_id, job.get("error")))
            c.check(job.get("node") in WORKERS, "%s ran on a worker node (node %r)" % (job_id, job.get("node")))
            c.eq(job.get("attempts"), 1, "%s ran once" % job_id)
            c.check((job.get("artifact_uri") or "").startswith("s3://reel-artifacts/"),
                    "%s's artifact is in the bucket (%r)" % (job_id, job.get("artifact_uri")))
        started = {}
        for w in WORKERS:
            _, _, text = http(ports[w], "GET", "/metrics", token=False)
            started[w] = metric(text, "reel_runs_started_total")
        c.eq(sum(v or 0 for v in started.values()), JOBS, "the workers' reel_runs_started_total add up to %d (%r)"
             % (JOBS, started))
        _, _, text = http(api, "GET", "/metrics", token=False)
        c.eq(metric(text, "reel_runs_started_total"), 0, "the API node started no run")

        # the artifact, through the URL the API node signs, from s3rver
        first = ids[0]
        status, _, art = http(api, "GET", "/v1/jobs/%s/artifact" % first)
        c.eq(status, 200, "GET /artifact on the API node answers 200")
        url = art.get("url", "") if isinstance(art, dict) else ""
        c.check(url.startswith("http://127.0.0.1:%d/reel-artifacts/" % ports["s3"]) and "X-Amz-Signature=" in url,
                "the artifact URL is presigned on s3rver (%s)" % url.split("?")[0])
        with urllib.request.urlopen(url, timeout=10) as resp:
            video = resp.read()
            c.eq(resp.status, 200, "s3rver serves the artifact through the signed URL")
        c.check(len(video) > 1000 and video[4:8] == b"ftyp", "the download is an MP4 (%d bytes)" % len(video))
        tampered = url.replace("X-Amz-Signature=", "X-Amz-Signature=0")
        try:
            urllib.request.urlopen(tampered, timeout=10)
            c.check(False, "s3rver refuses a tampered signature")
        except urllib.error.HTTPError as e:
            c.eq(e.code, 403, "s3rver refuses a tampered signature")

        # reeld migrate applied the schema once, before the nodes started
        with open(os.path.join(run, "secrets", "db-password")) as f:
            password = f.read().strip()
        out = subprocess.run(["psql", "-X", "-A", "-t", "-h", "127.0.0.1", "-p", str(ports["pg"]), "-U", "reel",
                              "-d", "reel", "-c", "SELECT version, applied_by FROM reel_schema_version ORDER BY version"],
                             env=dict(os.environ, PGPASSWORD=password), stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True)
        rows = [line.split("|") for line in out.stdout.split()]
        c.check(len(rows) >= 1 and [int(v) for v, _ in rows] == list(range(1, len(rows) + 1)),
                "each migration applied once, in order: %r" % out.stdout.strip())
        c.eq(sorted({who for _, who in rows}), ["reeld-migrate"], "all of them by reeld migrate")
        out = subprocess.run(["psql", "-X", "-A", "-t", "-h", "127.0.0.1", "-p", str(ports["pg"]), "-U", "reel",
                              "-d", "reel", "-c", "SELECT 1"], env=dict(os.environ, PGPASSWORD="wrong"),
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        c.check(out.returncode != 0, "the example's PostgreSQL wants the password (SCRAM), so password_file is used")
        for node in ("api",) + WORKERS:
            with open(os.path.join(run, "logs", node + ".log"), errors="replace") as f:
                log = f.read()
            c.check(password not in log, "the database password is not in %s's log" % node)
            c.check('"mode":"%s"' % ("api" if node == "api" else "worker") in log, "%s started in its role" % node)

        check_units(c, run)
    finally:
        pids = {name: pid_of(run, name) for name in ("api",) + WORKERS + ("s3rver",)}
        try:
            with open(os.path.join(run, "pg", "data", "postmaster.pid")) as f:
                pids["postgres"] = int(f.readline())
        except (OSError, ValueError):
            pass
        down = subprocess.run([os.path.join(HERE, "down.sh"), "--keep"], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True, timeout=120)
        c.eq(down.returncode, 0, "down.sh stops the example (%s)" % down.stdout.strip())
        for name, pid in pids.items():
            if pid:
                c.check(not h.pid_alive(pid), "%s (pid %d) is gone after down.sh" % (name, pid))
        if up.returncode == 0:
            for node in ("api",) + WORKERS:
                with open(os.path.join(run, "logs", node + ".log"), errors="replace") as f:
                    log = f.read()
                c.check('"msg":"stopped"' in log, "%s stopped cleanly on SIGTERM" % node)
                c.check("Sanitizer" not in log, "%s's log has no sanitizer report" % node)
        down = subprocess.run([os.path.join(HERE, "down.sh")], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True, timeout=60)
        c.check(down.returncode == 0 and not os.path.exists(run), "down.sh removes the run directory")
        if os.environ.get("REEL_KEEP_TMP") != "1":
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(h.run(body))
