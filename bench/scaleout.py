#!/usr/bin/python3
"""bench/scaleout.py — issue 10's benchmark, in one run, on one PostgreSQL 15
that it starts itself (tests/blackbox/pgserver.py). bench/scaleout.sh installs
what is missing and runs it; see bench/README.md ("Scale-out").

  (a) durable POST /v1/jobs, wrk -t2 -c64: reel (service.mode: api on
      PostgreSQL) against seed 002's stack (FastAPI + SQLAlchemy async +
      asyncpg on uvicorn, bench/peers/fastapi_jobs.py) inserting the same row
  (b) submit -> process start on an idle system: one API node + one worker
      node, one job at a time; the job's process writes its start time
  (c) lifecycle throughput of no-op command jobs with 1 and 3 worker nodes,
      against graphile-worker (bench/peers/graphile) with 1 and 3 processes
      running a task that spawns the same no-op process
  (d) reel's POST on SQLite, as bench/run.sh (a) measures it

Prints a table and writes it to bench/results/scaleout-<UTC date>.txt and the
figures as JSON to bench/results/scaleout-latest.json (ignored by git).
"""
import argparse
import asyncio
import datetime
import http.client
import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH = os.path.join(ROOT, "bench")
sys.path.insert(0, os.path.join(ROOT, "tests", "blackbox"))
import pgserver  # noqa: E402
sys.path.insert(0, os.path.join(BENCH, "lib"))
from report import sh, version  # noqa: E402

TOKEN = "bench-token-123456"
PY = "/usr/bin/python3"


def env_int(name, default):
    return int(os.environ.get(name, default))


DURATION = env_int("BENCH_DURATION", 10)
WARMUP = env_int("BENCH_WARMUP", 2)
CONNS, THREADS = 64, 2
LAT_JOBS = env_int("BENCH_LAT_JOBS", 100)
LAT_RATE = float(os.environ.get("BENCH_LAT_RATE", "10"))
LIFE_JOBS = env_int("BENCH_LIFE_JOBS", 2000)
LIFE_SLOTS = env_int("BENCH_LIFE_SLOTS", 8)         # job slots per worker node / graphile process
LIFE_LIMIT = env_int("BENCH_LIFE_LIMIT", 30)        # seconds at most per lifecycle cell
PEER_WORKERS = env_int("BENCH_PEER_WORKERS", 2)     # uvicorn worker processes (two cores)
REEL_LOG_LEVEL = os.environ.get("BENCH_REEL_LOG_LEVEL", "info")
ONLY = set(filter(None, os.environ.get("BENCH_ONLY", "").split(",")))  # a,b,c,d (default all)


