"""Shared helpers for reel's black-box tests (Python 3 standard library only).

Every tests/blackbox/test_*.py starts the real `reeld` binary and talks to it
over HTTP, the way a client would. CTest runs each one as

    /usr/bin/python3 tests/blackbox/test_NAME.py

with these environment variables:

    REELD            path to the built reeld binary
    REEL_SOURCE_DIR  repository root
    REEL_BUILD_DIR   build directory

(by hand, without them, the defaults are the repository containing this file,
its build/ directory and build/reeld). Set REEL_KEEP_TMP=1 to keep every
server's temporary directory (config, data_dir, log) after the test.

A test reads like this:

    import reelharness as h

    def body(c):
        with h.Reeld(service={"workers": 1}) as r:
            status, headers, job = r.json("POST", "/v1/jobs", {"prompt": "a red fox"})
            c.eq(status, 202, "POST /v1/jobs answers 202")
            done = r.wait_job(job["id"], "finished", timeout=120)
            c.eq(done["progress"], 100, "a finished job is at 100%")

    if __name__ == "__main__":
        raise SystemExit(h.run(body))

`run` prints one line per check and ends with the line `N passed, M failed`;
its return value is the process exit code (0 only when nothing failed).

The job store: by default every Reeld uses SQLite in its data_dir. With
REEL_TEST_STORE=postgres in the environment each Reeld gets a fresh database
of one PostgreSQL server started for the whole test process (pgserver.py)
and service.lease_seconds 3, so a suite written for SQLite runs unchanged on
PostgreSQL (tests/blackbox/test_scaleout_on_pg_*.py do that). Reeld(store=pg)
points a Reeld at a given PgServer's database instead, as Cluster does for
one API node and several worker nodes.
"""

import atexit
import http.client
import json as jsonlib
import os
import re
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import textwrap
import time
import traceback

__all__ = [
    "SOURCE_DIR", "BUILD_DIR", "TOKEN", "TERMINAL_STATUSES",
    "Reeld", "ReeldError", "Checks", "run",
    "reeld_binary", "free_port", "to_yaml", "merge", "write_script",
    "pid_alive", "wait_for", "read_pid", "fd_count", "rss_kb",
    "Cluster", "store_kind", "shared_pg", "metric", "run_on_postgres",
]

_HERE = os.path.dirname(os.path.abspath(__file__))

#: Repository root.
SOURCE_DIR = os.path.abspath(os.environ.get("REEL_SOURCE_DIR") or os.path.join(_HERE, "..", ".."))
#: Build directory (holds reeld, share/docs, ...).
BUILD_DIR = os.path.abspath(os.environ.get("REEL_BUILD_DIR") or os.path.join(SOURCE_DIR, "build"))

#: The bearer token every Reeld accepts (service.auth.tokens).
TOKEN = "test-token-abcdef"

#: Job statuses after which nothing changes.
TERMINAL_STATUSES = frozenset({"finished", "failed", "canceled"})


class ReeldError(RuntimeError):
    """reeld is missing, did not start, did not stop, or misbehaved."""


def reeld_binary():
    """Returns the absolute path of the reeld binary to test.

    Raises ReeldError("reeld not built: ...") when $REELD (or the default
    build/reeld) is not an executable file.
    """
    path = os.environ.get("REELD") or os.path.join(BUILD_DIR, "reeld")
    path = os.path.abspath(path)
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        raise ReeldError(
            "reeld not built: %s is not an executable file "
            "(build it with `cmake -S . -B build && cmake --build build`, "
            "or set REELD to the binary)" % path)
    return path


