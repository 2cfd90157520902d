#!/usr/bin/env python3
"""The built-in text-to-video backend (pipeline.default_backend: local), seen
from outside: HTTP, the downloaded files under ffprobe/ffmpeg, and /proc.

1. End to end: /readyz is 200 with the local backend; a three-sentence prompt
   (each sentence its own scene at segment_duration_seconds 5) ends finished;
   polling saw progress never go backwards and saw plan-or-keyframes,
   generation and stitch; the job's cost lists all six stages with
   non-negative cpu seconds whose sum is the total. The artifact endpoint gives
   a video url and a captions url that both download without a token
   (captions as text/vtt). ffprobe: one H.264 yuv420p video stream at the
   configured size and fps, one AAC audio stream, moov before mdat
   (+faststart), duration within 0.1 s of the captions' last cue end. The
   audio is not silent (volumedetect mean_volume > -50 dB). The VTT has one
   cue per scene (3, the count the renderer's log reports), numbered from 1,
   times contiguous from 0, each cue one sentence, and the cue texts (with
   &amp; &lt; &gt; decoded) joined in order are the prompt with whitespace
   normalised; the last cue ends at the total the renderer reports.
2. burn_captions: true also finishes with a playable video (small size).
3. Missing tools: with PATH holding ffprobe and espeak-ng but no ffmpeg,
   /readyz is 503 naming ffmpeg and "Debian package ffmpeg"; a job ends failed
   with "ffmpeg" and "install the Debian package ffmpeg" in its error, and
   /metrics counts reason backend_unavailable. The same with an empty PATH,
   and with espeak-ng the only program missing (named with its package).
   The DejaVu font hidden (an empty directory bind-mounted over its directory
   in an unshare -rm namespace, when the machine allows one): /readyz and the
   job's error name the font and the Debian package fonts-dejavu-core.
4. `reeld run --prompt "One short sentence."` with a config whose pipeline is
   only default_backend: local and a small size prints the video's path last,
   and ffprobe finds h264 + aac there at that size.
5. Hostile prompts, all expected to end finished (a failed one fails the
   test with its error and workspace logs printed) and none may run anything:
   ffmpeg filter syntax ([0:v]drawtext=text='x':fontfile=/etc/passwd[v]; ...),
   format strings (%{pts} %{localtime} %s %n %x ...), shell metacharacters
   ($(touch MARKER) ; touch MARKER ; `touch MARKER` | rm -rf CANARY ...),
   quotes/colons/backslashes, 4-byte UTF-8 (emoji) and CJK, and a prompt of
   exactly 2000 characters (the default service.max_prompt_chars) mixing them.
   MARKER (an absolute path in this test's temporary directory) never exists
   and CANARY survives. Every video is H.264 + AAC at the configured size and
   fps, decodes without errors, and lasts the captions' last cue end (and the
   renderer's reported total) within 0.1 s; the cue texts joined are the
   prompt, whitespace normalised (a cue boundary between CJK sentences may
   have no space) -- the text reached the captions verbatim. The filter
   prompt's video has exactly two streams and a sane duration (nothing got
   into the filter graph); no job log shows /etc/passwd's content.
6. Frame rates at the edges of what pipeline.fps accepts (1 to 120): fps 1
   with a short prompt, and fps 29.97 with 130 scenes, both finish with a
   video as long as the captions (within 0.1 s).
7. Cancel during generation (8 sentences, 1280*720, segment 6 s, parallel 2):
   while the stage is "generation" ffmpeg processes run in the job's
   workspace; POST cancel ends the job canceled within cancel_grace_seconds +
   2 s and within 2 s more no process has its cwd inside data_dir/work and no
   ffmpeg mentions the job id; the processes seen before the cancel are gone.

Small sizes (640*360 or 320*180, 12 fps) keep the file well under 90 s on a
2-core machine; only the cancel case renders 1280*720, and it is cut short.
"""

import http.client
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import traceback
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import reelharness as h  # noqa: E402

SMALL = {"size": "640*360", "fps": 12}
STAGES = ["plan", "keyframes", "voiceover", "generation", "captions", "stitch"]
TOOL_TIMEOUT = 60  # seconds for any one ffprobe/ffmpeg call on a downloaded file


# ---------------------------------------------------------------- helpers --

def poll_job(r, job_id, timeout, interval=0.02):
    """Polls the job until it is terminal (or timeout passes); returns
    (last job dict, [distinct (status, progress, stage) in order seen])."""
    seen, last = [], None
    deadline = time.monotonic() + timeout
    while True:
        st, _, last = r.json("GET", "/v1/jobs/" + job_id)
        if st != 200 or not isinstance(last, dict):
            raise h.ReeldError("GET /v1/jobs/%s answered %d: %r" % (job_id, st, last))
        key = (last.get("status"), last.get("progress"), last.get("stage"))
        if not seen or seen[-1] != key:
            seen.append(key)
        if last.get("status") in h.TERMINAL_STATUSES or time.monotonic() > deadline:
            return last, seen
        time.sleep(interval)


def job_log(r, job_id):
    st, _, body = r.json("GET", "/v1/jobs/%s/logs?tail=10000" % job_id)
    return body.get("lines", []) if st == 200 and isinstance(body, dict) else []


