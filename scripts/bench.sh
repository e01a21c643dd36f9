#!/usr/bin/env bash
# The end-to-end benchmark of docs/benchmarks.md in one command: N simulated 1080p/720p cameras (RTSP from a
# separate process), a local mosquitto, and — measured the same way over the same window — the release agent,
# the Python baseline (benches/baseline/) and the same streams decoded alone; ONNX Runtime alone; then the
# capacity and overload runs. Rows are JSON lines in $OUT (default target/bench/e2e-<date>.jsonl); the
# tables are made from them with `python3 benches/e2e/report.py FILE`.
#
#   scripts/bench.sh                       # the whole matrix (about 45 minutes on 2 cores)
#   scripts/bench.sh --only agent          # one subject (agent | baseline | decode | capacity | inference)
#   CAMERAS="1 4" RES="1080p" scripts/bench.sh --only agent
#
# Run it on an otherwise idle machine: the subjects share the cores with nothing but the camera server and
# the broker, whose CPU is reported separately.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
if ! command -v cargo >/dev/null 2>&1 && [[ -x "$HOME/.cargo/bin/cargo" ]]; then
  export PATH="$HOME/.cargo/bin:$PATH"
fi

ONLY=""
[[ "${1:-}" == "--only" ]] && ONLY="${2:?--only needs a subject}"
CAMERAS="${CAMERAS:-1 4 8 16 24}"
RES="${RES:-1080p 720p}"
SAMPLINGS="${SAMPLINGS:-keyframe interval}"
THREADS="${THREADS:-1}"
WORKERS="${WORKERS:-2}"
WARMUP="${WARMUP:-8}"
WINDOW="${WINDOW:-20}"
OUT="${OUT:-target/bench/e2e-$(date -u +%Y%m%d-%H%M).jsonl}"
mkdir -p "$(dirname "$OUT")"

want() { [[ -z "$ONLY" || "$ONLY" == "$1" ]]; }

bash scripts/setup.sh
want baseline && bash benches/baseline/setup.sh target/baseline-venv
cargo build --release --locked
bash benches/e2e/media.sh target/bench-media

drive() { python3 benches/e2e/driver.py --threads "$THREADS" --workers "$WORKERS" --warmup "$WARMUP" --window "$WINDOW" \
  --out "$OUT" "$@" || echo "bench: run failed: $*" >&2; }

if want inference; then
  for t in 1 2; do
    cargo bench --bench inference_cpu -- --threads "$t" --runs 300 | tail -1 |
      python3 -c 'import json,sys; r=json.loads(sys.stdin.read()); r["subject"]="inference"; print(json.dumps(r))' |
      tee -a "$OUT"
  done
fi
for subject in agent decode baseline; do
  want "$subject" || continue
  for res in $RES; do
    for sampling in $SAMPLINGS; do
      for n in $CAMERAS; do
        drive --subject "$subject" --media "target/bench-media/$res-gop2s.mp4" --sampling "$sampling" \
          --interval-ms 2000 --cameras "$n"
      done
    done
  done
done
if want capacity; then
  # 1080p cameras with a 1 s GOP: keyframe-only sampling analyses 1 frame per camera per second.
  for n in ${CAPACITY:-24 32}; do
    drive --subject agent --media target/bench-media/1080p-gop1s.mp4 --sampling keyframe --cameras "$n"
  done
  # Overload: twice the cameras that fit, watched for 2 minutes — RSS must stay flat.
  python3 benches/e2e/driver.py --subject agent --media target/bench-media/1080p-gop1s.mp4 --sampling keyframe \
    --cameras "${OVERLOAD:-48}" --threads "$THREADS" --workers "$WORKERS" --warmup "$WARMUP" --window "${OVERLOAD_WINDOW:-120}" \
    --rss-trace --out "$OUT" || echo "bench: overload run failed" >&2
fi
echo "bench: rows in $OUT; tables: python3 benches/e2e/report.py $OUT" >&2
