#!/usr/bin/env bash
# bench/render.sh — the built-in renderer (build/reel-render) on a fixed five-scene
# prompt at 1280*720, 24 fps (about 25 s of video), against a peer on the same inputs:
#   - BENCH_RENDER_RUNS (3) renders, each in a fresh temporary workspace; the wall time
#     of every stage is taken from the REEL_PROGRESS lines as they stream from stdout
#     (a stage starts at the first line naming it, ends at the first line naming the
#     next stage, the last one at exit), its CPU from REEL_COST; the video's duration
#     from ffprobe. Prints the per-stage medians as seconds and as a fraction of the
#     video's duration, and the total against the target (≤ 0.3× real time).
#   - the peer, bench/render_peer.sh: the same keyframes, voice WAVs and scene timings
#     (copied from the last render's workspace) rendered the way a typical Python-glue
#     pipeline does it — one ffmpeg per scene with zoompan and libx264's default preset,
#     then concat + re-encode with the audio; reel's generation + stitch wall time is
#     reported as a ratio of the peer's.
# Writes JSON to bench/results/render-latest.json (ignored by git). Not part of the test
# suite. `make bench-render` runs it. See bench/README.md ("Renderer").
#
# Environment (all optional):
#   BENCH_RENDER_RUNS       reel renders (default 3; the table shows the median)
#   BENCH_RENDER_PEER_RUNS  peer renders (default 1; 0 skips the peer; the median is used)
#   BENCH_RENDER_OUT        where to write the JSON (default bench/results/render-latest.json)
#   BENCH_RENDER_TIMEOUT    seconds after which the run is stopped (default 180, install and build excluded)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH=$ROOT/bench
RUNS=${BENCH_RENDER_RUNS:-3}
PEER_RUNS=${BENCH_RENDER_PEER_RUNS:-1}
OUT=${BENCH_RENDER_OUT:-$BENCH/results/render-latest.json}
TIMEOUT=${BENCH_RENDER_TIMEOUT:-180}
RENDER=$ROOT/build/reel-render
FONT=/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf

say() { printf '\n== %s\n' "$*" >&2; }

