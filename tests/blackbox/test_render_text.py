#!/usr/bin/env python3
"""The built-in renderer's text, voice and picture, checked on real renders
(reel-render run directly in a workspace, as reeld runs it; small sizes):

1. Text stays inside the frame for every camera move: five scenes whose words
   choose drift, pan_up, pan_down, pan_right and pan_left; in every frame of
   the video, the pixels of the scene's text colour (white text: luma > 200)
   stay off the frame's edge rows and columns, and each scene shows its text.
2. Scene boundaries at sentence ends: the plan of a French prompt with
   guillemets set off by spaces and a long sentence has no scene that starts
   with a closing mark, and each scene before a cut sentence ends a sentence.
3. The voice: plan.json says fr-fr for the French prompt and espeak-ng was
   run with "-v fr-fr" (a wrapper on PATH records its argv); pipeline.voice
   "de" overrides the detection.
4. CJK and emoji are drawn with real glyphs: in the keyframe of two different
   CJK characters (and of two different emoji) the two glyphs differ in shape
   (a missing-glyph box would look the same for both), and the font each was
   drawn with covers it (fc-list :charset=...).
5. Palette from words: the "night" keyframe is darker than the "dawn" one.
"""

import json
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import reelharness as h  # noqa: E402

W, H, FPS = 320, 180, 12


def reel_render():
    path = os.environ.get("REEL_RENDER") or os.path.join(os.environ.get("REEL_BUILD_DIR", "build"), "reel-render")
    return os.path.abspath(path)


def render(dest, name, settings, env=None):
    """Runs reel-render in dest/name with the pipeline settings; returns (ok, stdout, workspace)."""
    ws = os.path.join(dest, name)
    os.makedirs(ws)
    config = dict({"size": "%d*%d" % (W, H), "fps": FPS, "segment_duration_seconds": 1.0}, **settings)
    with open(os.path.join(ws, "pipeline_config.yaml"), "w") as f:
        f.write(h.to_yaml(config))
    p = subprocess.run([reel_render(), "--config", "pipeline_config.yaml"], cwd=ws, capture_output=True, text=True,
                       timeout=300, env=env)
    if p.returncode != 0:
        print("       reel-render %s failed (%d): %s" % (name, p.returncode, p.stderr[-800:]), flush=True)
    return p.returncode == 0, p.stdout, ws


def plan_of(ws):
    try:
        with open(os.path.join(ws, "plan.json")) as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}


def gray_frames(path, w, h):
    """Every frame of a video or image as a bytes object of w*h luma values."""
    p = subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-i", path, "-f", "rawvideo", "-pix_fmt", "gray", "-"],
                       capture_output=True, timeout=120)
    data = p.stdout
    n = w * h
    return [data[i:i + n] for i in range(0, len(data) - n + 1, n)]


def text_mask(frame, w, h, white):
    """Set of (x, y) whose luma says text of that colour (white > 200, dark < 40)."""
    out = set()
    for y in range(h):
        row = frame[y * w:(y + 1) * w]
        for x, v in enumerate(row):
            if (v > 200) if white else (v < 40):
                out.add((x, y))
    return out


