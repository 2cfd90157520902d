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
4. `reeld run --prompt "One short sentence."` with a config whose pipeline is
   only default_backend: local and a small size prints the video's path last,
   and ffprobe finds h264 + aac there at that size.
5. Cancel during generation (8 sentences, 1280*720, segment 6 s, parallel 2):
   while the stage is "generation" ffmpeg processes run in the job's
   workspace; POST cancel ends the job canceled within cancel_grace_seconds +
   2 s and within 2 s more no process has its cwd inside data_dir/work and no
   ffmpeg mentions the job id; the processes seen before the cancel are gone.

The helpers here (poll_job, fetch, ffprobe, parse_vtt, ...) are also used by
test_render_hostile.py.
"""

import http.client
import json
import os
import re
import subprocess
import sys
import tempfile
import time
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
    joined = normalise(" ".join(vtt_unescape(q["text"]) for q in cues))
    c.eq(joined, normalise(prompt), "%s: the cue texts joined in order are the prompt (whitespace normalised)" % what)
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
    with h.Reeld(service={"workers": 1}, pipeline=dict(SMALL, default_backend="local")) as r:
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
    with h.Reeld(service={"workers": 1},
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

        before = ours(proc_snapshot())
        ffmpegs = [p for p in before if p[2] and os.path.basename(p[2][0]) == "ffmpeg"]
        print("       before cancel: %s" % [(pid, " ".join(argv)[:80]) for pid, _, argv in before], flush=True)
        c.check(ffmpegs, "cancel: ffmpeg processes run in the job's workspace during generation (the scan sees them)")

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
    t0 = time.monotonic()
    try:
        fn(c, dest)
    finally:
        print("       [%s took %.1f s]" % (name, time.monotonic() - t0), flush=True)


def body(c):
    dest = tempfile.mkdtemp(prefix="reel-render-test-")
    try:
        timed(c, "end to end", check_end_to_end, dest)
        timed(c, "burn_captions", check_burn_captions, dest)
        timed(c, "missing tools", check_missing_tools, dest)
        timed(c, "reeld run", check_reeld_run, dest)
        timed(c, "cancel", check_cancel, dest)
    finally:
        if os.environ.get("REEL_KEEP_TMP") != "1":
            subprocess.run(["rm", "-rf", dest], check=False)


if __name__ == "__main__":
    raise SystemExit(h.run(body))
