#!/usr/bin/env bash
# Prepare a Debian 12 (bookworm) machine, as root, for building, testing and
# running the streetsight demo. Safe to run repeatedly: every step checks
# first and does nothing if its work is already done.
#
# Environment knobs:
#   ORT_ARCH  target architecture of the ONNX Runtime library to fetch
#             (x86_64 | aarch64; default: this machine's `uname -m`).
#   ORT_DIR   where to place it (default: .cache/onnxruntime for the host
#             architecture, .cache/onnxruntime-<arch> for any other, so a
#             cross download never replaces the library the host build loads).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

say() { printf 'setup: %s\n' "$*"; }
warn() { printf 'setup: WARNING: %s\n' "$*" >&2; }
die() { printf 'setup: ERROR: %s\n' "$*" >&2; exit 1; }

# ---------------------------------------------------------------------------
# (a) Debian packages
# ---------------------------------------------------------------------------
APT_PACKAGES=(
  pkg-config build-essential
  libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev libgstrtspserver-1.0-dev
  gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad
  gstreamer1.0-plugins-ugly gstreamer1.0-libav gstreamer1.0-tools
  mosquitto mosquitto-clients
  openssl ffmpeg python3 python3-venv ca-certificates curl unzip
  chromium chromium-driver fonts-wqy-microhei
  postgresql nats-server
)

command -v dpkg-query >/dev/null 2>&1 \
  || die "dpkg-query not found; this script targets Debian 12 (bookworm)"

missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  status="$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)"
  [[ "$status" == "install ok installed" ]] || missing+=("$pkg")
done

if ((${#missing[@]})); then
  [[ "$(id -u)" -eq 0 ]] \
    || die "missing packages (${missing[*]}) and not running as root; rerun as root"
  say "installing ${#missing[@]} missing apt package(s): ${missing[*]}"
  apt-get update
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${APT_PACKAGES[@]}"
else
  say "apt packages: all ${#APT_PACKAGES[@]} present"
fi

# The mosquitto, postgresql and nats-server packages start a system broker (:1883), a system cluster (:5432)
# and a NATS server (:4222); the tests start their own on free ports (PostgreSQL as `nobody` when run as root), so keep the system
# services stopped and disabled.
stop_system_service() {
  local name="$1"
  if [[ -d /run/systemd/system ]] && command -v systemctl >/dev/null 2>&1; then
    if systemctl is-enabled --quiet "$name" 2>/dev/null \
       || systemctl is-active --quiet "$name" 2>/dev/null; then
      say "stopping and disabling the system $name service"
      systemctl disable --now "$name" || warn "could not stop/disable $name"
    fi
  elif [[ -x "/etc/init.d/$name" ]]; then
    if service "$name" status >/dev/null 2>&1; then
      say "stopping the system $name service"
      service "$name" stop || warn "could not stop $name"
    fi
  fi
}
stop_system_service mosquitto
stop_system_service postgresql
stop_system_service nats-server

# ---------------------------------------------------------------------------
# (b) ONNX Runtime shared library, project-local
# ---------------------------------------------------------------------------
ORT_VERSION=1.32.0
ORT_LIB="libonnxruntime.so.${ORT_VERSION}"
HOST_ARCH="$(uname -m)"
ORT_ARCH="${ORT_ARCH:-$HOST_ARCH}"
case "$ORT_ARCH" in
  x86_64 | amd64) ORT_ARCH=x86_64; elf_machine=62 ;;
  aarch64 | arm64) ORT_ARCH=aarch64; elf_machine=183 ;;
  *) die "unsupported ORT_ARCH '$ORT_ARCH' (expected x86_64 or aarch64)" ;;
esac
case "$HOST_ARCH" in amd64) HOST_ARCH=x86_64 ;; arm64) HOST_ARCH=aarch64 ;; esac
if [[ -z "${ORT_DIR:-}" ]]; then
  if [[ "$ORT_ARCH" == "$HOST_ARCH" ]]; then
    ORT_DIR="$ROOT/.cache/onnxruntime"
  else
    ORT_DIR="$ROOT/.cache/onnxruntime-$ORT_ARCH"
  fi
fi

# ELF e_machine of a file (62 = x86_64, 183 = aarch64); little-endian only.
elf_machine_of() { od -An -tu2 -j18 -N2 "$1" | tr -d ' '; }

if [[ ! -f "$ORT_DIR/$ORT_LIB" ]]; then
  say "fetching ONNX Runtime ${ORT_VERSION} (${ORT_ARCH}) from PyPI into ${ORT_DIR#"$ROOT"/}"
  mkdir -p "$ORT_DIR"
  work="$(mktemp -d -p "$ORT_DIR")"
  trap 'rm -rf "$work"' EXIT

  # pip: the host's if it has one, otherwise a throwaway venv (a fresh
  # bookworm has python3-venv but no python3-pip).
  pip=(python3 -m pip)
  if ! python3 -m pip --version >/dev/null 2>&1; then
    say "python3 has no pip; creating a temporary venv for the download"
    python3 -m venv "$work/venv" || die "python3 -m venv failed (is python3-venv installed?)"
    pip=("$work/venv/bin/python" -m pip)
  fi

  # Pin the wheel tag so the host's python version does not matter.
  "${pip[@]}" download "onnxruntime==${ORT_VERSION}" --no-deps --only-binary=:all: \
    --platform "manylinux_2_28_${ORT_ARCH}" --python-version 3.13 --implementation cp \
    -d "$work/wheel" \
    || die "could not download the onnxruntime==${ORT_VERSION} wheel for ${ORT_ARCH}"

  wheels=("$work"/wheel/onnxruntime-"${ORT_VERSION}"-*.whl)
  [[ -f "${wheels[0]}" ]] || die "pip reported success but no wheel was saved"
  wheel="${wheels[0]}"
  wheel_sha="$(sha256sum "$wheel" | cut -d' ' -f1)"

  member="onnxruntime/capi/${ORT_LIB}"
  if command -v unzip >/dev/null 2>&1; then
    unzip -q -j -o "$wheel" "$member" -d "$work/lib" || die "$member not found in $(basename "$wheel")"
  else
    python3 - "$wheel" "$member" "$work/lib/$ORT_LIB" <<'PY' || die "$member not found in wheel"