# ---- 1. what the run needs ---------------------------------------------------------------
need=()
command -v ffmpeg >/dev/null && command -v ffprobe >/dev/null || need+=(ffmpeg)
command -v espeak-ng >/dev/null || need+=(espeak-ng)
[ -r "$FONT" ] || need+=(fonts-dejavu-core)
command -v python3 >/dev/null || need+=(python3)
if [ ${#need[@]} -gt 0 ]; then
  say "installing ${need[*]}"
  SUDO=; [ "$(id -u)" -eq 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

if [ ! -x "$RENDER" ]; then
  say "building reel-render"
  "$ROOT/scripts/configure.sh" "$ROOT/build"
  cmake --build "$ROOT/build" -j 2 --target reel-render
elif [ -f "$ROOT/build/CMakeCache.txt" ]; then
  # bring the binary up to date; if the tree does not build right now, measure the one there is
  cmake --build "$ROOT/build" -j 2 --target reel-render >/dev/null 2>&1 ||
    echo "bench: warning: reel-render does not build from the current tree; measuring the existing build/reel-render" >&2
fi

# ---- 2. temporary directory, processes, cleanup --------------------------------------------
WORK=$(mktemp -d /tmp/reel-render-bench.XXXXXX)
GROUPS_STARTED=()   # process-group ids: the watchdog and the driver (with reel-render, the peer and their ffmpegs)
stop_group() { # stop_group PGID: TERM, then KILL after 5 s
  local g=$1 i
  kill -TERM -- "-$g" 2>/dev/null || kill -TERM "$g" 2>/dev/null || return 0
  for i in $(seq 50); do kill -0 -- "-$g" 2>/dev/null || kill -0 "$g" 2>/dev/null || return 0; sleep 0.1; done
  kill -KILL -- "-$g" 2>/dev/null || kill -KILL "$g" 2>/dev/null || true
}
cleanup() {
  local rc=$? g
  trap - EXIT INT TERM
  for g in "${GROUPS_STARTED[@]}"; do stop_group "$g"; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
  exit $rc
}
trap cleanup EXIT
trap 'echo "bench: interrupted" >&2; exit 130' INT
trap 'echo "bench: stopped (BENCH_RENDER_TIMEOUT=${TIMEOUT}s or a signal)" >&2; exit 124' TERM
setsid bash -c "sleep $TIMEOUT; kill -TERM $$" >/dev/null 2>&1 </dev/null &
GROUPS_STARTED+=("$!")

# ---- 3. the driver: renders, reads the progress lines, runs the peer, reports --------------
cat >"$WORK/driver.py" <<'EOF'
import json, os, platform, re, statistics, subprocess, sys, time

root, work, render, out_path, runs, peer_runs = sys.argv[1:7]
runs, peer_runs = int(runs), int(peer_runs)
peer_script = os.path.join(root, "bench", "render_peer.sh")
TARGET = 0.3
STAGES = ["plan", "keyframes", "voiceover", "generation", "captions", "stitch"]
# Five sentences of 10-11 words: each is about 4.2 s of estimated speech (2.6 words/s), so
# each is one scene of segment_duration_seconds (5 s) and no two fit in one scene.
PROMPT = ("A lighthouse stands alone on a rocky cliff above the sea. "
          "At dusk its great lamp turns and sweeps across the water. "
          "A small fishing boat rides the swell home toward the harbour. "
          "Inside the keeper's room a kettle steams beside an open logbook. "
          "By morning the storm has passed and gulls circle the bay.")
CONFIG = {"prompt": PROMPT, "size": "1280*720", "fps": 24, "segment_duration_seconds": 5, "parallel_segments": 2}


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def cpu_busy(seconds=1.0):
    def idle():
        f = [int(x) for x in open("/proc/stat").readline().split()[1:]]
        return f[3] + f[4], sum(f)
    i0, t0 = idle(); time.sleep(seconds); i1, t1 = idle()
    return round(100 * (1 - (i1 - i0) / max(1, t1 - t0)), 1)


def loadavg():
    return [float(x) for x in open("/proc/loadavg").read().split()[:3]]


def probe_duration(path):
    r = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0", path],
                       capture_output=True, text=True, stdin=subprocess.DEVNULL)
    return float(r.stdout.strip()) if r.returncode == 0 and r.stdout.strip() else None


def out(cmd):
    try:
        return subprocess.run(cmd, capture_output=True, text=True, stdin=subprocess.DEVNULL).stdout.strip()
    except OSError:
        return ""


def render_once(n):
    ws = os.path.join(work, "run-%d" % n)
    os.makedirs(ws)
    with open(os.path.join(ws, "pipeline_config.yaml"), "w") as f:
        for k, v in CONFIG.items():
            f.write("%s: %s\n" % (k, json.dumps(v)))  # a JSON string is a YAML double-quoted scalar
    before = {"loadavg": loadavg(), "cpu_busy_pct": cpu_busy()}
    stderr = open(os.path.join(work, "reel-render-%d.stderr" % n), "w+")
    starts, order, cost = {}, [], {}
    t0 = time.monotonic()
    p = subprocess.Popen([render, "--config", "pipeline_config.yaml"], cwd=ws, stdin=subprocess.DEVNULL,
                         stdout=subprocess.PIPE, stderr=stderr, text=True, bufsize=1)
    for line in p.stdout:          # the reader: the time each stage is first named
        t = time.monotonic()
        m = re.match(r"REEL_PROGRESS (\d+) (\S+)", line)
        if m and m.group(2) not in starts:
            starts[m.group(2)] = t
            order.append(m.group(2))
        m = re.match(r"REEL_COST (\S+) ([0-9.]+) cpu_seconds", line)
        if m:
            cost[m.group(1)] = float(m.group(2))
    rc = p.wait()
    t_end = time.monotonic()
    if rc != 0:
        stderr.seek(0)
        log("bench: reel-render exited %d in run %d; its stderr:\n%s" % (rc, n, stderr.read()[-2000:]))
        sys.exit(1)
    wall = {}
    for i, s in enumerate(order):
        wall[s] = (starts[order[i + 1]] if i + 1 < len(order) else t_end) - starts[s]
    plan = json.load(open(os.path.join(ws, "plan.json")))
    video = probe_duration(os.path.join(ws, "output", "final_video.mp4"))
    size = os.path.getsize(os.path.join(ws, "output", "final_video.mp4"))
    total = t_end - t0
    r = {"workspace": ws, "before": before, "stages_seen": order, "startup_wall_s": round(starts[order[0]] - t0, 4),
         "stage_wall_s": {s: round(v, 4) for s, v in wall.items()}, "stage_cpu_s": cost,
         "total_wall_s": round(total, 4), "total_cpu_s": round(sum(cost.values()), 3),
         "scenes": len(plan["scenes"]), "plan_duration_s": plan["total_duration"], "video_duration_s": video,
         "video_bytes": size, "wall_over_video": round(total / video, 4) if video else None}
    log("   run %d: %.2f s wall for %.2f s of video (%d scenes) = %.3f× real time; load %s, CPU %s%% busy before"
        % (n, total, video or 0, r["scenes"], r["wall_over_video"] or 0, before["loadavg"][0], before["cpu_busy_pct"]))
    return r


def peer_once(src, n):
    dst = os.path.join(work, "peer-%d" % n)
    before = {"loadavg": loadavg(), "cpu_busy_pct": cpu_busy()}
    t0 = time.monotonic()
    p = subprocess.run(["bash", peer_script, src, dst, "1280x720"], capture_output=True, text=True,
                       stdin=subprocess.DEVNULL)
    total = time.monotonic() - t0
    if p.returncode != 0:
        log("bench: render_peer.sh exited %d:\n%s" % (p.returncode, p.stderr[-2000:]))
        sys.exit(1)
    steps, stages, video = {}, {}, None
    for line in p.stdout.splitlines():
        f = line.split()
        if f[:1] == ["PEER_STEP"]:
            steps[f[1]] = {"wall_s": float(f[2]), "cpu_s": float(f[3])}
        elif f[:1] == ["PEER_STAGE"]:
            stages[f[1]] = {"wall_s": float(f[2]), "cpu_s": float(f[3])}
        elif f[:1] == ["PEER_VIDEO"]:
            video = float(f[1])
    gs_wall = stages["generation"]["wall_s"] + stages["stitch"]["wall_s"]
    r = {"before": before, "steps": steps, "stages": stages, "generation_stitch_wall_s": round(gs_wall, 3),
         "generation_stitch_cpu_s": round(stages["generation"]["cpu_s"] + stages["stitch"]["cpu_s"], 3),
         "script_wall_s": round(total, 3), "video_duration_s": video,
         "video_bytes": os.path.getsize(os.path.join(dst, "output", "final_video.mp4"))}
    log("   peer %d: generation %.2f s + stitch %.2f s = %.2f s wall for %.2f s of video; load %s, CPU %s%% busy before"
        % (n, stages["generation"]["wall_s"], stages["stitch"]["wall_s"], gs_wall, video or 0,
           before["loadavg"][0], before["cpu_busy_pct"]))
    return r


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
machine = {"date_utc": started, "cpus": os.cpu_count(), "kernel": platform.release(),
           "cpu_model": next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), ""),
           "loadavg_start": loadavg()}
