#!/usr/bin/env bash
# Make the benchmark's camera streams from the committed clip (768×576, 10 fps, real street CCTV): each source
# frame becomes one frame at 25 fps (the walkers move 2.5× faster; every frame differs, as a real camera's do),
# scaled to 1080p or 720p and encoded like an IP camera's main stream: H.264 main profile, no B-frames,
# a fixed GOP without scene-cut keyframes, constant bit rate. Written once into $1 (kept between runs).
set -euo pipefail
out=${1:?usage: media.sh OUT_DIR}
root=$(cd "$(dirname "$0")/../.." && pwd)
src=$root/tests/media/vtest.mp4
mkdir -p "$out"
make() { # name width height gop bitrate
    local f=$out/$1.mp4
    [[ -s $f ]] && return
    echo "Encoding $f ($2×$3, GOP $4, $5) ..." >&2
    ffmpeg -nostdin -hide_banner -loglevel error -y -i "$src" \
        -vf "setpts=PTS/2.5,scale=$2:$3:flags=bicubic" -r 25 \
        -c:v libx264 -preset veryfast -profile:v main -bf 0 -g "$4" -keyint_min "$4" -sc_threshold 0 \
        -b:v "$5" -maxrate "$5" -bufsize "$5" -an "$f.tmp.mp4"
    mv "$f.tmp.mp4" "$f"
}
make 1080p-gop2s 1920 1080 50 4M
make 720p-gop2s 1280 720 50 2M
make 1080p-gop1s 1920 1080 25 4M
