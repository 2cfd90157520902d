"""reeld's command line: --check-config messages, --routes, and `reeld run`
(the CLI half of the prompt-precedence parity: config < --prompt)."""
import os
import subprocess
import tempfile

import reelharness as h


def reeld(*args, cwd=None, timeout=30):
    p = subprocess.run([h.reeld_binary(), *args], cwd=cwd, capture_output=True, text=True, timeout=timeout)
    return p.returncode, p.stdout, p.stderr


def write(path, text):
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)


def body(c):
    tmp = tempfile.mkdtemp(prefix="reel-cli-")
    cfg = os.path.join(tmp, "reel.yaml")

    # a valid minimal file
    write(cfg, "service:\n  listen: 127.0.0.1:8000\n  data_dir: ./var\n  auth:\n    tokens: [change-me]\n"
               "pipeline:\n  default_backend: local\n")
    rc, out, err = reeld("--check-config", "--config", cfg)
    c.eq(rc, 0, "--check-config accepts the minimal file")
    c.check("OK" in out, "--check-config says OK (got %r)" % out)

    # errors name file, line and key, on one line
    cases = [
        ("service:\n  listen: 127.0.0.1:8000\n  auth:\n    tokens: [x]\n  wrokers: 2\n", ":5:", "service.wrokers"),
        ("service:\n  auth:\n    tokens: [x]\n  workers: many\n", ":4:", "service.workers"),
        ("service:\n  auth:\n    tokens: [x]\n  max_attempts: 0\n", ":4:", "service.max_attempts"),
        ("service:\n  listen: 127.0.0.1:8000\n", "", "service.auth.tokens"),
        ("service:\n  auth:\n    tokens: [x]\npipeline:\n  default_backend: command\n", "", "pipeline.command"),
        ("service:\n  auth:\n    tokens: [x]\npipeline:\n  default_backend: veo9\n", ":5:", "pipeline.default_backend"),
    ]
    for text, line, key in cases:
        write(cfg, text)
        rc, out, err = reeld("--check-config", "--config", cfg)
        msg = err.strip()
        c.eq(rc, 2, "--check-config rejects a bad %s" % key)
        c.check(msg.count("\n") == 0 and cfg in msg and key in msg and line in msg,
                "the message names file, line and key for %s (got %r)" % (key, msg))
        # the server refuses to start on the same file
        rc, out, err = reeld("--config", cfg)
        c.check(rc != 0 and key in err, "reeld does not start with a bad %s" % key)

    rc, out, err = reeld("--config", os.path.join(tmp, "missing.yaml"))
    c.check(rc != 0 and "missing.yaml" in err, "a missing config file is named (got %r)" % err.strip())
    rc, out, err = reeld("--bogus")
    c.check(rc == 2 and "--bogus" in err, "an unknown argument is refused")

    rc, out, err = reeld("--routes")
    routes = set(out.split("\n")) - {""}
    c.check("POST /v1/jobs" in routes and "GET /v1/jobs/{id}" in routes, "--routes lists the routes")

    # reeld run: the configured pipeline once, in the foreground
    seen = os.path.join(tmp, "seen-config.yaml")
    script = h.write_script(tmp, "pipe.sh", """#!/bin/sh
cp "$1" %s
echo "REEL_PROGRESS 50 generation"
echo "working on: $2"
printf 'video' > output/final_video.mp4
""" % seen)
    write(cfg, "service:\n  data_dir: %s/data\n  auth:\n    tokens: [x]\npipeline:\n  default_backend: command\n"
               "  command: [\"%s\", \"{config}\", \"{prompt}\"]\n  prompt: \"from the config\"\n"
               "  size: \"1280*720\"\n" % (tmp, script))
    rc, out, err = reeld("run", "--config", cfg)
    c.eq(rc, 0, "reeld run exits 0 when the pipeline succeeds (stderr %r)" % err[-300:])
    last = out.strip().split("\n")[-1]
    c.check(last.endswith("/output/final_video.mp4") and os.path.exists(last), "reeld run prints the video path")
    c.check("working on: from the config" in out, "without --prompt the config prompt is used")
    c.check('"from the config"' in open(seen).read(), "the effective config keeps the config prompt")

    rc, out, err = reeld("run", "--config", cfg, "--prompt", "from the CLI: a 'quoted' $(prompt)")
    c.eq(rc, 0, "reeld run --prompt succeeds")
    c.check("working on: from the CLI: a 'quoted' $(prompt)" in out, "the CLI prompt overrides the config prompt")
    text = open(seen).read()
    c.check("from the CLI" in text and "from the config" not in text and "1280*720" in text,
            "the effective config has the CLI prompt and the other keys unchanged")

    h.write_script(tmp, "pipe.sh", "#!/bin/sh\necho 'cannot render: no GPU' >&2\nexit 3\n")
    rc, out, err = reeld("run", "--config", cfg)
    c.eq(rc, 3, "reeld run returns the pipeline's exit status")
    c.check("cannot render: no GPU" in err, "the pipeline's stderr is shown")


if __name__ == "__main__":
    raise SystemExit(h.run(body))
