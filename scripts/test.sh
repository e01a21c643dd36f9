#!/usr/bin/env bash
# Full check of the repo: environment setup, formatting, lints, tests, doctests.
# Prints the wall time of each step; stops at the first failing step.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

# setup.sh finds cargo in ~/.cargo/bin, but its PATH change dies with it.
if ! command -v cargo >/dev/null 2>&1 && [[ -x "$HOME/.cargo/bin/cargo" ]]; then
  export PATH="$HOME/.cargo/bin:$PATH"
fi
export RUST_BACKTRACE=1

total_start=$SECONDS
step() {
  local name="$1"; shift
  local start=$SECONDS
  printf 'test: ==> %s\n' "$name"
  if "$@"; then
    printf 'test: <== %s ok (%ds)\n' "$name" "$((SECONDS - start))"
  else
    local rc=$?
    printf 'test: <== %s FAILED with exit code %d (%ds)\n' "$name" "$rc" "$((SECONDS - start))" >&2
    exit "$rc"
  fi
}

step "setup"       bash scripts/setup.sh
step "cargo fmt"   cargo fmt --check
step "cargo clippy" cargo clippy --all-targets --locked -- -D warnings
step "cargo test"  cargo test --locked --all-targets
step "doc tests"   cargo test --doc --locked

printf 'test: all steps passed in %ds\n' "$((SECONDS - total_start))"