def rendered_summary(lines):
    """(scenes, seconds, width, height, fps) from the renderer's closing line
    'rendered N scenes, S s of WxH video at F fps', or None."""
    for line in reversed(lines):
        m = re.match(r"^rendered (\d+) scenes, ([0-9.]+) s of (\d+)x(\d+) video at ([0-9.]+) fps$", line)
        if m:
            return int(m.group(1)), float(m.group(2)), int(m.group(3)), int(m.group(4)), float(m.group(5))
    return None


def fetch(url, timeout=30):
    """GET an absolute http:// URL without any Authorization header; returns
    (status, headers with lowercase names, body bytes)."""
    parts = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port or 80, timeout=timeout)
    try:
        conn.request("GET", parts.path + ("?" + parts.query if parts.query else ""))
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def ffprobe(path):
    """ffprobe's JSON (format + streams) for a file, or None if it cannot read it."""
    p = subprocess.run(["ffprobe", "-v", "error", "-print_format", "json", "-show_format", "-show_streams", path],
                       capture_output=True, text=True, timeout=TOOL_TIMEOUT)
    if p.returncode != 0:
        print("       ffprobe %s failed: %s" % (path, p.stderr.strip()[-500:]), flush=True)
        return None
    try:
        return json.loads(p.stdout)
    except ValueError:
        return None


def mean_volume(path):
    """ffmpeg volumedetect's mean_volume in dB for the file's audio, or None."""
    p = subprocess.run(["ffmpeg", "-nostdin", "-hide_banner", "-i", path, "-vn", "-af", "volumedetect",
                        "-f", "null", "-"], capture_output=True, text=True, timeout=TOOL_TIMEOUT)
    m = re.search(r"mean_volume:\s*(-?[0-9.]+|-inf) dB", p.stderr)
    if not m:
        print("       volumedetect gave no mean_volume: %s" % p.stderr.strip()[-500:], flush=True)
        return None
    return float(m.group(1))


def decodes_fully(path):
    """True when ffmpeg decodes every frame of the file without an error."""
    p = subprocess.run(["ffmpeg", "-nostdin", "-hide_banner", "-v", "error", "-i", path, "-f", "null", "-"],
                       capture_output=True, text=True, timeout=TOOL_TIMEOUT)
    if p.returncode != 0 or p.stderr.strip():
        print("       ffmpeg decode of %s: rc %d, %s" % (path, p.returncode, p.stderr.strip()[-500:]), flush=True)
    return p.returncode == 0 and not p.stderr.strip()


def top_level_atoms(data):
    """The names of an MP4 file's top-level boxes, in order."""
    names, pos = [], 0
    while pos + 8 <= len(data):
        size = int.from_bytes(data[pos:pos + 4], "big")
        name = data[pos + 4:pos + 8].decode("latin-1")
        if size == 1 and pos + 16 <= len(data):
            size = int.from_bytes(data[pos + 8:pos + 16], "big")
        elif size == 0:
            size = len(data) - pos
        names.append(name)
        if size < 8:
            break
        pos += size
    return names


_VTT_TIME = r"(\d{2,}):(\d{2}):(\d{2})\.(\d{3})"


def _ms(m, i):
    hh, mm, ss, ms = (int(m.group(i + k)) for k in range(4))
    return ((hh * 60 + mm) * 60 + ss) * 1000 + ms


def parse_vtt(text):
    """Parses a WebVTT document into (ok, [{"id", "start_ms", "end_ms", "text"}], problem)."""
    if text.startswith("\ufeff"):
        text = text[1:]
    blocks = re.split(r"\n\s*\n", text.replace("\r\n", "\n").strip("\n"))
    if not blocks or not re.match(r"^WEBVTT([ \t].*)?$", blocks[0].split("\n")[0]):
        return False, [], "the file does not start with WEBVTT: %r" % text[:60]
    cues = []
    for block in blocks[1:]:
        lines = block.split("\n")
        cue_id = None
        if "-->" not in lines[0]:
            cue_id, lines = lines[0], lines[1:]
        if not lines:
            return False, cues, "a block without a timing line: %r" % block
        m = re.match(r"^" + _VTT_TIME + r" --> " + _VTT_TIME + r"(\s.*)?$", lines[0])
        if not m:
            return False, cues, "bad timing line %r" % lines[0]
        payload = lines[1:]
        if any("-->" in x for x in payload):
            return False, cues, "a cue payload holds '-->': %r" % block
        cues.append({"id": cue_id, "start_ms": _ms(m, 1), "end_ms": _ms(m, 5), "text": "\n".join(payload)})
    return True, cues, None


def vtt_unescape(text):
    """Decodes exactly the entities the renderer writes: &amp; &lt; &gt;."""
    return re.sub(r"&(amp|lt|gt);", lambda m: {"amp": "&", "lt": "<", "gt": ">"}[m.group(1)], text)


def normalise(text):
    return " ".join(text.split())


def finish_job(c, r, prompt, timeout, what):
    """POSTs prompt, polls until terminal; returns (job, seen) or (None, seen)
    after recording a failure (with the job's error and log) when the job did
    not finish."""
    st, _, job = r.json("POST", "/v1/jobs", {"prompt": prompt})
    if not c.eq(st, 202, "%s: POST /v1/jobs answers 202" % what):
        print("       body: %r" % job, flush=True)
        return None, []
    done, seen = poll_job(r, job["id"], timeout)
    ok = c.eq(done.get("status"), "finished", "%s: the job ends finished within %d s (error: %r)"
              % (what, timeout, done.get("error")))
    if not ok:
        print("       last seen: %s\n       stages seen: %s\n       log tail: %r"
              % (json.dumps(done), seen, job_log(r, job["id"])[-15:]), flush=True)
        if done.get("status") == "failed":
            dump_workspace_logs(os.path.join(r.data_dir, "work", job["id"]))
        return None, seen
    return done, seen


