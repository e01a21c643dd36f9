#!/usr/bin/env bash
# Build streetsight in release mode and run its demo; extra arguments are
# passed through to `streetsight demo`.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

if ! command -v cargo >/dev/null 2>&1 && [[ -x "$HOME/.cargo/bin/cargo" ]]; then
  export PATH="$HOME/.cargo/bin:$PATH"
fi

bash scripts/setup.sh
printf 'demo: building release binary\n'
cargo build --release --locked
exec target/release/streetsight demo "$@"