import shutil, sys, zipfile, os
whl, member, dest = sys.argv[1:]
os.makedirs(os.path.dirname(dest), exist_ok=True)
with zipfile.ZipFile(whl) as z, z.open(member) as src, open(dest, "wb") as out:
    shutil.copyfileobj(src, out)
PY
  fi
  [[ "$(elf_machine_of "$work/lib/$ORT_LIB")" == "$elf_machine" ]] \
    || die "extracted $ORT_LIB is not an ${ORT_ARCH} ELF library"

  cat >"$ORT_DIR/SOURCE.txt" <<EOF
onnxruntime ${ORT_VERSION} shared library, taken unmodified from the PyPI wheel
wheel:  $(basename "$wheel")
sha256: ${wheel_sha}
member: ${member}
arch:   ${ORT_ARCH}
fetched: $(date -u +%Y-%m-%dT%H:%M:%SZ) by scripts/setup.sh
EOF
  chmod 0644 "$work/lib/$ORT_LIB"
  # The library itself is the completion marker, so it is moved in last.
  mv -f "$work/lib/$ORT_LIB" "$ORT_DIR/$ORT_LIB"
  rm -rf "$work"
  trap - EXIT
  say "ONNX Runtime installed (wheel sha256 ${wheel_sha})"
else
  say "ONNX Runtime ${ORT_VERSION} (${ORT_ARCH}) already present"
fi

for link in libonnxruntime.so libonnxruntime.so.1; do
  if [[ "$(readlink "$ORT_DIR/$link" 2>/dev/null || true)" != "$ORT_LIB" ]]; then
    ln -sfn "$ORT_LIB" "$ORT_DIR/$link"
    say "linked ${ORT_DIR#"$ROOT"/}/$link -> $ORT_LIB"
  fi
done

# ---------------------------------------------------------------------------
# (c) Rust toolchain (must be preinstalled: rustup cannot be reached here)
# ---------------------------------------------------------------------------
RUST_MIN=1.92
if ! command -v cargo >/dev/null 2>&1 && [[ -x "$HOME/.cargo/bin/cargo" ]]; then
  export PATH="$HOME/.cargo/bin:$PATH"
fi
command -v cargo >/dev/null 2>&1 \
  || die "cargo not found on PATH or in \$HOME/.cargo/bin; install Rust >= ${RUST_MIN} (rustup downloads are not reachable from this machine, so it must be preinstalled)"
command -v rustc >/dev/null 2>&1 || die "cargo found but rustc is not on PATH"

rustc_ver="$(rustc --version | awk '{print $2}')"
IFS=. read -r r_major r_minor _ <<<"${rustc_ver%%-*}"
IFS=. read -r m_major m_minor <<<"$RUST_MIN"
if ((r_major < m_major || (r_major == m_major && r_minor < m_minor))); then
  die "rustc ${rustc_ver} is too old; streetsight needs >= ${RUST_MIN}"
fi
say "rustc ${rustc_ver} (>= ${RUST_MIN})"
cargo fmt --version >/dev/null 2>&1 || warn "rustfmt is missing (needed by scripts/test.sh)"
cargo clippy --version >/dev/null 2>&1 || warn "clippy is missing (needed by scripts/test.sh)"

# ---------------------------------------------------------------------------
# (d) Committed test media and model
# ---------------------------------------------------------------------------
MEDIA=tests/media/vtest.mp4
MEDIA_SHA=6721d509743b731b818be7a66c3a31c8aedc852e339c0d2e2ad6eaa3f8f570da
[[ -f "$MEDIA" ]] || die "$MEDIA is missing (it is committed to the repo; is this a full checkout?)"
got="$(sha256sum "$MEDIA" | cut -d' ' -f1)"
[[ "$got" == "$MEDIA_SHA" ]] \
  || die "$MEDIA sha256 mismatch: expected $MEDIA_SHA, got $got (Git LFS pointer or corrupted file?)"
say "$MEDIA ok"

MODEL_DIR=models/nanodet-g-416
if [[ ! -d "$MODEL_DIR" ]]; then
  warn "$MODEL_DIR/ is not there yet; detection tests and the demo will need $MODEL_DIR/model.onnx"
elif [[ ! -f "$MODEL_DIR/model.onnx" ]]; then
  die "$MODEL_DIR/model.onnx is missing"
else
  say "$MODEL_DIR/model.onnx present"
fi

say "done"
