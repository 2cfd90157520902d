#!/usr/bin/env bash
# bench/render_peer.sh — the peer of bench/render.sh: the same scenes rendered the
# way a typical Python-glue pipeline calls ffmpeg, one process at a time:
#   generation  one `ffmpeg` per scene: zoompan over the scene's keyframe for the
#               camera move (the same 1.15 zoom and direction as reel's plan says),
#               the same 0.4 s fades, libx264 at its default preset (medium, crf 23)
#   stitch      one `ffmpeg`: concat demuxer over the clips + the voice WAVs, video
#               re-encoded with libx264 (default preset) and the voiceover as AAC
#               (ffmpeg's defaults), +faststart
# Its inputs are what reel-render made in a workspace — keyframes/NNN.png,
# voice/NNN.wav and plan.json (scenes[].duration and .camera, fps, after the
# voiceover stretched the scenes) — copied into OUT_DIR first, so only the
# generation + stitch approach differs from reel's.
#
# usage: bench/render_peer.sh REEL_WORKSPACE OUT_DIR [WIDTHxHEIGHT]   (default 1280x720)
# Prints one line per ffmpeg run and one per step (wall and CPU seconds, the CPU of
# the ffmpeg children as bash's `time` reports it):
#   PEER_STEP  <name> <wall_s> <cpu_s>          name: clip_001 ... clip_NNN, concat
#   PEER_STAGE <generation|stitch> <wall_s> <cpu_s>
#   PEER_VIDEO <duration_s>                     (ffprobe, of OUT_DIR/output/final_video.mp4)
# Exits non-zero if an ffmpeg run fails (its log is in OUT_DIR/logs/).
set -euo pipefail

SRC=${1:?usage: render_peer.sh REEL_WORKSPACE OUT_DIR [WIDTHxHEIGHT]}
OUT=${2:?usage: render_peer.sh REEL_WORKSPACE OUT_DIR [WIDTHxHEIGHT]}
SIZE=${3:-1280x720}
ZOOM=1.15   # reel's canvas margin: the camera sees 1/1.15 of the keyframe and moves across the rest
FADE=0.4    # reel's fade in/out, seconds

mkdir -p "$OUT/keyframes" "$OUT/voice" "$OUT/clips" "$OUT/logs" "$OUT/output"
cp "$SRC/plan.json" "$OUT/plan.json"
cp "$SRC"/keyframes/[0-9][0-9][0-9].png "$OUT/keyframes/"
cp "$SRC"/voice/[0-9][0-9][0-9].wav "$OUT/voice/"
cd "$OUT"

# scene table from plan.json: index (1-based) duration frames camera, then fps on the last line
mapfile -t SCENES < <(python3 - <<'EOF'
import json
p = json.load(open("plan.json"))
fps = float(p["fps"])
for i, s in enumerate(p["scenes"]):
    print(i + 1, repr(float(s["duration"])), max(2, round(s["duration"] * fps)), s["camera"])
print("fps", repr(fps))
EOF
)
FPS=${SCENES[-1]#fps }
unset 'SCENES[-1]'
N=${#SCENES[@]}
[ "$N" -gt 0 ] || { echo "render_peer: no scenes in $SRC/plan.json" >&2; exit 1; }

TIMEFORMAT='%R %U %S'
timed() { # timed NAME LOG CMD...: runs CMD (stderr to LOG), prints PEER_STEP, adds to the step totals
  local name=$1 log=$2 t wall u s; shift 2
  if ! t=$( { time "$@" </dev/null >"$log" 2>&1; } 2>&1 ); then
    echo "render_peer: $name failed; the end of $OUT/$log:" >&2
    tail -n 5 "$log" >&2
    exit 1
  fi
  read -r wall u s <<<"$t"
  STEP_WALL=$(awk -v a="$STEP_WALL" -v b="$wall" 'BEGIN {printf "%.3f", a + b}')
  STEP_CPU=$(awk -v a="$STEP_CPU" -v u="$u" -v s="$s" 'BEGIN {printf "%.3f", a + u + s}')
  awk -v n="$name" -v w="$wall" -v u="$u" -v s="$s" 'BEGIN {printf "PEER_STEP %s %.3f %.3f\n", n, w, u + s}'
}

FF=(ffmpeg -nostdin -hide_banner -loglevel error -y)

# ---- generation: one ffmpeg per scene, one after the other ---------------------------------
STEP_WALL=0 STEP_CPU=0
: >clips.txt
for row in "${SCENES[@]}"; do
  read -r idx dur frames camera <<<"$row"
  nnn=$(printf '%03d' "$idx")
  # zoompan's x/y are the top-left of the visible window in keyframe pixels; the window
  # travels the keyframe's spare (iw - iw/zoom) in the plan's direction, as reel's crop does
  last="($frames-1)"
  cx="(iw-iw/zoom)/2" cy="(ih-ih/zoom)/2"
  case $camera in
    pan_left)  x="(iw-iw/zoom)*(1-on/$last)" y=$cy ;;
    pan_right) x="(iw-iw/zoom)*on/$last"     y=$cy ;;
    pan_up)    x=$cx y="(ih-ih/zoom)*(1-on/$last)" ;;
    pan_down)  x=$cx y="(ih-ih/zoom)*on/$last" ;;
    *)         x="(iw-iw/zoom)*on/$last" y="(ih-ih/zoom)*on/$last" ;;   # drift
  esac
  fade_out=$(awk -v d="$dur" -v f="$FADE" 'BEGIN {printf "%.4f", d - f}')
  timed "clip_$nnn" "logs/clip_$nnn.log" "${FF[@]}" -i "keyframes/$nnn.png" \
    -vf "zoompan=z=$ZOOM:x='$x':y='$y':d=$frames:s=$SIZE:fps=$FPS,fade=t=in:st=0:d=$FADE,fade=t=out:st=$fade_out:d=$FADE,format=yuv420p" \
    -frames:v "$frames" -r "$FPS" -c:v libx264 -pix_fmt yuv420p -an "clips/$nnn.mp4"
  echo "file 'clips/$nnn.mp4'" >>clips.txt
done
echo "PEER_STAGE generation $STEP_WALL $STEP_CPU"

# ---- stitch: concat + re-encode, with the voiceover -----------------------------------------
# The audio is laid out as reel lays it out (each voice 0.25 s into its scene, padded to
# the scene's length), so both videos carry the same sound.
STEP_WALL=0 STEP_CPU=0
inputs=() graph="" labels=""
for row in "${SCENES[@]}"; do
  read -r idx dur frames camera <<<"$row"
  inputs+=(-i "voice/$(printf '%03d' "$idx").wav")
  graph+="[$idx:a]adelay=250,apad=whole_dur=$dur,atrim=end=$dur,asetpts=N/SR/TB[a$idx];"
  labels+="[a$idx]"
done
graph+="${labels}concat=n=$N:v=0:a=1[aout]"
timed concat logs/concat.log "${FF[@]}" -f concat -safe 0 -i clips.txt "${inputs[@]}" \
  -filter_complex "$graph" -map 0:v -map '[aout]' -c:v libx264 -pix_fmt yuv420p -c:a aac \
  -movflags +faststart output/final_video.mp4
echo "PEER_STAGE stitch $STEP_WALL $STEP_CPU"
echo "PEER_VIDEO $(ffprobe -v error -show_entries format=duration -of csv=p=0 output/final_video.mp4)"