log("\n== reel-render: %d renders of a 5-scene prompt at 1280*720, 24 fps, parallel_segments 2" % runs)
reel = [render_once(i + 1) for i in range(runs)]
if any(r["scenes"] != 5 for r in reel):
    log("bench: warning: the prompt planned %s scenes, not 5" % sorted({r["scenes"] for r in reel}))

seen = [s for s in STAGES if any(s in r["stage_wall_s"] for r in reel)]
med_wall = {s: med([r["stage_wall_s"].get(s) for r in reel]) for s in seen}
med_cpu = {s: med([r["stage_cpu_s"].get(s) for r in reel]) for s in seen}
video = med([r["video_duration_s"] for r in reel])
total = med([r["total_wall_s"] for r in reel])
total_cpu = med([r["total_cpu_s"] for r in reel])
startup = med([r["startup_wall_s"] for r in reel])
ratio = total / video
reel_gs = med([r["stage_wall_s"].get("generation", 0) + r["stage_wall_s"].get("stitch", 0) for r in reel])
reel_gs_cpu = med([r["stage_cpu_s"].get("generation", 0) + r["stage_cpu_s"].get("stitch", 0) for r in reel])

peer = []
if peer_runs > 0:
    log("\n== peer (bench/render_peer.sh): the same keyframes, voice and timings; zoompan + libx264 medium, one ffmpeg at a time")
    peer = [peer_once(reel[-1]["workspace"], i + 1) for i in range(peer_runs)]