def free_port(host="127.0.0.1"):
    """Returns a TCP port on host that was free a moment ago (bind to port 0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


# ---------------------------------------------------------------- config --

def merge(base, overrides):
    """Returns a deep copy of base with overrides merged in.

    Nested dicts are merged key by key; any other value replaces the old one;
    an override of None deletes the key (to test a missing setting).
    """
    out = _deepcopy(base)
    for key, value in (overrides or {}).items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = _deepcopy(value)
    return out


def _deepcopy(value):
    if isinstance(value, dict):
        return {k: _deepcopy(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_deepcopy(v) for v in value]
    return value


# YAML line breaks that JSON leaves unescaped, and the BOM.
_YAML_SPECIAL = {"\u0085": "\\N", "\u2028": "\\L", "\u2029": "\\P", "\ufeff": "\\uFEFF"}


def _yaml_scalar(value):
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise ValueError("to_yaml: cannot write %r" % value)
        text = repr(value)
        if "e" in text and "." not in text:  # 1e-07 -> 1.0e-07, a float in YAML 1.1 and 1.2
            text = text.replace("e", ".0e", 1)
        return text
    if isinstance(value, str):
        # A JSON string is a valid YAML double-quoted scalar.
        text = jsonlib.dumps(value, ensure_ascii=False)
        for ch, esc in _YAML_SPECIAL.items():
            text = text.replace(ch, esc)
        return text
    raise TypeError("to_yaml: unsupported type %s" % type(value).__name__)


_PLAIN_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")
_YAML_WORDS = {"y", "n", "yes", "no", "on", "off", "true", "false", "null"}


def _yaml_key(key):
    """A mapping key: plain when it is a simple identifier, else quoted."""
    if _PLAIN_KEY.match(key) and key.lower() not in _YAML_WORDS:
        return key
    return _yaml_scalar(key)


def to_yaml(value, indent=0):
    """Serialises dicts, lists, strings, numbers, booleans and None as
    block-style YAML; strings are always double-quoted, so no value can be
    misread (`no`, `1e3`, `: ` ...). Empty containers are `{}` and `[]`."""
    pad = " " * indent
    lines = []
    if isinstance(value, dict):
        if not value:
            return pad + "{}\n"
        for key, item in value.items():
            k = _yaml_key(str(key))
            if isinstance(item, (dict, list, tuple)) and item:
                lines.append("%s%s:\n%s" % (pad, k, to_yaml(item, indent + 2)))
            else:
                lines.append("%s%s: %s\n" % (pad, k, _inline(item)))
        return "".join(lines)
    if isinstance(value, (list, tuple)):
        if not value:
            return pad + "[]\n"
        for item in value:
            if isinstance(item, (dict, list, tuple)) and item:
                nested = to_yaml(item, indent + 2)
                lines.append("%s- %s" % (pad, nested[indent + 2:]))
            else:
                lines.append("%s- %s\n" % (pad, _inline(item)))
        return "".join(lines)
    return pad + _yaml_scalar(value) + "\n"


def _inline(value):
    if isinstance(value, dict):
        return "{}"
    if isinstance(value, (list, tuple)):
        return "[]"
    return _yaml_scalar(value)


def write_script(directory, name, text):
    """Writes an executable (0755) shell script and returns its path.

    text is dedented and leading blank lines are dropped; `#!/bin/sh` is
    added when it has no shebang line.
    """
    body = textwrap.dedent(text).lstrip("\n")
    if not body.startswith("#!"):
        body = "#!/bin/sh\n" + body
    path = os.path.join(directory, name)
    with open(path, "w", encoding="utf-8") as f:
        f.write(body)
    os.chmod(path, stat.S_IRWXU | stat.S_IRGRP | stat.S_IXGRP | stat.S_IROTH | stat.S_IXOTH)
    return path


def pid_alive(pid):
    """True when process pid exists and is not a zombie (an exited process
    nobody has reaped yet counts as gone). Reads /proc, so Linux only."""
    try:
        with open("/proc/%d/stat" % int(pid), "rb") as f:
            stat_line = f.read().decode("ascii", "replace")
    except (FileNotFoundError, ProcessLookupError, ValueError):
        return False
    # the state follows the command name, which is in parentheses and may hold spaces
    state = stat_line[stat_line.rfind(")") + 1:].split()[:1]
    return bool(state) and state[0] not in ("Z", "X")


def read_pid(path):
    """The integer in the file at path (as a script's `echo $$ > path` writes
    it), or None while the file is missing, empty or unfinished."""
    try:
        with open(path, encoding="ascii") as f:
            text = f.read()
    except (FileNotFoundError, UnicodeDecodeError):
        return None
    if not text.endswith("\n") or not text.strip().isdigit():
        return None
    return int(text)


def fd_count(pid):
    """How many file descriptors process pid holds (from /proc)."""
    return len(os.listdir("/proc/%d/fd" % pid))


def sanitized(binary=None):
    """True for a reeld built with AddressSanitizer: its allocator keeps freed
    memory in quarantine, so RSS says nothing about reeld's own bounds."""
    with open(binary or reeld_binary(), "rb") as f:
        return b"AddressSanitizer" in f.read()