def download_artifacts(c, r, job_id, dest, what):
    """GET the artifact endpoint and download video and captions without a
    token; returns (video_path, vtt_text) (None for what failed)."""
    st, _, art = r.json("GET", "/v1/jobs/%s/artifact" % job_id)
    if not c.eq(st, 200, "%s: GET artifact answers 200" % what):
        return None, None
    if not c.check(isinstance(art, dict) and isinstance(art.get("url"), str) and
                   isinstance(art.get("captions_url"), str),
                   "%s: the artifact has url and captions_url strings: %r" % (what, art)):
        return None, None
    video_path, vtt = None, None
    st, headers, data = fetch(art["url"])
    if c.eq(st, 200, "%s: the video url downloads without a token" % what):
        video_path = os.path.join(dest, "%s.mp4" % job_id)
        with open(video_path, "wb") as f:
            f.write(data)
    st, headers, data = fetch(art["captions_url"])
    if c.eq(st, 200, "%s: the captions url downloads without a token" % what):
        c.check(headers.get("content-type", "").split(";")[0].strip() == "text/vtt",
                "%s: captions are served as text/vtt: %r" % (what, headers.get("content-type")))
        try:
            vtt = data.decode("utf-8")
        except UnicodeDecodeError:
            c.fail("%s: the captions are UTF-8" % what)
    return video_path, vtt


def streams_of(probe, kind):
    return [s for s in (probe or {}).get("streams", []) if s.get("codec_type") == kind]


def check_media(c, video_path, width, height, what, fps=None):
    """ffprobe checks shared by every finished job; returns (probe, duration)."""
    probe = ffprobe(video_path)
    if not c.check(probe is not None, "%s: ffprobe reads the downloaded video" % what):
        return None, None
    video, audio = streams_of(probe, "video"), streams_of(probe, "audio")
    c.eq(len(probe.get("streams", [])), 2, "%s: the file has exactly two streams (video + audio)" % what)
    if c.eq(len(video), 1, "%s: one video stream" % what):
        v = video[0]
        c.eq((v.get("codec_name"), v.get("pix_fmt"), v.get("width"), v.get("height")),
             ("h264", "yuv420p", width, height), "%s: video is H.264 yuv420p %dx%d" % (what, width, height))
        if fps is not None:
            c.eq(v.get("r_frame_rate"), "%d/1" % fps, "%s: video runs at the configured %d fps" % (what, fps))
            try:
                frames, seconds = int(v.get("nb_frames")), float(v.get("duration"))
                c.check(abs(frames - seconds * fps) <= 1.0, "%s: %d frames fill the video stream's %.3f s at %d fps"
                        % (what, frames, seconds, fps))
            except (TypeError, ValueError):
                c.fail("%s: ffprobe reports nb_frames and duration of the video: %r" % (what, v))
    if c.eq(len(audio), 1, "%s: one audio stream" % what):
        c.eq(audio[0].get("codec_name"), "aac", "%s: audio is AAC" % what)
    try:
        duration = float(probe.get("format", {}).get("duration"))
    except (TypeError, ValueError):
        c.fail("%s: ffprobe reports a duration: %r" % (what, probe.get("format")))
        return probe, None
    return probe, duration


def check_captions(c, vtt, prompt, duration, what):
    """VTT well-formed, contiguous from 0, texts joined == prompt normalised,
    last cue end within 0.1 s of the video duration. Returns the cues."""
    ok, cues, problem = parse_vtt(vtt or "")
    if not c.check(ok and cues, "%s: the captions are WebVTT with cues%s" % (what, "" if ok else ": " + str(problem))):
        print("       captions: %r" % (vtt or "")[:800], flush=True)
        return []
    c.eq(cues[0]["start_ms"], 0, "%s: the first cue starts at 0" % what)
    gaps = [(a["end_ms"], b["start_ms"]) for a, b in zip(cues, cues[1:]) if a["end_ms"] != b["start_ms"]]
    c.check(not gaps, "%s: cue times are contiguous (each starts where the previous ends): %s" % (what, gaps[:5]))
    c.check(all(q["end_ms"] > q["start_ms"] for q in cues), "%s: every cue has a positive length" % what)
    c.check(all(q["text"].strip() for q in cues), "%s: no cue is empty" % what)
    # Scenes of text written without spaces (CJK) may meet without whitespace
    # between them, so a cue boundary matches one space or none.
    texts = [normalise(vtt_unescape(q["text"])) for q in cues]
    joined = re.fullmatch(" ?".join(re.escape(t) for t in texts), normalise(prompt)) is not None
    c.check(joined, "%s: the cue texts joined in order are the prompt (whitespace normalised)%s"
            % (what, "" if joined else ": expected %r, got cues %r" % (normalise(prompt), texts)))
    if duration is not None:
        end = cues[-1]["end_ms"] / 1000.0
        c.check(abs(duration - end) <= 0.1, "%s: video duration %.3f s is within 0.1 s of the last cue end %.3f s"
                % (what, duration, end))
    return cues


