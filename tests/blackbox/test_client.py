"""The `reel` command-line client (SPEC section 13) against a real reeld:
`reel submit --wait` in tmux (capture-pane shows the bar advance through every
stage, then the downloaded file's path), plain lines when not on a terminal,
exit codes for finished, failed and canceled jobs, a dropped event stream
resumed with Last-Event-ID through a TCP proxy the test cuts, logs -f, watch,
status, ls, cancel, download, the client file, and server errors printed as
their problem detail. The token never appears in anything the client prints."""

import os
import re
import select
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import reelharness as h  # noqa: E402

STAGES = ["plan", "keyframes", "clips", "assembly"]
VIDEO = "reel-client-test-video\n"
RUNNING = ("started", "progress")


def reel_binary():
    return os.path.join(os.environ.get("REEL_BUILD_DIR") or h.BUILD_DIR, "reel")


def job_script(tmp):
    """Four stages 0.7 s apart, a log line each; 'fail' exits 3 after clips; 'hold' waits for $tmp/gate."""
    return h.write_script(tmp, "job.sh", r"""
        prompt=$(grep '^prompt:' "$1" | head -1)
        echo "REEL_PROGRESS 10 plan"; echo "planning"; sleep 0.7
        echo "REEL_PROGRESS 30 keyframes"; echo "drawing"; sleep 0.7
        case "$prompt" in *hold*) while [ ! -e %s/gate ]; do sleep 0.05; done;; esac
        echo "REEL_PROGRESS 60 clips"; echo "animating"; sleep 0.7
        case "$prompt" in *fail*) echo "boom: the clip model fell over" >&2; exit 3;; esac
        echo "REEL_PROGRESS 90 assembly"; echo "assembling"; sleep 0.7
        mkdir -p output && printf '%s' > output/final_video.mp4
    """ % (tmp, VIDEO.replace("\n", "\\n")))


class Proxy(threading.Thread):
    """A TCP proxy to reeld that records what clients send and can cut every connection."""

    def __init__(self, port):
        super().__init__(daemon=True)
        self.target = port
        self.lsock = socket.socket()
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(16)
        self.port = self.lsock.getsockname()[1]
        self.sent = bytearray()
        self.conns = []
        self.lock = threading.Lock()
        self.start()

    def run(self):
        while True:
            try:
                a, _ = self.lsock.accept()
            except OSError:
                return
            b = socket.create_connection(("127.0.0.1", self.target))
            with self.lock:
                self.conns.append((a, b))
            threading.Thread(target=self.pump, args=(a, b), daemon=True).start()

    def pump(self, a, b):
        try:
            while True:
                r, _, _ = select.select([a, b], [], [], 0.5)
                for s in r:
                    data = s.recv(65536)
                    if not data:
                        raise OSError
                    if s is a:
                        with self.lock:
                            self.sent += data
                    (b if s is a else a).sendall(data)
        except OSError:
            pass
        for s in (a, b):
            try:
                s.close()
            except OSError:
                pass

    def cut(self):
        with self.lock:
            conns, self.conns = self.conns, []
        for a, b in conns:
            for s in (a, b):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self):
        self.cut()
        self.lsock.close()


def run_reel(r, args, env_extra=None, timeout=60, cwd=None, url=None, token=None):
    env = dict(os.environ)
    env.pop("REEL_URL", None)
    env.pop("REEL_TOKEN", None)
    env["HOME"] = env_extra.pop("HOME") if env_extra and "HOME" in env_extra else r.tmp
    env.pop("XDG_CONFIG_HOME", None)
    env["REEL_URL"] = url or r.url
    env["REEL_TOKEN"] = token or r.token
    env.update(env_extra or {})
    p = subprocess.run([reel_binary()] + args, capture_output=True, text=True, timeout=timeout, env=env,
                       cwd=cwd or r.tmp)
    return p.returncode, p.stdout, p.stderr


def tmux_submit(c, r, tmux_dir):
    """reel submit --wait in a tmux pane: the screens it showed, and the pane's last text."""
    sock = os.path.join(tmux_dir, "tmux.sock")
    script = h.write_script(tmux_dir, "run.sh", """
        cd %s
        REEL_URL=%s REEL_TOKEN=%s %s submit 'a prompt for tmux' --wait
        echo "EXIT=$?"
        sleep 60
    """ % (tmux_dir, r.url, r.token, reel_binary()))
    subprocess.run(["tmux", "-S", sock, "-f", "/dev/null", "new-session", "-d", "-s", "reel", "-x", "100", "-y", "12",
                    "bash", script], check=True)
    screens, last = [], ""
    try:
        deadline = time.time() + 60
        while time.time() < deadline:
            p = subprocess.run(["tmux", "-S", sock, "capture-pane", "-p", "-t", "reel"], capture_output=True, text=True)
            last = p.stdout
            if not screens or screens[-1] != last:
                screens.append(last)
            if "EXIT=" in last:
                break
            time.sleep(0.05)
    finally:
        subprocess.run(["tmux", "-S", sock, "kill-server"], capture_output=True)
    return screens, last


