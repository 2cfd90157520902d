#!/usr/bin/env python3
"""`reeld --check-config` refuses, with file, line and key on one line, the
mistakes that used to pass it and fail later without either (issue 9):
a frame size written in words, an fps no renderer accepts, a TLS certificate
that is not there, a number written as a string, and a known key indented
under the wrong section. The same file keeps reeld from starting."""
import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import reelharness as h  # noqa: E402

HEAD = "service:\n  listen: 127.0.0.1:0\n  auth:\n    tokens: [change-me]\n"  # then data_dir on line 5

CASES = [
    # (what, yaml after HEAD, line, key, words the message must contain)
    ("size in words", "pipeline:\n  size: \"1280 by 720\"\n", 7, "pipeline.size", ['"1280*720"', "1280 by 720"]),
    ("fps out of range", "pipeline:\n  fps: 500\n", 7, "pipeline.fps", ["from 1 to 120", '"500"']),
    ("missing certificate", "  tls:\n    cert_file: DIR/missing.pem\n    key_file: DIR/missing-key.pem\n", 7,
     "service.tls.cert_file", ["DIR/missing.pem", "No such file"]),
    ("number as a string", "  workers: \"2\"\n", 6, "service.workers",
     ['the string "2"', "write it without quotes"]),
    ("mis-indented key", "  tokens: [x]\n", 6, "service.tokens", ["did you mean service.auth.tokens?"]),
    ("voice", "pipeline:\n  voice: \"english please\"\n", 7, "pipeline.voice", ["espeak-ng voice"]),
]


def reeld(*args):
    p = subprocess.run([h.reeld_binary(), *args], capture_output=True, text=True, timeout=30,
                       stdin=subprocess.DEVNULL)
    return p.returncode, p.stdout, p.stderr


def body(c):
    tmp = tempfile.mkdtemp(prefix="reel-check-config-")
    try:
        check_all(c, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def check_all(c, tmp):
    cfg = os.path.join(tmp, "reel.yaml")
    with open(cfg, "w") as f:
        f.write(HEAD + "  data_dir: %s/var\n" % tmp)
    rc, out, err = reeld("--check-config", "--config", cfg)
    c.eq(rc, 0, "a valid file passes (stderr %r)" % err)
    for what, text, line, key, words in CASES:
        text = text.replace("DIR", tmp)
        with open(cfg, "w") as f:
            f.write(HEAD + "  data_dir: %s/var\n" % tmp + text)
        rc, out, err = reeld("--check-config", "--config", cfg)
        msg = err.strip()
        c.eq(rc, 2, "--check-config refuses the %s" % what)
        prefix = "%s:%d: %s: " % (cfg, line, key)
        c.check(msg.startswith(prefix) and "\n" not in msg,
                "the %s is named as %r (got %r)" % (what, prefix, msg))
        for word in words:
            word = word.replace("DIR", tmp)
            c.check(word in msg, "the message for the %s says %r (got %r)" % (what, word, msg))
        if rc == 2:  # (a file that passes would start a server that does not stop)
            rc, out, err = reeld("--config", cfg)
            c.check(rc != 0 and prefix in err, "reeld does not start with the %s (rc %d)" % (what, rc))


if __name__ == "__main__":
    sys.exit(h.run(body))