def proc_snapshot():
    """[(pid, cwd or None, argv list)] for every process we can see."""
    out = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        pid = int(name)
        try:
            cwd = os.readlink("/proc/%d/cwd" % pid)
        except OSError:
            cwd = None
        try:
            with open("/proc/%d/cmdline" % pid, "rb") as f:
                argv = [a.decode("utf-8", "replace") for a in f.read().split(b"\0") if a]
        except OSError:
            continue
        if not h.pid_alive(pid):
            continue
        if cwd and cwd.endswith(" (deleted)"):
            cwd = cwd[:-len(" (deleted)")]
        out.append((pid, cwd, argv))
    return out


def dump_workspace_logs(workspace):
    """Prints the tails of a kept failed workspace's logs/*.log (for the bug report);
    set REEL_KEEP_TMP=1 to keep the whole workspace after the test."""
    logs = os.path.join(workspace, "logs")
    try:
        names = sorted(os.listdir(logs))
    except OSError:
        print("       no logs/ in the failed workspace %s" % workspace, flush=True)
        return
    print("       failed workspace %s (REEL_KEEP_TMP=1 keeps it):" % workspace, flush=True)
    for name in names:
        try:
            with open(os.path.join(logs, name), "rb") as f:
                tail = f.read()[-600:].decode("utf-8", "replace")
        except OSError:
            continue
        if tail.strip():
            print("         %s: %s" % (name, tail.strip().replace("\n", " | ")), flush=True)


def inside(path, root):
    return path == root or path.startswith(root.rstrip("/") + "/")


def metric_value(text, name, labels):
    m = re.search(r"^%s\{%s\} ([0-9.eE+-]+)$" % (re.escape(name), re.escape(labels)), text, re.M)
    return float(m.group(1)) if m else None


# ----------------------------------------------------------- end to end --

E2E_PROMPT = ("A small red fox trots across a frozen lake at dawn & looks back.   "
              "Snow begins to fall <softly> over the dark pine forest behind it.\n"
              "Finally the sun rises and paints the ice in gold and pink.")
E2E_SENTENCES = ["A small red fox trots across a frozen lake at dawn & looks back.",
                 "Snow begins to fall <softly> over the dark pine forest behind it.",
                 "Finally the sun rises and paints the ice in gold and pink."]


def check_end_to_end(c, dest):
    with h.Reeld(service={"workers": 1, "keep_failed_workspaces": True},
                 pipeline=dict(SMALL, default_backend="local")) as r:
        st, _, body = r.request("GET", "/readyz", token=False)
        c.eq(st, 200, "/readyz is 200 with the local backend and every tool installed (body %r)" % body[:300])

        t0 = time.monotonic()
        done, seen = finish_job(c, r, E2E_PROMPT, 90, "end to end")
        print("       end to end: %.1f s; seen %s" % (time.monotonic() - t0, seen), flush=True)
        if done is None:
            return
        job_id = done["id"]
        progresses = [p for (_, p, _) in seen]
        c.check(all(isinstance(p, int) for p in progresses) and
                all(a <= b for a, b in zip(progresses, progresses[1:])),
                "progress never goes backwards: %s" % progresses)
        stages = [s for (st_, _, s) in seen if st_ == "progress"]
        c.check("plan" in stages or "keyframes" in stages, "polling saw stage plan or keyframes: %s" % stages)
        c.check("generation" in stages, "polling saw stage generation: %s" % stages)
        c.check("stitch" in stages, "polling saw stage stitch: %s" % stages)
        c.check(set(stages) <= set(STAGES), "every stage seen is one of the six: %s" % sorted(set(stages)))
        c.eq(done.get("progress"), 100, "a finished job is at 100%")

        cost = done.get("cost")
        cpu = cost.get("cpu_seconds") if isinstance(cost, dict) else None
        stage_cost = cpu.get("stages") if isinstance(cpu, dict) else None
        if c.check(isinstance(stage_cost, dict), "the job has cost.cpu_seconds.stages: %r" % cost):
            c.eq(sorted(stage_cost), sorted(STAGES), "cost lists exactly the six stages")
            nums = [stage_cost.get(s) for s in STAGES]
            numbers = all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in nums)
            c.check(numbers and all(x >= 0 for x in nums), "every stage cost is a non-negative number: %r" % stage_cost)
            total = cpu.get("total")
            c.check(isinstance(total, (int, float)) and numbers and abs(total - sum(nums)) <= 0.01,
                    "cost total %r is the sum of the stages %r" % (total, sum(nums) if numbers else None))
            c.check(isinstance(total, (int, float)) and total > 0,
                    "rendering a video costs some cpu time (total %r > 0)" % total)

        lines = job_log(r, job_id)
        summary = rendered_summary(lines)
        c.check(summary is not None, "the job log holds the renderer's 'rendered N scenes, S s ...' line")

        video, vtt = download_artifacts(c, r, job_id, dest, "end to end")
        duration = None
        if video:
            probe, duration = check_media(c, video, 640, 360, "end to end", fps=12)
            with open(video, "rb") as f:
                atoms = top_level_atoms(f.read())
            c.check("moov" in atoms and "mdat" in atoms and atoms.index("moov") < atoms.index("mdat"),
                    "the video is faststart: moov comes before mdat (%s)" % atoms)
            vol = mean_volume(video)
            c.check(vol is not None and vol > -50.0, "the audio is not silent: mean_volume %r dB > -50 dB" % vol)
            c.check(decodes_fully(video), "ffmpeg decodes the whole video without errors")
        if vtt is None:
            return
        cues = check_captions(c, vtt, E2E_PROMPT, duration, "end to end")
        if not cues:
            return
        print("       captions:\n" + "\n".join("         | " + x for x in vtt.splitlines()), flush=True)
        c.eq([vtt_unescape(q["text"]) for q in cues], E2E_SENTENCES,
             "one cue per scene: each of the three sentences is its own cue, in order")
        c.eq([q["id"] for q in cues], [str(i + 1) for i in range(len(cues))], "cues are numbered 1, 2, 3")
        c.check("&amp;" in vtt and "&lt;softly&gt;" in vtt, "& < > are written as &amp; &lt; &gt; in the VTT")
        if summary:
            c.eq(len(cues), summary[0], "the VTT has as many cues as the renderer reports scenes")
            c.check(abs(cues[-1]["end_ms"] / 1000.0 - summary[1]) <= 0.006,
                    "the last cue ends at the plan's total the renderer reports (%.3f vs %.2f s)"
                    % (cues[-1]["end_ms"] / 1000.0, summary[1]))
            c.eq(summary[2:4], (640, 360), "the renderer reports the configured size")