BAR = re.compile(r"\[([#-]+)\]\s+(\d+)%\s+(\S+)\s+(\d+:\d\d)")


def body(c):
    if not shutil.which("tmux"):
        c.fail("tmux is not installed (scripts/install-deps.sh --test installs it)")
        return
    tmp = tempfile.mkdtemp(prefix="reel-client-")
    pipeline = {"default_backend": "command", "command": [job_script(tmp), "{config}"]}
    with h.Reeld(service={"sse_keepalive_seconds": 1}, pipeline=pipeline) as r:
        secret = r.token

        # a: on a terminal, one line redrawn in place, advancing through the stages
        tmux_dir = tempfile.mkdtemp(prefix="tmux-", dir=tmp)
        screens, last = tmux_submit(c, r, tmux_dir)
        bars = [BAR.search(s) for s in screens]
        bars = [(int(m.group(2)), m.group(3), m.group(1)) for m in bars if m]
        seen = [st for _, st, _ in bars]
        c.check(all(st in seen for st in STAGES), "the bar showed every stage: %s" % sorted(set(seen)))
        pcts = [p for p, _, _ in bars]
        c.check(pcts == sorted(pcts) and pcts and pcts[-1] == 100, "its percent only rises, to 100: %s" % sorted(set(pcts)))
        c.check(all(cells.count("#") * 100 // len(cells) <= p for p, _, cells in bars), "the bar's fill matches the percent")
        c.check(all(len(BAR.findall(s)) <= 1 for s in screens), "one live line, redrawn in place (never two bars)")
        m = re.search(r"^(job_\w+)\.mp4$", last, re.M)
        c.check(m is not None and "EXIT=0" in last, "then the downloaded file's path and exit 0:\n%s" % last)
        if m:
            path = os.path.join(tmux_dir, m.group(1) + ".mp4")
            c.check(os.path.exists(path) and open(path).read() == VIDEO, "the file holds the job's video")
            c.eq(r.json("GET", "/v1/jobs/" + m.group(1))[2].get("status"), "finished", "and the job is finished")
        c.check(all(secret not in s for s in screens), "the token never shows on the terminal")

        # b: not a terminal: plain lines; exit status per outcome
        rc, out, err = run_reel(r, ["submit", "plain lines please", "--wait", "-o", os.path.join(tmp, "plain.mp4")])
        c.eq(rc, 0, "a finished job: exit 0")
        c.eq(out.strip(), os.path.join(tmp, "plain.mp4"), "stdout holds only the path")
        c.check("\r" not in err and "\033" not in err, "no carriage returns or escapes when not on a terminal")
        plain = re.findall(r"^job_\w+\s+(\d+)%\s+(\S+)\s+\d+:\d\d$", err, re.M)
        c.check([st for _, st in plain if st in STAGES] == STAGES, "a plain line per stage: %r" % err)
        rc, out, err = run_reel(r, ["submit", "this one will fail", "--wait"])
        c.eq(rc, 1, "a failed job: exit 1")
        c.check("failed" in err and "boom: the clip model fell over" in err, "its error is printed: %r" % err)
        c.eq(out, "", "and no path")

        held = subprocess.Popen([reel_binary(), "submit", "hold then cancel", "--wait"], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, cwd=tmp,
                                env=dict(os.environ, REEL_URL=r.url, REEL_TOKEN=r.token, HOME=tmp))
        running = h.wait_for(lambda: any(j["status"] in RUNNING and j.get("stage") == "keyframes"
                                         for j in r.list_jobs().values()), 30)
        jid = next((j["id"] for j in r.list_jobs().values() if j["status"] in RUNNING), None)
        c.check(running and jid, "a held job runs")
        rc, out, err = run_reel(r, ["cancel", jid or "job_0"])
        c.check(rc == 0 and "canceled" in out, "reel cancel: exit 0 (%d %r %r)" % (rc, out, err))
        try:
            out, err = held.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            held.kill()
            out, err = held.communicate()
        c.eq(held.returncode, 3, "the waiting client of a canceled job: exit 3")
        c.check("canceled" in err, "and says so: %r" % err[-300:])
        rc, out, err = run_reel(r, ["cancel", jid or "job_0"])
        c.check(rc == 4 and "HTTP 409" in err, "cancelling it again: the server's problem detail, exit 4: %r" % err)

        # c: the event stream drops mid-job: the client reconnects with Last-Event-ID and still gets it all
        proxy = Proxy(r.port)
        purl = "http://127.0.0.1:%d" % proxy.port
        follower = subprocess.Popen([reel_binary(), "submit", "hold through a cut", "--wait", "-o",
                                     os.path.join(tmp, "cut.mp4")], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                    text=True, cwd=tmp, env=dict(os.environ, REEL_URL=purl, REEL_TOKEN=r.token, HOME=tmp))
        h.wait_for(lambda: any(j["status"] in RUNNING and j.get("stage") == "keyframes" for j in r.list_jobs().values()), 30)
        time.sleep(0.3)
        with proxy.lock:
            before = bytes(proxy.sent)
        proxy.cut()
        time.sleep(0.5)
        open(os.path.join(tmp, "gate"), "w").close()
        try:
            out, err = follower.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            follower.kill()
            out, err = follower.communicate()
        with proxy.lock:
            after = bytes(proxy.sent[len(before):])
        c.eq(follower.returncode, 0, "through a cut connection the job is followed to its end (%r)" % err[-400:])
        c.check("reconnecting" in err, "the client said it reconnects")
        resumed = re.search(rb"GET /v1/jobs/\S+/events HTTP/1.1\r\n(?:[^\r\n]+\r\n)*?last-event-id: (\d+)\r\n",
                            after, re.I)
        c.check(resumed is not None, "its new request carries Last-Event-ID")
        plain = re.findall(r"^job_\w+\s+(\d+)%\s+(\S+)\s+\d+:\d\d$", err, re.M)
        c.eq([st for _, st in plain if st in STAGES], STAGES, "every stage shown once, none twice, across the cut")
        c.check(os.path.exists(os.path.join(tmp, "cut.mp4")), "and the video downloaded")
        proxy.close()

        # d: logs, logs -f, watch, status, ls, download
        jid = m.group(1) if m else ""
        rc, out, err = run_reel(r, ["logs", jid])
        c.check(rc == 0 and out.split("\n")[:4] == ["planning", "drawing", "animating", "assembling"],
                "reel logs prints the job's lines: %r" % out)
        os.unlink(os.path.join(tmp, "gate"))
        new = r.json("POST", "/v1/jobs", {"prompt": "hold for logs"})[2]["id"]
        lf = subprocess.Popen([reel_binary(), "logs", "-f", new], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, env=dict(os.environ, REEL_URL=r.url, REEL_TOKEN=r.token, HOME=tmp))
        wf = subprocess.Popen([reel_binary(), "watch", new], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, env=dict(os.environ, REEL_URL=r.url, REEL_TOKEN=r.token, HOME=tmp))
        got_first = h.wait_for(lambda: r.json("GET", "/v1/jobs/" + new)[2].get("stage") == "keyframes", 30)
        time.sleep(0.5)
        c.check(got_first and lf.poll() is None, "logs -f keeps following a running job")
        open(os.path.join(tmp, "gate"), "w").close()
        lout, _ = lf.communicate(timeout=30)
        wout, _ = wf.communicate(timeout=30)
        c.check(lf.returncode == 0 and lout.split("\n")[:4] == ["planning", "drawing", "animating", "assembling"],
                "logs -f: every line as it comes, ends with the job (%d %r)" % (lf.returncode, lout))
        types = re.findall(r"^\S+\s+\d+\s+job_\w+\s+(job\.\w+)", wout, re.M)
        c.check(wf.returncode == 0 and types[:2] == ["job.created", "job.started"] and types[-1] == "job.finished"
                and types.count("job.progress") == 4 and types.count("job.log") == 4,
                "watch ID prints every event and ends with the job: %s" % types)
        rc, out, err = run_reel(r, ["status", new])
        c.check(rc == 0 and re.search(r"^status\s+finished$", out, re.M) and re.search(r"^progress\s+100$", out, re.M),
                "reel status: %r" % out)
        rc, out, err = run_reel(r, ["ls", "--limit", "3"])
        c.check(rc == 0 and out.startswith("ID") and new in out and len(out.strip().split("\n")) == 4,
                "reel ls --limit 3: a header and three jobs, the newest first: %r" % out)
        rc, out, err = run_reel(r, ["download", new, "-o", os.path.join(tmp, "again.mp4")])
        c.check(rc == 0 and open(os.path.join(tmp, "again.mp4")).read() == VIDEO, "reel download")
        c.check(not os.path.exists(os.path.join(tmp, "again.mp4.part")), "leaves no partial file")

        # e: errors, from the server and of the client's own
        rc, out, err = run_reel(r, ["status", "job_01JD8X3QZ4N5P6R7S8T9V0W1XY"])
        c.check(rc == 4 and "HTTP 404" in err, "an unknown job: its problem detail, exit 4: %r" % err)
        rc, out, err = run_reel(r, ["ls"], token="not-the-token-at-all")
        c.check(rc == 4 and "HTTP 401" in err and "not-the-token-at-all" not in err, "a bad token: 401, exit 4: %r" % err)
        dead = h.free_port()
        rc, out, err = run_reel(r, ["ls"], url="http://127.0.0.1:%d" % dead)
        c.check(rc == 5 and "cannot reach" in err, "no server: exit 5: %r" % err)
        rc, out, err = run_reel(r, ["status", "../../etc/passwd"])
        c.check(rc == 2 and "not a job id" in err, "a malformed id never reaches a URL: exit 2")
        rc, out, err = run_reel(r, ["frobnicate"])
        c.check(rc == 2 and "unknown command" in err, "an unknown command: exit 2")

        # f: the client file
        home = tempfile.mkdtemp(prefix="home-", dir=tmp)
        os.makedirs(os.path.join(home, ".config", "reel"))
        cfg = os.path.join(home, ".config", "reel", "client.yaml")
        with open(cfg, "w") as f:
            f.write("url: %s\ntoken: %s\n" % (r.url, r.token))
        os.chmod(cfg, 0o600)
        env = dict(os.environ, HOME=home)
        for k in ("REEL_URL", "REEL_TOKEN", "XDG_CONFIG_HOME"):
            env.pop(k, None)
        p = subprocess.run([reel_binary(), "ls", "--limit", "1"], capture_output=True, text=True, env=env, timeout=30)
        c.check(p.returncode == 0 and new in p.stdout and "warning" not in p.stderr,
                "url and token from ~/.config/reel/client.yaml: %r" % p.stderr)
        with open(cfg, "a") as f:
            f.write("colour: blue\n")
        p = subprocess.run([reel_binary(), "ls"], capture_output=True, text=True, env=env, timeout=30)
        c.check(p.returncode == 2 and "client.yaml:3: unknown key 'colour'" in p.stderr,
                "an unknown key: file, line and key: %r" % p.stderr)

    # g: over TLS the client speaks HTTP/2 (ALPN), the event stream and the download too
    certs = tempfile.mkdtemp(prefix="certs-", dir=tmp)
    subprocess.run(["bash", os.path.join(h.SOURCE_DIR, "scripts", "dev-cert.sh"), certs], check=True,
                   capture_output=True)
    tls_port = h.free_port()
    with h.Reeld(service={"tls": {"cert_file": os.path.join(certs, "server.pem"),
                                  "key_file": os.path.join(certs, "server-key.pem")}}, pipeline=pipeline) as r:
        r.config["service"]["listen"] = ["127.0.0.1:%d" % r.port, "https://127.0.0.1:%d" % tls_port]
        r.stop()
        r.start()
        out_path = os.path.join(tmp, "tls.mp4")
        rc, out, err = run_reel(r, ["--cacert", os.path.join(certs, "ca.pem"), "submit", "over TLS", "--wait",
                                    "-o", out_path], url="https://127.0.0.1:%d" % tls_port)
        c.check(rc == 0 and os.path.exists(out_path) and open(out_path).read() == VIDEO,
                "submit --wait over https (%d %r)" % (rc, err[-300:]))
        routes = {}
        for line in r.log_text().splitlines():
            m = re.search(r'"route":"([^"]+)".*"protocol":"([^"]+)"', line)
            if m:
                routes.setdefault(m.group(1), set()).add(m.group(2))
        for route in ("POST /v1/jobs", "GET /v1/jobs/{id}/events", "GET /v1/jobs/{id}/artifact",
                      "GET /v1/files/{id}/{name}"):
            c.eq(routes.get(route), {"HTTP/2"}, "%s went over HTTP/2" % route)
        rc, out, err = run_reel(r, ["ls"], url="https://127.0.0.1:%d" % tls_port)
        c.check(rc == 5 and "certificate" in err.lower(), "without the CA the certificate is refused: %r" % err)
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(h.run(body))