def check_inside_frame(c, dest):
    # wide capitals make long lines: the layout must measure them, and keep them inside the pan
    prompt = ("OUR ROCKET MOWS WIDE MEADOWS AT NIGHT. FIRE WARMS WOMEN AND MEN. SUNSET MOWS WIDE MEADOWS. "
              "WAVES MOW WIDE MEADOWS. FOREST WOMEN MOW MEADOWS.")
    ok, out, ws = render(dest, "inside", {"prompt": prompt})
    if not c.check(ok, "the five-camera prompt renders"):
        return
    plan = plan_of(ws)
    scenes = plan.get("scenes", [])
    c.eq(sorted(set(s.get("camera") for s in scenes)), ["drift", "pan_down", "pan_left", "pan_right", "pan_up"],
         "the scenes' words chose every camera move")
    frames = gray_frames(os.path.join(ws, "output", "final_video.mp4"), W, H)
    c.check(len(frames) >= 5 * FPS, "decoded %d frames" % len(frames))
    fade = 0.4
    bad, seen = [], {}
    for i, frame in enumerate(frames):
        t = (i + 0.5) / FPS
        k = next((j for j, s in enumerate(scenes) if s["start"] <= t < s["start"] + s["duration"]), None)
        if k is None:
            continue
        s = scenes[k]
        white = s["text_color"].lower() == "#ffffff"
        if not white and (t - s["start"] < fade + 0.1 or s["start"] + s["duration"] - t < fade + 0.1):
            continue  # fades darken the background towards dark text's colour
        m = text_mask(frame, W, H, white)
        if len(m) > 30:
            seen[k] = seen.get(k, 0) + 1
        edge = [p for p in m if p[0] <= 1 or p[1] <= 1 or p[0] >= W - 2 or p[1] >= H - 2]
        if len(edge) > 2:
            bad.append((i, s.get("camera"), len(edge), min(p[0] for p in m), max(p[0] for p in m)))
    c.check(not bad, "no frame has text on its edge (frame, camera, edge pixels, min x, max x): %r" % bad[:8])
    c.eq(sorted(seen), list(range(len(scenes))), "every scene's text was seen in its frames")


CLOSERS = ("\u00bb", "\u201d", "\u2019", ")", "]", "\u300d")
ENDS = (".", "!", "?", "\u2026", "\u3002", "\uff01", "\uff1f") + CLOSERS


def check_sentences_and_voice(c, dest):
    prompt = ("\u00ab La ville s'endort sous les \u00e9toiles. \u00bb Puis la pluie tombe doucement sur les toits "
              "gris de la vieille ville, pendant que le vent se l\u00e8ve et que les bateaux rentrent au port. "
              "\u00ab Viens ! \u00bb dit-elle. Le silence revient.")
    tools = os.path.join(dest, "bin")
    os.makedirs(tools)
    log = os.path.join(dest, "espeak-argv.txt")
    real = subprocess.run(["sh", "-c", "command -v espeak-ng"], capture_output=True, text=True).stdout.strip()
    h.write_script(tools, "espeak-ng", '#!/bin/sh\necho "$@" >> %s\nexec %s "$@"\n' % (log, real))
    env = dict(os.environ, PATH=tools + os.pathsep + os.environ.get("PATH", ""))
    ok, out, ws = render(dest, "french", {"prompt": prompt, "segment_duration_seconds": 2.5}, env)
    if not c.check(ok, "the French prompt renders"):
        return
    plan = plan_of(ws)
    texts = [s["text"] for s in plan.get("scenes", [])]
    print("       scenes: %r" % texts, flush=True)
    c.check(len(texts) >= 3, "several scenes")
    c.check(not any(t.startswith(CLOSERS) for t in texts), "no scene starts with a closing mark")
    c.eq(texts[:1], ["\u00ab La ville s'endort sous les \u00e9toiles. \u00bb"], "the first sentence is its own scene")
    c.check(texts[-1:] == ["Le silence revient."] or (texts and texts[-1].endswith("Le silence revient.")),
            "the last scene ends with the last sentence")
    c.eq(plan.get("language"), "fr", "the plan's language is French")
    c.eq(plan.get("voice"), "fr-fr", "the plan's voice is fr-fr")
    try:
        with open(log) as f:
            calls = f.read().splitlines()
    except OSError:
        calls = []
    c.check(calls and all(" -v fr-fr " in " %s " % a for a in calls),
            "every espeak-ng run used -v fr-fr: %r" % calls[:2])
    ok, out, ws = render(dest, "override", {"prompt": "La nuit tombe sur la ville.", "voice": "de"}, env)
    c.check(ok and plan_of(ws).get("voice") == "de", "pipeline.voice de overrides the detected language")