# -------------------------------------------------------- burn captions --

def check_burn_captions(c, dest):
    prompt = "Burned captions sit at the bottom of every frame."
    with h.Reeld(service={"workers": 1, "keep_failed_workspaces": True},
                 pipeline={"default_backend": "local", "size": "320*180", "fps": 12, "burn_captions": True}) as r:
        done, _ = finish_job(c, r, prompt, 60, "burn_captions")
        if done is None:
            return
        video, vtt = download_artifacts(c, r, done["id"], dest, "burn_captions")
        duration = None
        if video:
            _, duration = check_media(c, video, 320, 180, "burn_captions", fps=12)
            c.check(decodes_fully(video), "burn_captions: ffmpeg decodes the whole video without errors")
        if vtt is not None:
            check_captions(c, vtt, prompt, duration, "burn_captions")


# --------------------------------------------------------- missing tools --

def tool_dir(parent, name, programs):
    """A directory holding symlinks to just these programs (for PATH)."""
    d = os.path.join(parent, name)
    os.makedirs(d)
    for prog in programs:
        real = subprocess.run(["sh", "-c", 'command -v "$1"', "sh", prog], capture_output=True, text=True).stdout.strip()
        if real:
            os.symlink(real, os.path.join(d, prog))
    return d


def check_missing_tool(c, path_dir, program, package, what):
    with h.Reeld(service={"workers": 1}, pipeline=dict(SMALL, default_backend="local"), env={"PATH": path_dir}) as r:
        st, _, body = r.request("GET", "/readyz", token=False)
        text = body.decode("utf-8", "replace")
        c.eq(st, 503, "%s: /readyz is 503" % what)
        c.check(program in text and ("Debian package %s" % package) in text,
                "%s: /readyz names %s and 'Debian package %s': %s" % (what, program, package, text[:300]))
        st, _, job = r.json("POST", "/v1/jobs", {"prompt": "A red fox runs through the snow."})
        if not c.eq(st, 202, "%s: POST /v1/jobs still answers 202" % what):
            return
        done, _ = poll_job(r, job["id"], 30)
        c.eq(done.get("status"), "failed", "%s: the job ends failed" % what)
        err = done.get("error") or ""
        c.check(program in err and ("install the Debian package %s" % package) in err,
                "%s: the job's error names %s and says 'install the Debian package %s': %r"
                % (what, program, package, err))
        c.eq(done.get("artifact_uri"), None, "%s: a failed job has no artifact" % what)
        st, _, metrics = r.request("GET", "/metrics")
        value = metric_value(metrics.decode("utf-8", "replace"), "reel_job_failures_total",
                             'reason="backend_unavailable"')
        c.eq(value, 1.0, "%s: /metrics counts the failure as reason backend_unavailable" % what)


def check_missing_tools(c, dest):
    no_ffmpeg = tool_dir(dest, "no-ffmpeg", ["ffprobe", "espeak-ng"])
    c.check(sorted(os.listdir(no_ffmpeg)) == ["espeak-ng", "ffprobe"],
            "test setup: ffprobe and espeak-ng are installed (linked into the PATH directory)")
    check_missing_tool(c, no_ffmpeg, "ffmpeg", "ffmpeg", "PATH without ffmpeg")
    empty = tool_dir(dest, "empty", [])
    check_missing_tool(c, empty, "ffmpeg", "ffmpeg", "empty PATH")
    no_espeak = tool_dir(dest, "no-espeak", ["ffmpeg", "ffprobe"])
    check_missing_tool(c, no_espeak, "espeak-ng", "espeak-ng", "PATH without espeak-ng")


FONT_DIR = "/usr/share/fonts/truetype/dejavu"