def rss_kb(pid):
    """Resident memory of process pid in KiB (VmRSS from /proc), 0 if unknown."""
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def wait_for(predicate, timeout, interval=0.05):
    """Calls predicate() every `interval` seconds until it returns a true
    value, and returns that value; returns None once `timeout` seconds
    have passed without one."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            return None
        time.sleep(interval)


# ----------------------------------------------------------------- store --

_shared_pg = None      # the PgServer of REEL_TEST_STORE=postgres, one per test process
_pg_databases = 0      # databases made on it so far


def store_kind():
    """"postgres" when REEL_TEST_STORE=postgres, else "sqlite"."""
    return "postgres" if os.environ.get("REEL_TEST_STORE", "").lower() in ("postgres", "pg", "postgresql") else "sqlite"


def shared_pg():
    """The PostgreSQL server shared by every Reeld of this test process
    (started on first use, stopped at exit)."""
    global _shared_pg
    if _shared_pg is None:
        sys.path.insert(0, _HERE)
        import pgserver  # noqa: E402 - only tests on PostgreSQL need it
        _shared_pg = pgserver.PgServer()
        atexit.register(_shared_pg.close)
    return _shared_pg


def _fresh_pg_database():
    """The URL of a new, empty database on shared_pg()."""
    global _pg_databases
    pg = shared_pg()
    _pg_databases += 1
    name = "reel_t%d" % _pg_databases
    pg.psql("CREATE DATABASE %s OWNER reel" % name, db="postgres")
    return pg.url.rsplit("/", 1)[0] + "/" + name


def _store_service(store):
    """The service.database (and lease) settings for Reeld(store=...)."""
    if store is None:
        store = store_kind()
    if store == "sqlite":
        return {}
    if store == "postgres":
        return {"database": {"backend": "postgres", "url": _fresh_pg_database()}, "lease_seconds": 3}
    url = store if isinstance(store, str) else store.url  # a URL or a PgServer
    return {"database": {"backend": "postgres", "url": url}}


def metric(text, name, labels=None):
    """The value of metric `name` in a Prometheus text page (bytes or str),
    summed over its series whose labels contain `labels` (a str such as
    'node="w1"'); None when it has no series."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    total = None
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        head, _, value = line.rpartition(" ")
        series = head.split("{", 1)
        if series[0] != name or (labels and labels not in head):
            continue
        try:
            total = (total or 0.0) + float(value)
        except ValueError:
            pass
    return total


# ----------------------------------------------------------------- reeld --