def normalised(m):
    """The mask moved so its bounding box starts at (0, 0)."""
    if not m:
        return m
    x0, y0 = min(p[0] for p in m), min(p[1] for p in m)
    return {(x - x0, y - y0) for x, y in m}


def two_glyphs(ws, scene):
    """The text pixels of keyframe 1, cut at the widest empty column gap into (left, right) masks."""
    frames = gray_frames(os.path.join(ws, "keyframes", "001.png"), W, H)
    m = text_mask(frames[0], W, H, scene["text_color"].lower() == "#ffffff") if frames else set()
    cols = sorted(set(p[0] for p in m))
    if len(cols) < 2:
        return set(), set()
    gap, cut = max((cols[i + 1] - cols[i], cols[i]) for i in range(len(cols) - 1))
    return normalised({p for p in m if p[0] <= cut}), normalised({p for p in m if p[0] > cut})


def fonts_covering(cp):
    p = subprocess.run(["fc-list", "--format", "%{file}\n", ":charset=%x" % cp], capture_output=True, text=True)
    return set(p.stdout.split())


def check_glyphs(c, dest):
    pairs = [("cjk", "\u6771", "\u6d77"), ("emoji", "\U0001F525", "\U0001F305")]
    for name, a, b in pairs:
        ok, out, ws = render(dest, "glyphs-" + name, {"prompt": "%s %s" % (a, b)})
        plan = plan_of(ws)
        scenes = plan.get("scenes", [])
        if not c.check(ok and len(scenes) == 1, "%s: a scene of two characters renders" % name):
            continue
        ma, mb = two_glyphs(ws, scenes[0])
        union = len(ma | mb) or 1
        iou = len(ma & mb) / union
        c.check(len(ma) > 50 and len(mb) > 50, "%s: both characters are drawn (%d, %d pixels)" % (name, len(ma), len(mb)))
        c.check(iou < 0.6, "%s: the two characters have different shapes, not the missing-glyph box (overlap %.2f)"
                % (name, iou))
        for ch in (a, b):
            try:
                with open(os.path.join(ws, "scenes", "001.json")) as f:
                    fonts = [r["font"] for r in json.load(f)["runs"] if ch in r["text"]]
            except (OSError, ValueError, KeyError):
                fonts = []
            c.check(fonts and set(fonts) <= fonts_covering(ord(ch)),
                    "%s: U+%04X is drawn with a font that covers it (%r)" % (name, ord(ch), fonts))


def check_palette(c, dest):
    ok, out, ws = render(dest, "palette", {"prompt": "Night falls. Dawn breaks."})
    scenes = plan_of(ws).get("scenes", [])
    if not c.check(ok and len(scenes) == 2, "night/dawn renders two scenes"):
        return
    c.eq([s.get("theme") for s in scenes], ["night", "dawn"], "the scenes' themes come from their words")
    means = []
    for k in (1, 2):
        frames = gray_frames(os.path.join(ws, "keyframes", "%03d.png" % k), W, H)
        means.append(sum(frames[0]) / len(frames[0]) if frames else -1)
    c.check(0 <= means[0] < 60 and means[1] > 150 and means[0] < means[1],
            "the night keyframe is darker than the dawn one (mean luma %.0f vs %.0f)" % tuple(means))


def body(c):
    dest = tempfile.mkdtemp(prefix="reel-render-text-")
    try:
        for name, fn in (("inside frame", check_inside_frame), ("sentences and voice", check_sentences_and_voice),
                         ("glyphs", check_glyphs), ("palette", check_palette)):
            try:
                fn(c, dest)
            except Exception as e:  # noqa: BLE001 - one failure, the next part still runs
                c.fail("%s: %s: %s" % (name, type(e).__name__, e))
    finally:
        if os.environ.get("REEL_KEEP_TMP") != "1":
            subprocess.run(["rm", "-rf", dest], check=False)


if __name__ == "__main__":
    raise SystemExit(h.run(body))
