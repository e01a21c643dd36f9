#!/usr/bin/env bash
# The fleet benchmark: FLEET_POLES simulated poles (default 1,000; each the agent's own uplink and outbox)
# on a 3-node NATS JetStream cluster with two bridge replicas, PostgreSQL and the reference work-order
# server; one NATS node killed and one replica crashed mid-run (tests/fleet.rs). Prints the figures line
# recorded in docs/benchmarks.md. Needs what `bash scripts/test.sh` installs (run it once first).
set -euo pipefail
cd "$(dirname "$0")/.."
export FLEET_POLES="${FLEET_POLES:-1000}"
export FLEET_SECONDS="${FLEET_SECONDS:-120}"
export FLEET_RATE="${FLEET_RATE:-12}"
# 1,000 poles hold ~4,000 descriptors (a socket and an SQLite outbox each).
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
[[ "$(ulimit -n)" -ge $((FLEET_POLES * 5)) ]] || { echo "fleet-bench: ulimit -n $(ulimit -n) is too low for $FLEET_POLES poles" >&2; exit 1; }
cargo test --release --locked --test fleet -- --nocapture 2>&1 | tee target/fleet-bench.log | grep '^fleet:'
