"""A real PostgreSQL server for reel's tests, started in a temporary directory.

    import pgserver
    with pgserver.PgServer() as pg:
        pg.url          # "postgresql://reel@127.0.0.1:PORT/reel"
        pg.psql("SELECT 1")
        pg.restart()    # stop (fast) and start again on the same port
        pg.stop(); pg.start()

It runs Debian's PostgreSQL 15 (`initdb`, `pg_ctl` from /usr/lib/postgresql/15/bin).
PostgreSQL refuses to run as root, so when the tests run as root the cluster
belongs to the `postgres` user (created by the Debian package) and its
directory is made for that user. The server listens on 127.0.0.1 on a free
port with trust authentication for the role `reel` (a superuser of this
throwaway cluster) and database `reel`. Everything is removed on close
(REEL_KEEP_TMP=1 keeps it).
"""

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time

__all__ = ["PgServer", "pg_bin_dir", "available"]


def pg_bin_dir():
    """The directory of Debian's initdb/pg_ctl (the newest installed), or None."""
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                        key=lambda p: int(p.split("/")[4]) if p.split("/")[4].isdigit() else 0)
    return os.path.dirname(candidates[-1]) if candidates else None


def available():
    return pg_bin_dir() is not None


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PgServer:
    def __init__(self, port=None, max_connections=200):
        self.bin = pg_bin_dir()
        if not self.bin:
            raise RuntimeError("PostgreSQL is not installed (Debian package postgresql): "
                               "run scripts/install-deps.sh --test")
        self.port = port or _free_port()
        self.max_connections = max_connections
        self.tmp = tempfile.mkdtemp(prefix="reel-pg-")
        os.chmod(self.tmp, 0o755)
        self.data = os.path.join(self.tmp, "data")
        self.sockdir = os.path.join(self.tmp, "sock")
        self.logfile = os.path.join(self.tmp, "postgres.log")
        self.as_user = None
        if os.geteuid() == 0:
            self.as_user = "postgres"
            pw = pwd.getpwnam(self.as_user)
            os.makedirs(self.sockdir)
            for path in (self.tmp, self.sockdir):
                os.chown(path, pw.pw_uid, pw.pw_gid)
        else:
            os.makedirs(self.sockdir)
        self.url = "postgresql://reel@127.0.0.1:%d/reel" % self.port
        self._init()
        self.start()
        self.psql("CREATE DATABASE reel OWNER reel", db="postgres")

    def _run(self, argv, check=True, **kw):
        if self.as_user:
            argv = ["runuser", "-u", self.as_user, "--"] + argv
        return subprocess.run(argv, check=check, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True, **kw)

    def _init(self):
        self._run([os.path.join(self.bin, "initdb"), "-D", self.data, "-U", "reel", "-A", "trust",
                   "-E", "UTF8", "--locale=C", "--no-sync"])
        with open(os.path.join(self.data, "postgresql.conf"), "a") as f:
            f.write("\nlisten_addresses = '127.0.0.1'\nport = %d\nunix_socket_directories = '%s'\n"
                    "max_connections = %d\nfsync = on\nsynchronous_commit = on\n"
                    "shared_buffers = 64MB\nlogging_collector = off\n"
                    % (self.port, self.sockdir, self.max_connections))

    def start(self, timeout=30):
        self._run([os.path.join(self.bin, "pg_ctl"), "-D", self.data, "-l", self.logfile, "-w",
                   "-t", str(int(timeout)), "start"])

    def stop(self, mode="fast"):
        self._run([os.path.join(self.bin, "pg_ctl"), "-D", self.data, "-m", mode, "-w", "stop"], check=False)

    def restart(self, down_seconds=0.0):
        self.stop()
        if down_seconds:
            time.sleep(down_seconds)
        self.start()

    def psql(self, sql, db="reel"):
        """Runs sql with psql (unaligned, tuples only) and returns its output, stripped."""
        out = subprocess.run(["psql", "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1",
                              "-p", str(self.port), "-U", "reel", "-d", db, "-c", sql],
                             check=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        return out.stdout.strip()

    def log_text(self):
        try:
            with open(self.logfile, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def close(self):
        self.stop("immediate")
        if os.environ.get("REEL_KEEP_TMP") != "1":
            shutil.rmtree(self.tmp, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False