rows = [("stage", "wall s", "× video", "CPU s")]
rows.append(("(start)", "%.3f" % startup, "%.4f" % (startup / video), ""))
for s in seen:
    rows.append((s, "%.3f" % med_wall[s], "%.4f" % (med_wall[s] / video), "%.3f" % med_cpu[s] if med_cpu[s] is not None else ""))
verdict = "met" if ratio <= TARGET else "NOT met"
rows.append(("total", "%.3f" % total, "%.3f×" % ratio, "%.3f" % total_cpu))
w = [max(len(r[i]) for r in rows) for i in range(4)]
lines = []
lines.append("reel-render, median of %d: %.2f s of 1280x720 24 fps video, %d scenes" % (runs, video, reel[-1]["scenes"]))
for i, r in enumerate(rows):
    lines.append("  ".join([r[0].ljust(w[0])] + [r[k].rjust(w[k]) for k in (1, 2, 3)]))
    if i == 0 or i == len(rows) - 2:
        lines.append("  ".join("-" * x for x in w))
lines.append("target ≤ %.1f× real time: %s (total wall %.2f s / video %.2f s = %.3f×)" % (TARGET, verdict, total, video, ratio))
lines.append("all runs, total wall s: %s; × video: %s" % (
    " / ".join("%.2f" % r["total_wall_s"] for r in reel), " / ".join("%.3f" % r["wall_over_video"] for r in reel)))