def check_missing_font(c, dest):
    """The DejaVu font hidden by an empty directory bind-mounted over its
    directory, in a user + mount namespace (unshare -rm) that only reeld and
    its children see. Not counted when unprivileged namespaces are unavailable."""
    empty = os.path.join(dest, "nofont")
    os.makedirs(empty)
    try:
        probe = subprocess.run(["unshare", "-rm", "sh", "-c", 'mount --bind "$0" %s && ls -A %s' % (FONT_DIR, FONT_DIR),
                                empty], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired) as e:
        probe = None
        print("       note: missing-font case not run: %s" % e, flush=True)
    if probe is None or probe.returncode != 0 or probe.stdout.strip():
        if probe is not None:
            print("       note: missing-font case not run: unshare -rm + mount --bind unavailable (%r)"
                  % probe.stderr.strip()[-200:], flush=True)
        return
    wrapper = h.write_script(dest, "reeld-without-font.sh", """
        exec unshare -rm sh -c 'mount --bind "$0" %s && exec "$@"' %s %s "$@"
    """ % (FONT_DIR, empty, h.reeld_binary()))
    saved = os.environ.get("REELD")
    os.environ["REELD"] = wrapper
    try:
        r = h.Reeld(service={"workers": 1}, pipeline=dict(SMALL, default_backend="local"))
    finally:
        if saved is None:
            os.environ.pop("REELD", None)
        else:
            os.environ["REELD"] = saved
    with r:
        st, _, body = r.request("GET", "/readyz", token=False)
        text = body.decode("utf-8", "replace")
        c.eq(st, 503, "no font: /readyz is 503")
        c.check("DejaVuSans-Bold.ttf" in text and "Debian package fonts-dejavu-core" in text,
                "no font: /readyz names the font and 'Debian package fonts-dejavu-core': %s" % text[:300])
        st, _, job = r.json("POST", "/v1/jobs", {"prompt": "A red fox runs through the snow."})
        if not c.eq(st, 202, "no font: POST /v1/jobs still answers 202"):
            return
        done, _ = poll_job(r, job["id"], 30)
        err = done.get("error") or ""
        c.eq(done.get("status"), "failed", "no font: the job ends failed")
        c.check("font" in err and "install the Debian package fonts-dejavu-core" in err,
                "no font: the job's error names the font and its package: %r" % err)
        st, _, metrics = r.request("GET", "/metrics")
        c.eq(metric_value(metrics.decode("utf-8", "replace"), "reel_job_failures_total",
                          'reason="backend_unavailable"'), 1.0,
             "no font: /metrics counts the failure as reason backend_unavailable")


# --------------------------------------------------------------- reeld run --

def check_reeld_run(c, dest):
    work = os.path.join(dest, "cli")
    os.makedirs(work)
    cfg = os.path.join(work, "reel.yaml")
    with open(cfg, "w", encoding="utf-8") as f:
        f.write(h.to_yaml({"service": {"data_dir": os.path.join(work, "data"), "auth": {"tokens": ["x"]}},
                           "pipeline": {"default_backend": "local", "size": "320*180"}}))
    try:
        p = subprocess.run([h.reeld_binary(), "run", "--config", cfg, "--prompt", "One short sentence."],
                           cwd=work, capture_output=True, text=True, timeout=60)
    except subprocess.TimeoutExpired:
        c.fail("reeld run finishes within 60 s")
        return
    c.eq(p.returncode, 0, "reeld run exits 0 (stderr %r)" % p.stderr[-500:])
    out = p.stdout.strip().splitlines()
    last = out[-1] if out else ""
    if not c.check(last.endswith("/final_video.mp4") and os.path.isfile(last),
                   "reeld run prints the path of an existing video last: %r" % last):
        print("       stdout tail: %r" % out[-10:], flush=True)
        return
    check_media(c, last, 320, 180, "reeld run", fps=24)
    c.check(decodes_fully(last), "reeld run: ffmpeg decodes the whole video without errors")

    # The same prompt and config give the same keyframes, byte for byte (the plan
    # is deterministic, and so must be everything drawn from it).
    p2 = subprocess.run([h.reeld_binary(), "run", "--config", cfg, "--prompt", "One short sentence."],
                        cwd=work, capture_output=True, text=True, timeout=60)
    second = (p2.stdout.strip().splitlines() or [""])[-1]
    first_key = os.path.join(os.path.dirname(os.path.dirname(last)), "keyframes", "001.png")
    second_key = os.path.join(os.path.dirname(os.path.dirname(second)), "keyframes", "001.png")
    if c.check(p2.returncode == 0 and os.path.isfile(first_key) and os.path.isfile(second_key),
               "a second reeld run of the same prompt renders too"):
        with open(first_key, "rb") as a, open(second_key, "rb") as b:
            c.check(a.read() == b.read(), "the same prompt and config give byte-identical keyframes")


# ------------------------------------------------------------ fps edges --

def check_fps_edges(c, dest):
    """Frame rates pipeline.fps accepts (1 to 120) must render too.
    a. fps 1, the lowest accepted value, with a short prompt: finished, 1 fps.
    b. fps 29.97 with 130 scenes (max_scenes 130, segment_duration_seconds 0.5,
       one word per scene, each scene the 2 s minimum = 60 frames): finished,
       and the video lasts the captions' total within 0.1 s."""
    prompt = "A slow red fox crosses the frozen lake at dawn."
    with h.Reeld(service={"workers": 2, "keep_failed_workspaces": True},
                 pipeline={"default_backend": "local", "size": "160*90", "fps": 1}) as r:
        done, _ = finish_job(c, r, prompt, 60, "fps 1")
        if done is not None:
            video, vtt = download_artifacts(c, r, done["id"], dest, "fps 1")
            duration = None
            if video:
                _, duration = check_media(c, video, 160, 90, "fps 1", fps=1)
            if vtt is not None:
                check_captions(c, vtt, prompt, duration, "fps 1")

    words = "alpha bravo charlie delta echo foxtrot golf hotel india juliet".split()
    prompt = " ".join(words[i % len(words)] for i in range(130))
    with h.Reeld(service={"workers": 1, "keep_failed_workspaces": True},
                 pipeline={"default_backend": "local", "size": "64*36", "fps": 29.97, "max_scenes": 130,
                           "segment_duration_seconds": 0.5, "parallel_segments": 2}) as r:
        done, _ = finish_job(c, r, prompt, 75, "fps 29.97, 130 scenes")
        if done is None:
            return
        video, vtt = download_artifacts(c, r, done["id"], dest, "fps 29.97, 130 scenes")
        duration = None
        if video:
            probe, duration = check_media(c, video, 64, 36, "fps 29.97, 130 scenes")
            v = streams_of(probe, "video")
            c.eq(v and v[0].get("r_frame_rate"), "2997/100", "fps 29.97, 130 scenes: the video runs at 2997/100")
        if vtt is not None:
            cues = check_captions(c, vtt, prompt, duration, "fps 29.97, 130 scenes")
            c.eq(len(cues), 130, "fps 29.97, 130 scenes: 130 cues")


