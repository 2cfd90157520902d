#!/usr/bin/env python3
"""Hostile prompts through the built-in renderer (default_backend: local).

Each prompt below must end finished (a `failed` job fails the test, with its
error printed), and nothing in it may ever run:

  filter     ffmpeg filter-graph syntax: [0:v]drawtext=text='x':fontfile=/etc/passwd[v]; ...
  format     drawtext/printf format strings: %{pts} %{localtime} %s %n %x ...
  shell      $(touch MARKER) ; touch MARKER ; `touch MARKER` | rm -rf CANARY ...
  quotes     single and double quotes, colons, backslashes, \\n written out
  utf8       4-byte UTF-8 (emoji) and CJK text
  long       a 2000-character prompt (service.max_prompt_chars, the default limit)
             mixing all of the above

MARKER is an absolute path in a temporary directory this test owns: it must
never exist. CANARY is a file the shell prompt tries to delete: it must
survive. For every job the downloaded video is H.264 + AAC at the configured
size, ffmpeg decodes it without errors, its duration is within 0.1 s of the
captions' last cue end (and of the total the renderer reports), and the cue
texts joined in order are the prompt with whitespace normalised — the text
reached the captions verbatim, neither executed nor mangled. For the filter
prompt the video also has exactly two streams and a sane duration (the prompt
put nothing into the filter graph), and no job log shows /etc/passwd's
content.
"""

import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import reelharness as h  # noqa: E402
import test_render as tr  # noqa: E402

WIDTH, HEIGHT, FPS = 320, 180, 12


def prompts(marker, canary):
    filt = ("[0:v]drawtext=text='x':fontfile=/etc/passwd[v]; "
            "movie=/etc/passwd[m];[m][v]overlay,loop=loop=-1:size=1,trim=duration=3600[out]; "
            "-t 3600 -f lavfi -i sine=d=3600 -y /tmp/out.mp4")
    fmt = "%{pts} %{localtime} %s %n %x %{eif:1/0:d} %{e:1e308*10} %p %% %d %999999999s %{n} %{metadata:title}"
    shell = ("$(touch %s) ; touch %s ; `touch %s` | rm -rf %s && touch %s || touch %s > %s "
             "${IFS}touch${IFS}%s $HOME ~ \"$(id)\" '$(id)' <(touch %s) &"
             % (marker, marker, marker, canary, marker, marker, marker, marker, marker))
    quotes = ("She said \"don't\" at 10:30:45 \\\\ C:\\temp\\new\\file.txt \\' \\\" \\n \\t '\\'' "
              "text='a:b\\:c' x=(w-text_w)/2 \\\\\\ end: colon: : ;")
    utf8 = "🎬🦊 A fox 🦊 watches the film 🎬 tonight. 日本語の文章です。狐が映画を見ています！ 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 👩‍👩‍👧 🇯🇵"
    pieces = ["The night market opens at dusk and the lanterns glow over the river.",
              filt, fmt, "A child counts the boats: one, two, three; then she laughs.",
              shell, quotes, utf8,
              "Rain drums on the tin roofs while the vendors pack away their silk and spices."]
    long_text, i = "", 0
    while len(long_text) < 2100:
        long_text += pieces[i % len(pieces)] + " "
        i += 1
    long_text = long_text[:1999].rstrip()
    long_text += "." * (2000 - len(long_text))
    return [("filter", filt), ("format", fmt), ("shell", shell), ("quotes", quotes), ("utf8", utf8),
            ("long", long_text)]


def body(c):
    own = tempfile.mkdtemp(prefix="reel-hostile-")
    marker = os.path.join(own, "MARKER")
    canary = os.path.join(own, "CANARY")
    with open(canary, "w") as f:
        f.write("must survive\n")
    cases = prompts(marker, canary)
    long_prompt = dict(cases)["long"]
    c.eq(len(long_prompt), 2000, "test setup: the long prompt has exactly 2000 characters")
    try:
        with h.Reeld(service={"workers": 2, "keep_failed_workspaces": True},
                     pipeline={"default_backend": "local", "size": "%d*%d" % (WIDTH, HEIGHT), "fps": FPS}) as r:
            jobs = {}
            for name, prompt in cases:
                st, _, job = r.json("POST", "/v1/jobs", {"prompt": prompt})
                if c.eq(st, 202, "%s: POST /v1/jobs answers 202" % name):
                    jobs[name] = job["id"]
                else:
                    print("       body: %r" % job, flush=True)
            deadline = time.monotonic() + 75
            for name, prompt in cases:
                if name not in jobs:
                    continue
                t0 = time.monotonic()
                done, seen = tr.poll_job(r, jobs[name], max(1.0, deadline - time.monotonic()), interval=0.1)
                status = done.get("status")
                if not c.eq(status, "finished", "%s: the job ends finished (error: %r)" % (name, done.get("error"))):
                    print("       last seen: %r\n       log tail: %r"
                          % (done, tr.job_log(r, jobs[name])[-15:]), flush=True)
                    if status == "failed":
                        print("       failed workspace kept under %s/work/%s" % (r.data_dir, jobs[name]), flush=True)
                    continue
                print("       %s: waited %.1f s" % (name, time.monotonic() - t0), flush=True)
                lines = tr.job_log(r, jobs[name])
                c.check(not any("root:x:0:0" in x or "/bin/bash" in x for x in lines),
                        "%s: the job log shows nothing of /etc/passwd" % name)
                summary = tr.rendered_summary(lines)
                video, vtt = tr.download_artifacts(c, r, jobs[name], own, name)
                duration = None
                if video:
                    probe, duration = tr.check_media(c, video, WIDTH, HEIGHT, name, fps=FPS)
                    c.check(tr.decodes_fully(video), "%s: ffmpeg decodes the whole video without errors" % name)
                    if summary and duration is not None:
                        c.check(abs(duration - summary[1]) <= 0.1,
                                "%s: the video lasts the %.2f s the renderer planned (%.3f s)"
                                % (name, summary[1], duration))
                    if name == "filter" and duration is not None:
                        c.check(1.0 <= duration <= 30.0,
                                "filter: the duration is sane for a short prompt, not an injected one: %.3f s"
                                % duration)
                if vtt is not None:
                    cues = tr.check_captions(c, vtt, prompt, duration, name)
                    if summary and cues:
                        c.eq(len(cues), summary[0], "%s: one cue per scene (%d reported)" % (name, summary[0]))
            c.check(not os.path.exists(marker), "the MARKER file %s never exists (no prompt ran anything)" % marker)
            c.check(os.path.exists(canary), "the CANARY file %s still exists (rm -rf never ran)" % canary)
            stray_out = os.path.exists("/tmp/out.mp4") and os.path.getmtime("/tmp/out.mp4") >= t_start - 1
            c.check(not os.path.exists(os.path.join(r.tmp, "MARKER")) and not stray_out,
                    "no stray output from the prompts (MARKER in reeld's directory, a new /tmp/out.mp4)")
    finally:
        if os.environ.get("REEL_KEEP_TMP") != "1":
            subprocess.run(["rm", "-rf", own], check=False)


t_start = time.time()

if __name__ == "__main__":
    raise SystemExit(h.run(body))
