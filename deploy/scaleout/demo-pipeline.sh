#!/bin/sh
# A stand-in pipeline for the scale-out example (docs/pipeline-contract.md):
# run in the job's workspace with the prompt as $1, it reports progress and
# writes a one-second H.264 test video to output/final_video.mp4.
set -eu
if ! command -v ffmpeg >/dev/null 2>&1; then
  echo "ffmpeg is missing (Debian package ffmpeg)" >&2
  exit 69
fi
echo "demo pipeline for prompt: ${1:-}"
echo "REEL_PROGRESS 10 plan"
echo "REEL_PROGRESS 50 generation"
ffmpeg -nostdin -hide_banner -loglevel error -f lavfi -i testsrc2=size=320x180:rate=24:duration=1 \
  -c:v libx264 -preset ultrafast -pix_fmt yuv420p -movflags +faststart output/final_video.mp4
echo "REEL_PROGRESS 90 stitch"