# -------------------------------------------------------- hostile prompts --

HOSTILE_W, HOSTILE_H, HOSTILE_FPS = 320, 180, 12


def hostile_prompts(marker, canary):
    filt = ("[0:v]drawtext=text='x':fontfile=/etc/passwd[v]; "
            "movie=/etc/passwd[m];[m][v]overlay,loop=loop=-1:size=1,trim=duration=3600[out]; "
            "-t 3600 -f lavfi -i sine=d=3600 -y %s" % marker)
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


def check_hostile(c, dest):
    own = os.path.join(dest, "hostile")
    os.makedirs(own)
    marker = os.path.join(own, "MARKER")
    canary = os.path.join(own, "CANARY")
    with open(canary, "w") as f:
        f.write("must survive\n")
    cases = hostile_prompts(marker, canary)
    c.eq(len(dict(cases)["long"]), 2000, "test setup: the long prompt has exactly 2000 characters")
    c.check(os.access(own, os.W_OK), "test setup: MARKER's directory is writable (a `touch MARKER` would succeed)")
    with h.Reeld(service={"workers": 2, "keep_failed_workspaces": True},
                 pipeline={"default_backend": "local", "size": "%d*%d" % (HOSTILE_W, HOSTILE_H),
                           "fps": HOSTILE_FPS}) as r:
        jobs = {}
        for name, prompt in cases:
            st, _, job = r.json("POST", "/v1/jobs", {"prompt": prompt})
            if c.eq(st, 202, "%s: POST /v1/jobs answers 202" % name):
                jobs[name] = job["id"]
            else:
                print("       body: %r" % job, flush=True)
        deadline = time.monotonic() + 60
        for name, prompt in cases:
            if name not in jobs:
                continue
            t0 = time.monotonic()
            done, seen = poll_job(r, jobs[name], max(1.0, deadline - time.monotonic()), interval=0.1)
            status = done.get("status")
            if not c.eq(status, "finished", "%s: the job ends finished (error: %r)" % (name, done.get("error"))):
                print("       last seen: %r\n       log tail: %r"
                      % (done, job_log(r, jobs[name])[-15:]), flush=True)
                if status == "failed":
                    dump_workspace_logs(os.path.join(r.data_dir, "work", jobs[name]))
                continue
            print("       %s: waited %.1f s" % (name, time.monotonic() - t0), flush=True)
            lines = job_log(r, jobs[name])
            c.check(not any("root:x:0:0" in x or "/bin/bash" in x for x in lines),
                    "%s: the job log shows nothing of /etc/passwd" % name)
            c.check(not any("uid=" in x for x in lines), "%s: the job log shows no output of $(id)" % name)
            summary = rendered_summary(lines)
            video, vtt = download_artifacts(c, r, jobs[name], own, name)
            duration = None
            if video:
                probe, duration = check_media(c, video, HOSTILE_W, HOSTILE_H, name, fps=HOSTILE_FPS)
                c.check(decodes_fully(video), "%s: ffmpeg decodes the whole video without errors" % name)
                if summary and duration is not None:
                    c.check(abs(duration - summary[1]) <= 0.1,
                            "%s: the video lasts the %.2f s the renderer planned (%.3f s)"
                            % (name, summary[1], duration))
                if name == "filter" and duration is not None:
                    # an injected loop/trim/-t 3600 would make it an hour long (or break it)
                    c.check(1.0 <= duration <= 120.0,
                            "filter: the duration is sane for a short prompt (1 to 120 s), not an injected "
                            "one: %.3f s" % duration)
            if vtt is not None:
                cues = check_captions(c, vtt, prompt, duration, name)
                if summary and cues:
                    c.eq(len(cues), summary[0], "%s: one cue per scene (%d reported)" % (name, summary[0]))
        c.check(not os.path.exists(marker), "the MARKER file %s never exists (no prompt ran anything)" % marker)
        c.check(os.path.exists(canary), "the CANARY file %s still exists (rm -rf never ran)" % canary)
        c.check(not os.path.exists(os.path.join(r.tmp, "MARKER")),
                "no MARKER appeared in reeld's own directory either")


# ---------------------------------------------------------------- cancel --

CANCEL_GRACE = 2.0
CANCEL_PROMPT = " ".join([
    "The old lighthouse keeper climbs the spiral stairs before the storm arrives.",
    "Waves crash against the black rocks far below the narrow iron balcony.",
    "He lights the great lamp and watches its beam sweep across the water.",
    "A small fishing boat struggles through the rain toward the distant harbour.",
    "The keeper signals with a lantern from the window of the tower.",
    "Slowly the boat turns and follows the light into calmer water.",
    "By morning the storm has passed and the sea lies quiet and grey.",
    "The fishermen climb the hill to thank the keeper with fresh bread.",
])