class Reeld:
    """One reeld process under test, with its own port, config and data_dir.

    Reeld(service=None, pipeline=None, args=(), env=None, start=True, store=None)

    The config is the minimal one below with `service` and `pipeline`
    merged in (see merge()):

        service:
          listen: "127.0.0.1:PORT"     # a free port, kept across restarts
          data_dir: "TMP/data"         # TMP is a fresh tempfile.mkdtemp()
          auth:
            tokens: ["test-token-abcdef"]
        pipeline: {}

    `store` picks the job store: None (REEL_TEST_STORE decides, see the
    module's doc), "sqlite", "postgres" (a fresh database on the shared
    server), or a PgServer or URL (that database, as is). Its settings go
    under `service` before the test's own, so `service` can override them.

    `.config` holds that dict: change it and call start() again to restart
    with a different config on the same data_dir. `args` are extra reeld
    command-line arguments; `env` adds to (or, with None values, removes
    from) the environment. reeld's stdout and stderr go to `.log_path`,
    appended across restarts.

    Attributes: url, port, token, tmp, data_dir, config_path, log_path, proc.
    Use it as a context manager; leaving the block stops the server and
    removes `tmp` (kept, with the log tail printed, when the block raised or
    REEL_KEEP_TMP=1).
    """

    def __init__(self, service=None, pipeline=None, args=(), env=None, start=True, store=None):
        self.binary = reeld_binary()
        store_service = _store_service(store)
        self.tmp = tempfile.mkdtemp(prefix="reel-test-")
        self.data_dir = os.path.join(self.tmp, "data")
        os.makedirs(self.data_dir)
        self.config_path = os.path.join(self.tmp, "reel.yaml")
        self.log_path = os.path.join(self.tmp, "reeld.log")
        self.port = free_port()
        self.url = "http://127.0.0.1:%d" % self.port
        self.token = TOKEN
        base = {
            "service": {
                "listen": "127.0.0.1:%d" % self.port,
                "data_dir": self.data_dir,
                "auth": {"tokens": [TOKEN]},
            },
            "pipeline": {},
        }
        base["service"] = merge(base["service"], store_service)
        self.config = merge(base, {"service": service or {}, "pipeline": pipeline or {}})
        self.args = list(args)
        self.env = dict(env or {})
        self.proc = None
        self._cleaned = False
        atexit.register(self._atexit)
        if start:
            try:
                self.start()
            except BaseException:
                # The error carries the log tail; nothing else refers to tmp.
                self.close()
                raise

    # -- lifecycle --

    def write_config(self):
        """Writes `.config` to `.config_path` (start() does this itself)."""
        with open(self.config_path, "w", encoding="utf-8") as f:
            f.write("# written by tests/blackbox/reelharness.py\n")
            f.write(to_yaml(self.config))

    def start(self, timeout=20.0):
        """Writes the config, starts reeld and waits until GET /healthz
        answers 200. Raises ReeldError (with the log tail) if reeld exits or
        is not healthy within `timeout` seconds. Returns self."""
        if self.running():
            raise ReeldError("reeld is already running (pid %d)" % self.proc.pid)
        self.write_config()
        env = dict(os.environ)
        for key, value in self.env.items():
            if value is None:
                env.pop(key, None)
            else:
                env[key] = str(value)
        with open(self.log_path, "ab") as log:
            log.write(("--- reelharness: starting %s --config %s %s\n" % (
                self.binary, self.config_path, " ".join(self.args))).encode())
            log.flush()
            self.proc = subprocess.Popen(
                [self.binary, "--config", self.config_path] + self.args,
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                cwd=self.tmp, env=env)
        deadline = time.monotonic() + timeout
        last = "no answer yet"
        while True:
            code = self.proc.poll()
            if code is not None:
                raise ReeldError("reeld exited with status %d during start-up\n%s"
                                 % (code, self.log_tail()))
            try:
                status, _, _ = self.request("GET", "/healthz", token=False, timeout=2)
                if status == 200:
                    return self
                last = "GET /healthz answered %d" % status
            except (OSError, http.client.HTTPException) as e:
                last = "GET /healthz: %s" % e
            if time.monotonic() > deadline:
                self.kill9()
                raise ReeldError("reeld was not healthy within %.0f s (%s)\n%s"
                                 % (timeout, last, self.log_tail()))
            time.sleep(0.05)

    def running(self):
        """True while the reeld process exists and has not exited."""
        return self.proc is not None and self.proc.poll() is None

    def stop(self, sig=signal.SIGTERM, timeout=10.0):
        """Sends sig to reeld and waits for it to exit; returns its exit
        status (negative: killed by that signal, as subprocess reports it).
        If it has not exited after `timeout` seconds it is SIGKILLed and
        ReeldError is raised. Returns the old status if it already exited."""
        if self.proc is None:
            raise ReeldError("reeld was never started")
        if self.proc.poll() is not None:
            return self.proc.returncode
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill9()
            raise ReeldError("reeld did not exit within %.0f s of %s; killed it\n%s"
                             % (timeout, signal.Signals(sig).name, self.log_tail()))

    def kill9(self):
        """SIGKILLs reeld (no clean shutdown, as in a crash) and returns its
        exit status. Its job processes are left as a crash would leave them."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.kill()
        return self.proc.wait()

    def close(self, keep=False):
        """Stops reeld (SIGTERM, then SIGKILL) and removes tmp unless keep
        or REEL_KEEP_TMP=1. Safe to call more than once."""
        if self.running():
            try:
                self.stop(timeout=10)
            except ReeldError:
                pass
        if self._cleaned:
            return
        self._cleaned = True
        if keep or os.environ.get("REEL_KEEP_TMP") == "1":
            sys.stderr.write("reelharness: kept %s\n" % self.tmp)
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)

    def _atexit(self):
        if self.running():
            self.kill9()

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        failed = exc_type is not None
        if failed:
            sys.stderr.write("reelharness: reeld log tail (%s):\n%s\n" % (self.log_path, self.log_tail()))
        self.close(keep=failed)
        return False

    # -- logs --

    def log_text(self):
        """Everything reeld wrote to stdout and stderr so far (all runs)."""
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, lines=40):
        """The last `lines` lines of log_text(), for failure messages."""
        tail = self.log_text().splitlines()[-lines:]
        return "\n".join("  | " + line for line in tail) if tail else "  | (reeld wrote nothing)"

    # -- HTTP --

    def request(self, method, path, body=None, headers=None, token=True, raw_body=None, timeout=30):
        """Sends one request on a fresh HTTP/1.1 connection.

        body      a value sent as JSON (with Content-Type: application/json
                  unless headers sets one);
        raw_body  bytes (or str, sent as UTF-8) sent as they are;
        headers   extra request headers;
        token     True: `Authorization: Bearer <self.token>`; False: none;
                  a str: `Authorization: Bearer <that str>`. An Authorization
                  in headers always wins.

        Returns (status, headers, body): headers is a dict with lowercase
        names (repeated headers joined with ", "), body the raw bytes (b""
        for HEAD).
        """
        if body is not None and raw_body is not None:
            raise ValueError("request: pass body or raw_body, not both")
        send = dict(headers or {})
        lower = {k.lower() for k in send}
        if token and "authorization" not in lower:
            send["Authorization"] = "Bearer " + (self.token if token is True else str(token))
        data = None
        if body is not None:
            data = jsonlib.dumps(body).encode("utf-8")
            if "content-type" not in lower:
                send["Content-Type"] = "application/json"
        elif raw_body is not None:
            data = raw_body.encode("utf-8") if isinstance(raw_body, str) else bytes(raw_body)
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            conn.request(method, path, body=data, headers=send)
            resp = conn.getresponse()
            payload = resp.read()
            got = {}
            for name, value in resp.getheaders():
                name = name.lower()
                got[name] = got[name] + ", " + value if name in got else value
            return resp.status, got, payload
        finally:
            conn.close()

    def json(self, method, path, body=None, headers=None, token=True, raw_body=None, timeout=30):
        """Like request(), but the body is parsed as JSON: returns
        (status, headers, value), value None when the body is empty or not JSON."""
        status, got, payload = self.request(method, path, body=body, headers=headers,
                                            token=token, raw_body=raw_body, timeout=timeout)
        try:
            value = jsonlib.loads(payload.decode("utf-8")) if payload else None
        except (UnicodeDecodeError, ValueError):
            value = None
        return status, got, value

    def list_jobs(self, status=None, page=100):
        """Every job of GET /v1/jobs (all pages, `status` a filter or None) as
        a dict id -> job. Raises ReeldError when a page is not 200."""
        out, cursor = {}, None
        while True:
            path = "/v1/jobs?limit=%d" % page + ("&status=" + status if status else "") + \
                ("&cursor=" + cursor if cursor else "")
            code, _, body = self.json("GET", path)
            if code != 200 or not isinstance(body, dict):
                raise ReeldError("GET %s answered %d: %r" % (path, code, body))
            for job in body.get("jobs", []):
                out[job["id"]] = job
            cursor = body.get("next_cursor")
            if not cursor:
                return out

    def wait_job(self, job_id, statuses, timeout=60.0):
        """Polls GET /v1/jobs/{id} every 0.05 s until its status is one of
        `statuses` (a str or a collection) and returns the job dict.

        Raises ReeldError when the timeout passes, when the job ends in a
        terminal status that is not wanted (it can never change again), or
        when the poll itself fails — each time with the last job seen and the
        log tail."""
        wanted = {statuses} if isinstance(statuses, str) else set(statuses)
        deadline = time.monotonic() + timeout
        job = None
        while True:
            status, _, job = self.json("GET", "/v1/jobs/" + job_id)
            if status != 200 or not isinstance(job, dict):
                raise ReeldError("GET /v1/jobs/%s answered %d: %r\n%s"
                                 % (job_id, status, job, self.log_tail()))
            if job.get("status") in wanted:
                return job
            if job.get("status") in TERMINAL_STATUSES:
                raise ReeldError("job %s ended %s, not %s: %s\n%s"
                                 % (job_id, job.get("status"), "|".join(sorted(wanted)),
                                    jsonlib.dumps(job), self.log_tail()))
            if time.monotonic() > deadline:
                raise ReeldError("job %s not %s within %.0f s; last seen: %s\n%s"
                                 % (job_id, "|".join(sorted(wanted)), timeout,
                                    jsonlib.dumps(job), self.log_tail()))
            time.sleep(0.05)


# --------------------------------------------------------------- cluster --

class Cluster:
    """One API node and `workers` worker nodes on one PostgreSQL database.

    Cluster(pg, workers=3, service=None, pipeline=None, worker_service=None,
            api_service=None, start=True)

    Every node is a Reeld with its own port and data_dir, `store=pg` (a
    PgServer or URL), `service` and `pipeline` merged in; the API node gets
    service.mode "api", node_id "api-1" and `api_service`, worker i
    (1-based) mode "worker", node_id "worker-i" and `worker_service`. All
    share one local service.storage.path (`.storage_path`, under `.tmp`).
    `.api` is the API node, `.workers` the list of worker nodes, `.nodes`
    all of them. Leaving the block stops them all (the workers first) and
    keeps their directories when the block raised or REEL_KEEP_TMP=1.
    """

    def __init__(self, pg, workers=3, service=None, pipeline=None, worker_service=None, api_service=None,
                 start=True):
        self.tmp = tempfile.mkdtemp(prefix="reel-cluster-")
        self.storage_path = os.path.join(self.tmp, "artifacts")
        os.makedirs(self.storage_path)
        common = merge({"storage": {"path": self.storage_path}}, service or {})
        self.api = Reeld(service=merge(merge(common, {"mode": "api", "node_id": "api-1"}), api_service or {}),
                         pipeline=pipeline, start=False, store=pg)
        self.workers = [
            Reeld(service=merge(merge(common, {"mode": "worker", "node_id": "worker-%d" % (i + 1)}),
                                worker_service or {}),
                  pipeline=pipeline, start=False, store=pg)
            for i in range(workers)]
        self.nodes = [self.api] + self.workers
        self._cleaned = False
        if start:
            try:
                self.start()
            except BaseException:
                self.close(keep=True)
                raise

    def start(self):
        """Starts the API node, then every worker node. Returns self."""
        for node in self.nodes:
            node.start()
        return self

    def worker(self, node_id):
        """The worker node whose service.node_id is node_id, or None."""
        for w in self.workers:
            if w.config["service"].get("node_id") == node_id:
                return w
        return None

    def close(self, keep=False):
        """Stops every node (workers first) and removes the directories
        unless keep or REEL_KEEP_TMP=1. Safe to call more than once."""
        if self._cleaned:
            return
        self._cleaned = True
        for node in self.workers + [self.api]:
            node.close(keep=keep)
        if keep or os.environ.get("REEL_KEEP_TMP") == "1":
            sys.stderr.write("reelharness: kept %s\n" % self.tmp)
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        failed = exc_type is not None
        if failed:
            for node in self.nodes:
                sys.stderr.write("reelharness: %s log tail (%s):\n%s\n" % (
                    node.config["service"].get("node_id"), node.log_path, node.log_tail()))
        self.close(keep=failed)
        return False


# ---------------------------------------------------------------- checks --

class Checks:
    """Counts checks and prints one line each; report() prints the closing
    `N passed, M failed` line and returns the exit code."""

    def __init__(self):
        self.passed = 0
        self.failed = 0
        self.failures = []

    def check(self, cond, msg):
        """Records one check; returns bool(cond) so callers can stop early."""
        if cond:
            self.passed += 1
            print("ok     %s" % msg, flush=True)
        else:
            self.failed += 1
            self.failures.append(msg)
            print("FAIL   %s" % msg, flush=True)
        return bool(cond)

    def eq(self, actual, expected, msg):
        """Checks actual == expected; a failure shows both."""
        if actual == expected:
            return self.check(True, msg)
        return self.check(False, "%s: expected %r, got %r" % (msg, expected, actual))

    def fail(self, msg):
        """Records a failure (e.g. a step that could not run)."""
        return self.check(False, msg)

    def report(self):
        """Prints the failures again and the closing line; returns 0 when
        something passed and nothing failed, else 1."""
        if self.failures:
            print("\nfailed:", flush=True)
            for msg in self.failures:
                first = msg.splitlines()[0] if msg else msg
                print("  - %s" % first, flush=True)
        print("%d passed, %d failed" % (self.passed, self.failed), flush=True)
        return 0 if self.failed == 0 and self.passed > 0 else 1


def run_on_postgres(*suites):
    """Runs the body() of each named black-box suite (e.g. "test_restart")
    with REEL_TEST_STORE=postgres, so every Reeld it starts uses a fresh
    database on one PostgreSQL server, and checks at the end that they did
    (their databases hold jobs). Returns the exit code, like run()."""
    import importlib
    os.environ["REEL_TEST_STORE"] = "postgres"
    sys.path.insert(0, _HERE)

    def body(c):
        for name in suites:
            print("--- %s on PostgreSQL" % name, flush=True)
            before = c.failed
            try:
                importlib.import_module(name).body(c)
            except Exception as e:  # noqa: BLE001 - one suite's escape is one failure
                traceback.print_exc()
                c.fail("%s: uncaught %s: %s" % (name, type(e).__name__, e))
            print("--- %s: %s" % (name, "ok" if c.failed == before else "%d failed" % (c.failed - before)), flush=True)
        pg = _shared_pg
        if not c.check(pg is not None and _pg_databases > 0, "the suites' reeld processes used PostgreSQL"):
            return
        jobs = sum(int(pg.psql("SELECT count(*) FROM jobs", db="reel_t%d" % i) or 0)
                   for i in range(1, _pg_databases + 1)
                   if pg.psql("SELECT to_regclass('jobs') IS NOT NULL", db="reel_t%d" % i) == "t")
        c.check(jobs > 0, "their jobs are in PostgreSQL (%d jobs in %d databases)" % (jobs, _pg_databases))
    return run(body)


def run(body):
    """Runs body(checks) and returns the exit code from checks.report().
    An exception escaping body counts as one failure (with its traceback),
    so the closing line is always printed."""
    checks = Checks()
    try:
        body(checks)
    except Exception as e:  # noqa: BLE001 - any escape is a test failure
        traceback.print_exc()
        checks.fail("uncaught %s: %s" % (type(e).__name__, e))
    return checks.report()
