#!/usr/bin/env python3
"""Versioned migrations on PostgreSQL (issue 10: "Versioned migrations under an
advisory lock, so ten nodes starting at once migrate once; `reeld migrate`
applies them and exits; a node refuses to run against a schema newer than it
knows").

a. Ten worker nodes are started at the same moment against an empty
   database: all ten start; reel_schema_version holds each version once
   (1..N, N rows); exactly one node's log has "applied database migration"
   lines (N of them) and every row names that node (applied_by).
b. `reeld migrate --config X` on another empty database exits 0 and applies
   the same N versions; run again, it exits 0 and applies nothing; a node
   then starts on it without applying anything.
c. A version newer than reeld knows (N + 1) inserted: a node started on that
   database exits non-zero with a message saying the schema is newer, and so
   does `reeld migrate`.

How it fails: migrations outside a lock (or without IF NOT EXISTS guards)
make some of the ten nodes fail with duplicate-table errors or apply twice
(two nodes' logs); a node that ignores the version runs against the newer
schema.
"""

import os
import subprocess
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pgserver  # noqa: E402
import reelharness as h  # noqa: E402

APPLIED = "applied database migration"
NODES = 10


def new_database(pg, name):
    pg.psql("CREATE DATABASE %s OWNER reel" % name, db="postgres")
    return pg.url.rsplit("/", 1)[0] + "/" + name


def versions(pg, db):
    out = pg.psql("SELECT version, applied_by FROM reel_schema_version ORDER BY version", db=db)
    return [tuple(line.split("|", 1)) for line in out.splitlines() if line]


def run_reeld(args, timeout=30):
    return subprocess.run([h.reeld_binary()] + args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, timeout=timeout)


def ten_at_once(c, pg):
    url = new_database(pg, "ten")
    nodes = [h.Reeld(service={"mode": "worker", "node_id": "node-%02d" % i, "workers": 1}, store=url, start=False)
             for i in range(NODES)]
    try:
        errors = [None] * NODES
        barrier = threading.Barrier(NODES)

        def start(i):
            barrier.wait()
            try:
                nodes[i].start(timeout=40)
            except Exception as e:  # noqa: BLE001 - reported below
                errors[i] = str(e)
        threads = [threading.Thread(target=start, args=(i,)) for i in range(NODES)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        started = [i for i in range(NODES) if errors[i] is None and nodes[i].running()]
        c.eq(len(started), NODES, "all ten nodes started at once against an empty database start%s"
             % "".join("\n  node-%02d: %s" % (i, e.splitlines()[0]) for i, e in enumerate(errors) if e))
        rows = versions(pg, "ten")
        n = len(rows)
        c.check(n >= 1, "the schema table has rows (%d)" % n)
        c.eq([int(v) for v, _ in rows], list(range(1, n + 1)), "each version 1..%d is recorded once" % n)
        appliers = [node.config["service"]["node_id"] for node in nodes if APPLIED in node.log_text()]
        c.eq(len(appliers), 1, "exactly one node's log has %r lines (%s)" % (APPLIED, appliers))
        if appliers:
            one = next(node for node in nodes if node.config["service"]["node_id"] == appliers[0])
            c.eq(one.log_text().count(APPLIED), n, "that node applied each of the %d migrations once" % n)
            c.eq(sorted({by for _, by in rows}), appliers, "every schema row names that node")
        ready = [node.config["service"]["node_id"] for node in nodes
                 if node.running() and node.request("GET", "/readyz", token=False)[0] == 200]
        c.eq(len(ready), NODES, "all ten nodes are ready")
        return n
    finally:
        for node in nodes:
            node.close(keep=c.failed > 0)


def migrate_command(c, pg, n):
    url = new_database(pg, "cli")
    r = h.Reeld(service={"mode": "worker", "node_id": "after-migrate"}, store=url, start=False)
    try:
        r.write_config()
        out = run_reeld(["migrate", "--config", r.config_path])
        print("       reeld migrate: %s" % out.stdout.strip().replace("\n", " | ")[:300], flush=True)
        c.eq(out.returncode, 0, "reeld migrate --config X exits 0 on an empty database")
        c.eq(len(versions(pg, "cli")), n, "reeld migrate applied the %d migrations" % n)
        c.eq(out.stdout.count(APPLIED), n, "reeld migrate logged each migration it applied")
        again = run_reeld(["migrate", "--config", r.config_path])
        c.eq(again.returncode, 0, "a second reeld migrate exits 0")
        c.eq(again.stdout.count(APPLIED), 0, "a second reeld migrate applies nothing")
        c.eq(len(versions(pg, "cli")), n, "the schema table is unchanged")
        r.start()
        c.check(APPLIED not in r.log_text(), "a node started after reeld migrate applies nothing")
    finally:
        r.close(keep=c.failed > 0)
    return url


def newer_schema(c, pg, n):
    pg.psql("INSERT INTO reel_schema_version (version, applied_by) VALUES (%d, 'the future')" % (n + 1), db="cli")
    url = pg.url.rsplit("/", 1)[0] + "/cli"
    r = h.Reeld(service={"mode": "worker", "node_id": "too-old"}, store=url, start=False)
    try:
        r.write_config()
        try:
            out = run_reeld(["--config", r.config_path], timeout=20)
            code, text = out.returncode, out.stdout
        except subprocess.TimeoutExpired as e:
            code, text = None, (e.stdout or b"").decode("utf-8", "replace") if isinstance(e.stdout, bytes) else ""
        print("       refused: %s" % text.strip().splitlines()[-1:] if text.strip() else "       (no output)", flush=True)
        c.check(code not in (None, 0), "a node against a schema newer than it knows exits non-zero (%r)" % code)
        c.check("newer" in text and str(n + 1) in text,
                "its message says the schema (version %d) is newer than it knows: %r" % (n + 1, text.strip()[-300:]))
        out = run_reeld(["migrate", "--config", r.config_path])
        c.check(out.returncode != 0 and "newer" in out.stdout,
                "reeld migrate refuses a newer schema too (%d: %r)" % (out.returncode, out.stdout.strip()[-200:]))
        c.eq(len(versions(pg, "cli")), n + 1, "the newer schema was left alone")
    finally:
        r.close(keep=c.failed > 0)


def body(c):
    with pgserver.PgServer() as pg:
        n = ten_at_once(c, pg)
        migrate_command(c, pg, n)
        newer_schema(c, pg, n)


if __name__ == "__main__":
    raise SystemExit(h.run(body))