def check_cancel(c, dest):
    with h.Reeld(service={"workers": 1, "cancel_grace_seconds": CANCEL_GRACE},
                 pipeline={"default_backend": "local", "size": "1280*720", "segment_duration_seconds": 6,
                           "parallel_segments": 2}) as r:
        work_root = os.path.realpath(os.path.join(r.data_dir, "work"))
        st, _, job = r.json("POST", "/v1/jobs", {"prompt": CANCEL_PROMPT})
        if not c.eq(st, 202, "cancel: POST /v1/jobs answers 202"):
            return
        job_id = job["id"]
        seen = []

        def in_generation():
            _, _, j = r.json("GET", "/v1/jobs/" + job_id)
            seen.append((j.get("status"), j.get("progress"), j.get("stage")))
            if j.get("status") in h.TERMINAL_STATUSES:
                return j
            return j if j.get("stage") == "generation" else None

        j = h.wait_for(in_generation, 60, interval=0.02)
        if not c.check(j is not None and j.get("status") == "progress" and j.get("stage") == "generation",
                       "cancel: the job reaches stage generation while running (last %r)" % (seen[-1:],)):
            return

        def ours(procs):
            return [(pid, cwd, argv) for pid, cwd, argv in procs
                    if (cwd and inside(cwd, work_root)) or
                    (argv and os.path.basename(argv[0]) == "ffmpeg" and any(job_id in a for a in argv))]

        def with_ffmpeg():
            procs = ours(proc_snapshot())
            return procs if any(argv and os.path.basename(argv[0]) == "ffmpeg" for _, _, argv in procs) else None

        # a clip's ffmpeg may be between spawn and exec at any one instant: look a few times
        before = h.wait_for(with_ffmpeg, 3, interval=0.05) or ours(proc_snapshot())
        ffmpegs = [p for p in before if p[2] and os.path.basename(p[2][0]) == "ffmpeg"]
        print("       before cancel: %s" % [(pid, " ".join(argv)[:80]) for pid, _, argv in before], flush=True)
        c.check(ffmpegs, "cancel: ffmpeg processes run in the job's workspace during generation (the scan sees them)")

        _, _, now = r.json("GET", "/v1/jobs/" + job_id)
        c.check(now.get("status") == "progress" and now.get("stage") == "generation",
                "cancel: the job is still in generation when the cancel is sent (%s, %s)"
                % (now.get("status"), now.get("stage")))
        t0 = time.monotonic()
        st, _, answer = r.json("POST", "/v1/jobs/%s/cancel" % job_id)
        c.eq((st, answer), (200, {"ok": True}), "cancel: POST cancel answers 200 {\"ok\": true}")
        done = h.wait_for(lambda: (lambda j: j if j.get("status") in h.TERMINAL_STATUSES else None)(
            r.json("GET", "/v1/jobs/" + job_id)[2]), CANCEL_GRACE + 10, interval=0.02)
        elapsed = time.monotonic() - t0
        print("       canceled after %.2f s (cancel_grace_seconds %.1f)" % (elapsed, CANCEL_GRACE), flush=True)
        c.eq(done and done.get("status"), "canceled", "cancel: the job ends canceled")
        c.check(done is not None and elapsed <= CANCEL_GRACE + 2,
                "cancel: canceled within cancel_grace_seconds + 2 s (%.2f s)" % elapsed)

        left = h.wait_for(lambda: not ours(proc_snapshot()), 2, interval=0.05)
        remaining = ours(proc_snapshot())
        c.check(left and not remaining,
                "cancel: within 2 s no process has its cwd in data_dir/work and no ffmpeg names the job: %s"
                % [(pid, cwd, " ".join(argv)[:120]) for pid, cwd, argv in remaining])
        alive = [pid for pid, _, _ in before if h.pid_alive(pid)]
        c.check(not alive, "cancel: every process seen in the workspace before the cancel is gone: %s" % alive)


def timed(c, name, fn, dest):
    """Runs one part; an exception there is one failure and the next part still runs."""
    t0 = time.monotonic()
    try:
        fn(c, dest)
    except Exception as e:  # noqa: BLE001 - reported as a failure of this part
        traceback.print_exc()
        c.fail("%s: uncaught %s: %s" % (name, type(e).__name__, str(e).splitlines()[0] if str(e) else ""))
    finally:
        print("       [%s took %.1f s]" % (name, time.monotonic() - t0), flush=True)


def body(c):
    dest = tempfile.mkdtemp(prefix="reel-render-test-")
    try:
        timed(c, "end to end", check_end_to_end, dest)
        timed(c, "burn_captions", check_burn_captions, dest)
        timed(c, "missing tools", check_missing_tools, dest)
        timed(c, "missing font", check_missing_font, dest)
        timed(c, "reeld run", check_reeld_run, dest)
        timed(c, "hostile prompts", check_hostile, dest)
        timed(c, "fps edges", check_fps_edges, dest)
        timed(c, "cancel", check_cancel, dest)
    finally:
        if os.environ.get("REEL_KEEP_TMP") != "1":
            subprocess.run(["rm", "-rf", dest], check=False)


if __name__ == "__main__":
    raise SystemExit(h.run(body))