def say(msg):
    print(f"\n== {msg}", file=sys.stderr, flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---- processes -------------------------------------------------------------------------------
class Procs:
    """Every process started runs in a session of its own; stop_all() ends each group (TERM, then KILL)."""

    def __init__(self):
        self.started = []

    def start(self, argv, log, cwd=None, env=None):
        f = open(log, "ab")
        p = subprocess.Popen(argv, stdout=f, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=cwd,
                             env=env, start_new_session=True)
        f.close()
        self.started.append(p)
        return p

    def stop(self, p, grace=5.0):
        if p.poll() is None:
            try:
                os.killpg(p.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                p.wait(grace)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(p.pid, signal.SIGKILL)  # whatever is left of its group
        except ProcessLookupError:
            pass
        p.wait()
        if p in self.started:
            self.started.remove(p)

    def stop_all(self):
        for p in list(self.started):
            self.stop(p, grace=2.0)


def print_log_tails(work):
    """After a failure: the end of every server log the run left in work."""
    for f in sorted(os.listdir(work)):
        if f.endswith(".log"):
            with open(os.path.join(work, f), errors="replace") as fh:
                tail = fh.read()[-1500:]
            print(f"--- {f} (end)\n{tail}", file=sys.stderr)


def wait_http(url, proc, seconds=15, want=None):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited during start (exit {proc.returncode})")
        try:
            with urllib.request.urlopen(url, timeout=1) as r:
                if want is None or r.status == want:
                    return
        except urllib.error.HTTPError as e:
            if want is None:
                return
            _ = e
        except OSError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"{url} did not answer in {seconds} s")


# ---- CPU accounting --------------------------------------------------------------------------
CLK = os.sysconf("SC_CLK_TCK")


def proc_times(pid):
    """(own utime+stime, reaped children's cutime+cstime) in seconds, or (0, 0)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0, 0.0
    return (int(fields[11]) + int(fields[12])) / CLK, (int(fields[13]) + int(fields[14])) / CLK


def children(pid):
    out = []
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/children") as f:
                out += [int(x) for x in f.read().split()]
    except OSError:
        pass
    return out


def tree_cpu(root_pids, own_only=False):
    """CPU seconds used so far by these processes, their descendants and their reaped children
    (own_only: by the root processes themselves, no child of theirs)."""
    total, seen, todo = 0.0, set(), list(root_pids)
    while todo:
        p = todo.pop()
        if p in seen:
            continue
        seen.add(p)
        own, reaped = proc_times(p)
        total += own if own_only else own + reaped
        if not own_only:
            todo += children(p)
    return total


def machine_cpu():
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    idle = v[3] + v[4]
    return (sum(v) - idle) / CLK, sum(v) / CLK


class CpuWindow:
    """CPU cores used over a window, per named group of processes, and the machine's."""

    def __init__(self, groups, own=None):
        self.groups = groups  # name -> callable returning root pids
        self.own = own or {}  # name -> callable: the same, counted without their children

    def __enter__(self):
        self.t0 = time.monotonic()
        self.c0 = {n: tree_cpu(f()) for n, f in self.groups.items()}
        self.o0 = {n: tree_cpu(f(), own_only=True) for n, f in self.own.items()}
        self.m0 = machine_cpu()
        return self

    def __exit__(self, *exc):
        dt = time.monotonic() - self.t0
        m1 = machine_cpu()
        self.cores = {n: round((tree_cpu(f()) - self.c0[n]) / dt, 2) for n, f in self.groups.items()}
        own = {n: round((tree_cpu(f(), own_only=True) - self.o0.get(n, 0.0)) / dt, 2) for n, f in self.own.items()}
        self.cores["machine"] = round((m1[0] - self.m0[0]) / dt, 2)
        self.cores["other"] = round(self.cores["machine"] - sum(v for k, v in self.cores.items() if k != "machine"), 2)
        self.cores.update(own)  # (included in their group's figure above)
        return False


# ---- the run ---------------------------------------------------------------------------------
class Bench:
    def __init__(self, reeld, work):
        self.reeld = reeld
        self.work = work
        self.procs = Procs()
        self.results = {}
        self.pg = None

    def path(self, *p):
        return os.path.join(self.work, *p)

    def pg_pids(self):
        try:
            with open(os.path.join(self.pg.data, "postmaster.pid")) as f:
                return [int(f.readline())]
        except (OSError, ValueError):
            return []

    def new_db(self, name):
        self.pg.psql(f"CREATE DATABASE {name} OWNER reel", db="postgres")
        return self.pg.url.rsplit("/", 1)[0] + "/" + name

    # -- reel
    def reel_config(self, name, mode, workers, db_url=None, command=None, port=None, storage=None):
        port = port or free_port()
        data = self.path(name + "-data")
        os.makedirs(data, exist_ok=True)
        lines = ["service:", f"  listen: 127.0.0.1:{port}", f"  data_dir: {data}",
                 f"  auth: {{tokens: [{TOKEN}]}}", f"  workers: {workers}", "  max_queue_depth: 10000000",
                 f"  log_level: {REEL_LOG_LEVEL}"]
        if db_url:
            lines += [f"  mode: {mode}", f"  node_id: {name}",
                      "  database:", "    backend: postgres", f"    url: {db_url}"]
        if storage:
            lines += ["  storage:", f"    path: {storage}"]
        lines += ["pipeline:", "  default_backend: command",
                  "  command: " + json.dumps(command or ["/bin/true"])]
        cfg = self.path(name + ".yaml")
        with open(cfg, "w") as f:
            f.write("\n".join(lines) + "\n")
        subprocess.run([self.reeld, "--check-config", "--config", cfg], check=True, stdout=subprocess.DEVNULL)
        return cfg, port

    def start_reel(self, name, cfg, port, ready=True):
        p = self.procs.start([self.reeld, "--config", cfg], self.path(name + ".log"))
        wait_http(f"http://127.0.0.1:{port}/healthz", p)
        if ready:
            wait_http(f"http://127.0.0.1:{port}/readyz", p, want=200)
        return p

    def log_problems(self, name):
        n, samples = 0, []
        try:
            with open(self.path(name + ".log"), errors="replace") as f:
                for line in f:
                    if '"level":"error"' in line or '"level":"warn"' in line:
                        n += 1
                        if len(samples) < 3:
                            samples.append(line.strip()[:300])
        except OSError:
            pass
        return {"warn_error_lines": n, "samples": samples}

    # -- wrk
    def wrk(self, url, seconds, name):
        env = dict(os.environ, BENCH_TOKEN=TOKEN)
        out = subprocess.run(["wrk", f"-t{THREADS}", f"-c{CONNS}", f"-d{seconds}s", "--timeout", "5s", "--latency",
                              "-s", os.path.join(BENCH, "post_job.lua"), url], capture_output=True, text=True,
                             env=env, timeout=seconds + 30)
        with open(self.path(name + ".wrk.txt"), "w") as f:
            f.write(out.stdout + out.stderr)
        for line in out.stdout.splitlines():
            if line.startswith("WRK_JSON "):
                return json.loads(line[len("WRK_JSON "):])
        raise RuntimeError(f"wrk printed no figures: {out.stdout[-500:]} {out.stderr[-500:]}")

    def post_load(self, url, name, groups):
        if WARMUP > 0:
            self.wrk(url, WARMUP, name + "-warmup")
        import resource
        ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.monotonic()
        with CpuWindow(groups) as cpu:
            r = self.wrk(url, DURATION, name)
        ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        wrk_cores = round((ru1.ru_utime + ru1.ru_stime - ru0.ru_utime - ru0.ru_stime) / (time.monotonic() - t0), 2)
        cpu.cores["wrk"] = wrk_cores
        cpu.cores["other"] = round(cpu.cores["other"] - wrk_cores, 2)
        r["cpu_cores"] = cpu.cores
        print("    " + json.dumps(r), file=sys.stderr)
        return r

    # (d) reel on SQLite, as bench/run.sh (a)
    def post_sqlite(self):
        say("(d) reel on SQLite: POST /v1/jobs (service.workers: 0)")
        cfg, port = self.reel_config("reel-sqlite", "both", 0)
        p = self.start_reel("reel-sqlite", cfg, port, ready=False)  # not ready with workers: 0, by design
        r = self.post_load(f"http://127.0.0.1:{port}/v1/jobs", "reel-sqlite", {"reeld": lambda: [p.pid]})
        r["log"] = self.log_problems("reel-sqlite")
        self.procs.stop(p)
        self.results["d_reel_sqlite_post"] = r

    # (a) reel on PostgreSQL, mode api
    def post_reel_pg(self):
        say("(a) reel on PostgreSQL (service.mode: api): POST /v1/jobs")
        url = self.new_db("reel_post")
        cfg, port = self.reel_config("reel-pg-api", "api", 0, db_url=url)
        p = self.start_reel("reel-pg-api", cfg, port)
        r = self.post_load(f"http://127.0.0.1:{port}/v1/jobs", "reel-pg", {"reeld": lambda: [p.pid],
                                                                          "postgres": self.pg_pids})
        r["log"] = self.log_problems("reel-pg-api")
        r["rows"] = int(self.pg.psql("SELECT count(*) FROM jobs", db="reel_post"))
        self.procs.stop(p)
        self.results["a_reel_pg_post"] = r

    # (a) the peer
    def post_peer(self):
        say(f"(a) peer: FastAPI + SQLAlchemy (async) + asyncpg on uvicorn --workers {PEER_WORKERS}: POST /v1/jobs")
        url = self.new_db("peer_post").replace("postgresql://", "postgresql+asyncpg://")
        env = dict(os.environ, PEER_DATABASE_URL=url, PEER_TOKENS=TOKEN)
        peers = os.path.join(BENCH, "peers")
        subprocess.run([PY, "fastapi_jobs.py", "--create-schema"], cwd=peers, env=env, check=True)
        port = free_port()
        p = self.procs.start([PY, "-m", "uvicorn", "--host", "127.0.0.1", "--port", str(port), "--workers",
                              str(PEER_WORKERS), "--loop", "uvloop", "--http", "httptools", "--no-access-log",
                              "--log-level", "warning", "fastapi_jobs:app"], self.path("peer-fastapi.log"),
                             cwd=peers, env=env)
        wait_http(f"http://127.0.0.1:{port}/v1/jobs", p)  # 405 for GET: it answers
        r = self.post_load(f"http://127.0.0.1:{port}/v1/jobs", "peer-fastapi", {"peer": lambda: [p.pid],
                                                                               "postgres": self.pg_pids})
        r["rows"] = int(self.pg.psql("SELECT count(*) FROM jobs", db="peer_post"))
        self.procs.stop(p)
        self.results["a_peer_post"] = r

    # (b) submit -> process start
    def submit_to_start(self):
        say(f"(b) reel on PostgreSQL, 1 API node + 1 worker node: submit -> process start, {LAT_JOBS} jobs at "
            f"{LAT_RATE}/s, one at a time")
        url = self.new_db("reel_latency")
        stamps = self.path("stamps")
        os.makedirs(stamps)
        storage = self.path("lat-artifacts")
        cmd = [self.noop, os.path.join(stamps, "{prompt}")]
        api_cfg, api_port = self.reel_config("lat-api", "api", 0, db_url=url, command=cmd, storage=storage)
        api = self.start_reel("lat-api", api_cfg, api_port)
        w_cfg, w_port = self.reel_config("lat-worker", "worker", 2, db_url=url, command=cmd, storage=storage)
        w = self.start_reel("lat-worker", w_cfg, w_port)
        time.sleep(1)
        out = subprocess.run([PY, os.path.join(BENCH, "lib", "submit_latency.py"), "--url",
                              f"http://127.0.0.1:{api_port}", "--token", TOKEN, "--stamps", stamps, "--label", "lat",
                              "--jobs", str(LAT_JOBS), "--rate", str(LAT_RATE)], capture_output=True, text=True,
                             check=True)
        r = json.loads(out.stdout)
        r["breakdown"] = self.latency_breakdown(stamps, "reel_latency")
        r["log_api"] = self.log_problems("lat-api")
        r["log_worker"] = self.log_problems("lat-worker")
        print("    " + json.dumps(r), file=sys.stderr)
        self.procs.stop(w)
        self.procs.stop(api)
        self.results["b_reel_submit_to_start"] = r

    def latency_breakdown(self, stamps, db):
        """Where submit -> start goes, per job, from the store's clock: created_ms (the API node,
        before its commit) -> started_ms (the worker's claim) -> the process's own start stamp."""
        rows = self.pg.psql("SELECT prompt || ' ' || created_ms || ' ' || started_ms FROM jobs", db=db)
        claim, spawn = [], []
        for line in rows.splitlines():
            name, created, started = line.split()
            try:
                with open(os.path.join(stamps, name)) as f:
                    t = float(f.read()) * 1000
            except (OSError, ValueError):
                continue
            claim.append(int(started) - int(created))
            spawn.append(t - int(started))
        med = lambda v: round(sorted(v)[len(v) // 2], 2) if v else None
        return {"created_to_claimed_p50_ms": med(claim), "claimed_to_process_start_p50_ms": med(spawn),
                "note": "store times are whole milliseconds"}

    # (c) lifecycle
    def drain(self, count_sql, db_url, n, procs_started_at, label):
        """Samples how many of n jobs are left every 20 ms until none is (or LIFE_LIMIT s);
        returns the figures. The rate is taken from the first job done to the last, so
        start-up of the workers is not counted."""
        import asyncpg

        async def sample():
            conn = await asyncpg.connect(db_url)
            samples = []
            deadline = time.monotonic() + LIFE_LIMIT
            while time.monotonic() < deadline:
                left = await conn.fetchval(count_sql)
                samples.append((time.monotonic(), left))
                if left == 0:
                    break
                await asyncio.sleep(0.02)
            await conn.close()
            return samples

        samples = asyncio.run(sample())
        first = next(((t, left) for t, left in samples if left < n), None)
        last_t, last_left = samples[-1]
        r = {"jobs": n, "left": last_left, "samples": len(samples)}
        if first:
            # done between the first sample that saw a job done and the end
            done = first[1] - last_left
            span = last_t - first[0]
            r["jobs_per_s"] = round(done / span, 1) if span > 0 else None
            r["first_done_after_start_s"] = round(first[0] - procs_started_at, 3)
            r["all_done_after_start_s"] = round(last_t - procs_started_at, 3) if last_left == 0 else None
        print(f"    {label}: " + json.dumps(r), file=sys.stderr)
        return r

    def preload_reel(self, port, n):
        """Submits n jobs over 8 keep-alive connections; returns how many got 202."""
        ok = [0]
        lock = threading.Lock()
        per = [n // 8 + (1 if i < n % 8 else 0) for i in range(8)]

        def client(k):
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            h = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
            good = 0
            for i in range(k):
                c.request("POST", "/v1/jobs", body='{"prompt": "lifecycle"}', headers=h)
                resp = c.getresponse()
                resp.read()
                good += resp.status == 202
            c.close()
            with lock:
                ok[0] += good

        ts = [threading.Thread(target=client, args=(k,)) for k in per]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        return ok[0]

    def lifecycle_reel(self, nodes):
        say(f"(c) reel lifecycle: {LIFE_JOBS} queued no-op jobs, {nodes} worker node(s) x {LIFE_SLOTS} slots")
        db = f"reel_life{nodes}"
        url = self.new_db(db)
        storage = self.path(f"life{nodes}-artifacts")
        cmd = [self.noop]
        api_cfg, api_port = self.reel_config(f"life{nodes}-api", "api", 0, db_url=url, command=cmd, storage=storage)
        api = self.start_reel(f"life{nodes}-api", api_cfg, api_port)
        accepted = self.preload_reel(api_port, LIFE_JOBS)
        cfgs = [self.reel_config(f"life{nodes}-w{i}", "worker", LIFE_SLOTS, db_url=url, command=cmd, storage=storage)
                for i in range(nodes)]
        workers = []
        t0 = time.monotonic()
        groups = {"reeld workers (with their jobs)": lambda: [w.pid for w in workers], "reeld api": lambda: [api.pid],
                  "postgres": self.pg_pids}
        own = {"of which reeld workers themselves": lambda: [w.pid for w in workers]}
        with CpuWindow(groups, own) as cpu:
            for i, (cfg, port) in enumerate(cfgs):
                workers.append(self.procs.start([self.reeld, "--config", cfg], self.path(f"life{nodes}-w{i}.log")))
            r = self.drain("SELECT count(*) FROM jobs WHERE status < 3", url, accepted, t0, f"reel x{nodes}")
        r["accepted"] = accepted
        r["cpu_cores"] = cpu.cores
        by = self.pg.psql("SELECT status || ':' || count(*) FROM jobs GROUP BY status ORDER BY status", db=db)
        r["by_status"] = dict(x.split(":") for x in by.split())
        nodes_seen = self.pg.psql("SELECT node || ':' || count(*) FROM jobs GROUP BY node ORDER BY node", db=db)
        r["by_node"] = dict(x.split(":") for x in nodes_seen.split())
        r["attempts_gt_1"] = int(self.pg.psql("SELECT count(*) FROM jobs WHERE attempts > 1", db=db))
        r["log_workers"] = [self.log_problems(f"life{nodes}-w{i}") for i in range(nodes)]
        for w in workers:
            self.procs.stop(w)
        self.procs.stop(api)
        shutil.rmtree(storage, ignore_errors=True)
        self.results[f"c_reel_lifecycle_{nodes}"] = r

    def lifecycle_graphile(self, procs_n):
        say(f"(c) graphile-worker lifecycle: {LIFE_JOBS} queued no-op jobs, {procs_n} process(es) x "
            f"concurrency {LIFE_SLOTS}")
        db = f"graphile{procs_n}"
        url = self.new_db(db)
        gdir = os.path.join(BENCH, "peers", "graphile")
        work_root = self.path(f"g{procs_n}-work")
        storage = self.path(f"g{procs_n}-artifacts")
        os.makedirs(work_root)
        os.makedirs(storage)
        env = dict(os.environ, DATABASE_URL=url.replace("postgresql://", "postgres://"), NOOP_JOB=self.noop,
                   PEER_WORK_ROOT=work_root, PEER_STORAGE=storage)
        subprocess.run(["node", "runner.js", "migrate"], cwd=gdir, env=env, check=True)
        subprocess.run(["node", "runner.js", "add", str(LIFE_JOBS)], cwd=gdir, env=env, check=True)
        workers = []
        t0 = time.monotonic()
        with CpuWindow({"graphile-worker (with their jobs)": lambda: [w.pid for w in workers],
                        "postgres": self.pg_pids},
                       {"of which node itself": lambda: [w.pid for w in workers]}) as cpu:
            for i in range(procs_n):
                workers.append(self.procs.start(["node", "runner.js", "work", str(LIFE_SLOTS)],
                                                self.path(f"graphile{procs_n}-{i}.log"), cwd=gdir, env=env))
            r = self.drain("SELECT count(*) FROM graphile_worker._private_jobs", url, LIFE_JOBS, t0,
                           f"graphile x{procs_n}")
        r["cpu_cores"] = cpu.cores
        r["failed_attempts"] = int(self.pg.psql(
            "SELECT count(*) FROM graphile_worker._private_jobs WHERE last_error IS NOT NULL", db=db))
        r["artifacts"] = len(os.listdir(storage))
        for w in workers:
            self.procs.stop(w)
        shutil.rmtree(storage, ignore_errors=True)
        self.results[f"c_graphile_lifecycle_{procs_n}"] = r

    # -- machine
    def machine(self):
        def busy():
            a = machine_cpu()
            time.sleep(1)
            b = machine_cpu()
            return round(100 * (b[0] - a[0]) / max(1e-9, b[1] - a[1]), 1)

        probe = self.path("fsync-probe")
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        t = []
        for _ in range(100):
            t0 = time.perf_counter()
            os.write(fd, b"x" * 4096)
            os.fsync(fd)
            t.append(time.perf_counter() - t0)
        os.close(fd)
        os.unlink(probe)
        t.sort()
        model = ""
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
        return {"date_utc": datetime.datetime.utcnow().strftime("%Y-%m-%d %H:%M UTC"), "cpus": os.cpu_count(),
                "cpu_model": model, "kernel": platform.release(), "loadavg": open("/proc/loadavg").read().split()[:3],
                "cpu_busy_pct_before": busy(), "fsync_4k_p50_ms": round(t[50] * 1000, 3)}


def versions(reeld):
    pyv = version
    g = {}
    try:
        with open(os.path.join(BENCH, "peers", "graphile", "node_modules", "graphile-worker", "package.json")) as f:
            g = json.load(f)
    except OSError:
        pass
    return {"reel_commit": sh("git", "-C", ROOT, "rev-parse", "--short", "HEAD"),
            "reel_tree_dirty": bool(sh("git", "-C", ROOT, "status", "--porcelain", "--untracked-files=no")),
            "reeld": reeld, "postgres": sh(os.path.join(pgserver.pg_bin_dir(), "postgres"), "--version"),
            "wrk": sh("wrk", "-v").splitlines()[0] if sh("wrk", "-v") else "",
            "fastapi": pyv("fastapi"), "sqlalchemy": pyv("SQLAlchemy"), "asyncpg": pyv("asyncpg"),
            "uvicorn": pyv("uvicorn"), "graphile_worker": g.get("version"), "node": sh("node", "--version")}


# ---- the table -------------------------------------------------------------------------------
def table(res, machine, setup):
    rows = []

    def ratio(a, b):
        return (f"{a / b:.1f}×" if a / b >= 1 else f"{a / b:.2f}×") if a and b else ""

    def verdict(ok):
        return "met" if ok else "NOT met"

    a, p, d = res.get("a_reel_pg_post"), res.get("a_peer_post"), res.get("d_reel_sqlite_post")
    if a or p:
        ar, pr = (a or {}).get("rps"), (p or {}).get("rps")
        ok_rps = ar is not None and ar >= 10000
        ok_ratio = bool(ar and pr and ar >= 10 * pr)
        rows.append(["(a) POST /v1/jobs on PostgreSQL, req/s", ar and round(ar), pr and round(pr), ratio(ar, pr),
                     "≥ 10000/s; ≥ 10× peer", f"{verdict(ok_rps)}; {verdict(ok_ratio)}" if a and p else ""])
        a99, p99 = (a or {}).get("p99_ms"), (p or {}).get("p99_ms")
        rows.append(["(a) POST p50 latency, ms", (a or {}).get("p50_ms"), (p or {}).get("p50_ms"),
                     ratio((a or {}).get("p50_ms"), (p or {}).get("p50_ms")), "", ""])
        rows.append(["(a) POST p99 latency, ms", a99, p99, ratio(a99, p99), "≤ 15 ms",
                     verdict(a99 is not None and a99 <= 15) if a else ""])
        errs = lambda x: (f"{x['unexpected_status']} / {x['connect_errors'] + x['read_errors'] + x['write_errors']}"
                          f" / {x['timeouts']}") if x else ""
        rows.append(["(a) non-202 / socket errors / timeouts", errs(a), errs(p), "", "", ""])
        cpu = lambda x: ", ".join(f"{k} {v}" for k, v in x["cpu_cores"].items()) if x else ""
        rows.append(["(a) CPU cores used", cpu(a), cpu(p), "", "", ""])
    b = res.get("b_reel_submit_to_start")
    if b:
        rows.append(["(b) submit → process start p50, ms", b.get("p50_ms") and round(b["p50_ms"], 2), "", "",
                     "≤ 5 ms", verdict(b.get("p50_ms") is not None and b["p50_ms"] <= 5)])
        rows.append(["(b) submit → process start p90 / p99, ms",
                     f"{round(b['p90_ms'], 2)} / {round(b['p99_ms'], 2)}" if b.get("p99_ms") else "", "", "", "", ""])
        rows.append(["(b) its POST alone p50, ms", b.get("post_p50_ms") and round(b["post_p50_ms"], 2), "", "", "", ""])
        bd = b.get("breakdown") or {}
        rows.append(["(b) created → claimed / claimed → started p50, ms",
                     f"{bd.get('created_to_claimed_p50_ms')} / {bd.get('claimed_to_process_start_p50_ms')}", "", "",
                     "", ""])
        rows.append(["(b) jobs started / finished / submitted",
                     f"{b['started']} / {b['final_statuses'].get('finished', 0)} / {b['jobs']}", "", "", "", ""])
    for n in (1, 3):
        r, g = res.get(f"c_reel_lifecycle_{n}"), res.get(f"c_graphile_lifecycle_{n}")
        if not (r or g):
            continue
        rj, gj = (r or {}).get("jobs_per_s"), (g or {}).get("jobs_per_s")
        target, v = "", ""
        if n == 3:
            target = "≥ 1500/s; ahead of peer"
            if r:
                v = verdict(rj is not None and rj >= 1500) + ("; " + verdict(bool(rj and gj and rj > gj)) if g else "")
        rows.append([f"(c) lifecycle, {n} worker node{'s' if n > 1 else ''}, jobs/s", rj, gj, ratio(rj, gj), target, v])
        left = lambda x, fin: f"{x['jobs'] - x['left']} of {x['jobs']}{fin}" if x else ""
        rows.append([f"(c)   done ({n})", left(r, f" (rows finished when stopped: {r['by_status'].get('3', 0)})" if r else ""),
                     left(g, f", failed attempts {g['failed_attempts']}" if g else ""), "", "", ""])
        cpu = lambda x: ", ".join(f"{k} {v}" for k, v in x["cpu_cores"].items()) if x else ""
        rows.append([f"(c)   CPU cores used ({n})", cpu(r), cpu(g), "", "", ""])
    if d:
        rows.append(["(d) POST /v1/jobs on SQLite, req/s", round(d["rps"]), "", "", "no worse than before (README)", ""])
        rows.append(["(d) POST on SQLite p50 / p99, ms", f"{d['p50_ms']} / {d['p99_ms']}", "", "", "", ""])
        rows.append(["(d) non-202 / socket errors / timeouts",
                     f"{d['unexpected_status']} / {d['connect_errors'] + d['read_errors'] + d['write_errors']} / "
                     f"{d['timeouts']}", "", "", "", ""])
    head = ["metric", "reel", "peer", "reel/peer", "target", "verdict"]
    text_rows = [[("" if c is None else str(c)) for c in row] for row in rows]
    # the CPU rows are long: keep them out of the column widths
    width_rows = [r for r in text_rows if "CPU" not in r[0]]
    w = [max(len(head[i]), *(len(r[i]) for r in width_rows)) if width_rows else len(head[i]) for i in range(6)]
    lines = [f"reel scale-out bench, {machine['date_utc']}: {machine['cpus']} × {machine['cpu_model']}, kernel "
             f"{machine['kernel']}, load {' '.join(machine['loadavg'])}, CPU {machine['cpu_busy_pct_before']} % busy "
             f"just before, 4 KiB append+fsync p50 {machine['fsync_4k_p50_ms']} ms",
             f"reel {setup['reel_commit']}{' (+ local changes)' if setup['reel_tree_dirty'] else ''} ({setup['reeld']}),"
             f" log_level {REEL_LOG_LEVEL}; {setup['postgres']}; peers: FastAPI {setup['fastapi']}, SQLAlchemy "
             f"{setup['sqlalchemy']}, asyncpg {setup['asyncpg']}, uvicorn {setup['uvicorn']} ×{PEER_WORKERS} "
             f"workers; graphile-worker {setup['graphile_worker']} on node {setup['node']}",
             f"(a)/(d): wrk -t{THREADS} -c{CONNS} -d{DURATION}s after a {WARMUP} s warm-up; (b): {LAT_JOBS} jobs at "
             f"{LAT_RATE}/s; (c): {LIFE_JOBS} jobs queued first, {LIFE_SLOTS} slots per node/process, rate from the "
             f"first job done to the last", "",
             "  ".join(head[i].ljust(w[i]) for i in range(6)).rstrip(),
             "  ".join("-" * w[i] for i in range(6))]
    for r in text_rows:
        if "CPU" in r[0]:
            lines.append(f"{r[0].ljust(w[0])}  reel: {r[1]}" + (f" | peer: {r[2]}" if r[2] else ""))
        else:
            lines.append("  ".join(r[i].ljust(w[i]) for i in range(6)).rstrip())
    return "\n".join(lines) + "\n"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--reeld", default=os.environ.get("BENCH_REELD", os.path.join(ROOT, "build", "reeld")))
    ap.add_argument("--out-dir", default=os.path.join(BENCH, "results"))
    a = ap.parse_args()
    reeld = os.path.abspath(a.reeld)
    work = tempfile.mkdtemp(prefix="reel-scaleout-")
    os.chmod(work, 0o755)
    b = Bench(reeld, work)
    phases = ONLY or {"a", "b", "c", "d"}
    try:
        machine = b.machine()
        b.noop = b.path("noop_job")
        subprocess.run(["cc", "-std=c11", "-O2", "-o", b.noop, os.path.join(BENCH, "lib", "noop_job.c")], check=True)
        say("PostgreSQL 15 in a temporary directory")
        b.pg = pgserver.PgServer(max_connections=300)
        if "d" in phases:
            b.post_sqlite()
        if "a" in phases:
            b.post_reel_pg()
            b.post_peer()
        if "b" in phases:
            b.submit_to_start()
        if "c" in phases:
            for n in (1, 3):
                b.lifecycle_reel(n)
            for n in (1, 3):
                b.lifecycle_graphile(n)
    except BaseException:
        print_log_tails(work)
        raise
    finally:
        b.procs.stop_all()
        if b.pg:
            b.pg.close()
        if os.environ.get("REEL_KEEP_TMP") != "1":
            shutil.rmtree(work, ignore_errors=True)
    setup = versions(reeld)
    text = table(b.results, machine, setup)
    print("\n" + text)
    os.makedirs(a.out_dir, exist_ok=True)
    stamp = datetime.datetime.utcnow().strftime("%Y-%m-%d")
    with open(os.path.join(a.out_dir, f"scaleout-{stamp}.txt"), "a") as f:
        f.write(text + "\n")
    with open(os.path.join(a.out_dir, "scaleout-latest.json"), "w") as f:
        json.dump({"machine": machine, "setup": setup, "results": b.results, "table": text}, f, indent=1)


if __name__ == "__main__":
    main()