peer_summary = None
if peer:
    p_gen = med([p["stages"]["generation"]["wall_s"] for p in peer])
    p_st = med([p["stages"]["stitch"]["wall_s"] for p in peer])
    p_gs = med([p["generation_stitch_wall_s"] for p in peer])
    p_gs_cpu = med([p["generation_stitch_cpu_s"] for p in peer])
    r_gen, r_st = med_wall.get("generation", 0), med_wall.get("stitch", 0)
    prow = [("generation + stitch", "reel", "peer", "reel/peer"),
            ("generation wall s", "%.2f" % r_gen, "%.2f" % p_gen, "%.3f×" % (r_gen / p_gen)),
            ("stitch wall s", "%.2f" % r_st, "%.2f" % p_st, "%.3f×" % (r_st / p_st)),
            ("generation+stitch wall s", "%.2f" % reel_gs, "%.2f" % p_gs, "%.3f×" % (reel_gs / p_gs)),
            ("generation+stitch CPU s", "%.2f" % reel_gs_cpu, "%.2f" % p_gs_cpu, "%.3f×" % (reel_gs_cpu / p_gs_cpu)),
            ("× video (gen+stitch wall)", "%.3f" % (reel_gs / video), "%.3f" % (p_gs / peer[-1]["video_duration_s"]), ""),
            ("final video, MiB", "%.2f" % (reel[-1]["video_bytes"] / 2**20), "%.2f" % (peer[-1]["video_bytes"] / 2**20),
             "%.3f×" % (reel[-1]["video_bytes"] / peer[-1]["video_bytes"]))]
    pw = [max(len(r[i]) for r in prow) for i in range(4)]
    lines.append("")
    lines.append("against the peer (reel: median of %d runs; peer: %s)" % (
        runs, "median of %d runs" % len(peer) if len(peer) > 1 else "one run"))
    for i, r in enumerate(prow):
        lines.append("  ".join([r[0].ljust(pw[0])] + [r[k].rjust(pw[k]) for k in (1, 2, 3)]))
        if i == 0:
            lines.append("  ".join("-" * x for x in pw))
    lines.append("peer steps (last run), wall s: " + ", ".join("%s %.2f" % (k, v["wall_s"]) for k, v in peer[-1]["steps"].items()))
    peer_summary = {"generation_wall_s": p_gen, "stitch_wall_s": p_st, "generation_stitch_wall_s": p_gs,
                    "generation_stitch_cpu_s": p_gs_cpu,
                    "ratio_reel_over_peer_generation_stitch_wall": round(reel_gs / p_gs, 4),
                    "ratio_reel_over_peer_generation_stitch_cpu": round(reel_gs_cpu / p_gs_cpu, 4)}
table = "\n".join(lines)
print("\n" + table, flush=True)

commit = out(["git", "-C", root, "rev-parse", "--short", "HEAD"])
if out(["git", "-C", root, "status", "--porcelain", "--", "src"]):
    commit += " + local edits in src/"
result = {
    "machine": machine,
    "setup": {"config": CONFIG, "reel_commit": commit, "reel_render": render,
              "build_type": next((l.split("=", 1)[1].strip() for l in open(os.path.join(root, "build", "CMakeCache.txt"))
                                  if l.startswith("CMAKE_BUILD_TYPE:")), "") if os.path.exists(os.path.join(root, "build", "CMakeCache.txt")) else "",
              "ffmpeg": out(["ffmpeg", "-version"]).splitlines()[0] if out(["ffmpeg", "-version"]) else "",
              "espeak_ng": out(["espeak-ng", "--version"]),
              "runs": runs, "peer_runs": len(peer),
              "stage_timing": "wall: from the first REEL_PROGRESS line naming a stage to the first naming the next (the last stage ends at exit); CPU: REEL_COST"},
    "reel": {"runs": reel, "median": {"stage_wall_s": med_wall, "stage_cpu_s": med_cpu, "startup_wall_s": startup,
                                      "total_wall_s": total, "total_cpu_s": total_cpu, "video_duration_s": video,
                                      "wall_over_video": round(ratio, 4),
                                      "generation_stitch_wall_s": reel_gs, "generation_stitch_cpu_s": reel_gs_cpu}},
    "peer": {"runs": peer, "median": peer_summary},
    "targets": {"wall_over_video_max": TARGET, "met": ratio <= TARGET},
    "table": table,
}
for r in reel:
    r.pop("workspace")
os.makedirs(os.path.dirname(out_path), exist_ok=True)
with open(out_path, "w") as f:
    json.dump(result, f, indent=2, ensure_ascii=False)
log("\nwrote %s" % out_path)
EOF

setsid python3 "$WORK/driver.py" "$ROOT" "$WORK" "$RENDER" "$OUT" "$RUNS" "$PEER_RUNS" </dev/null &
DRIVER=$!
GROUPS_STARTED+=("$DRIVER")
rc=0
wait "$DRIVER" || rc=$?
exit $rc
