#!/usr/bin/env bash
# Create the Python environment for the baseline agent (benches/baseline/agent.py).
#
#   bash benches/baseline/setup.sh [VENV_DIR]      # default: target/baseline-venv (relative to the repo root)
#
# Debian 12, as root. Idempotent: apt packages are installed only when missing, the venv is created only when
# absent, and pip leaves already-satisfied pins alone. The venv sees the system site-packages because the
# GStreamer bindings (`gi`) come from Debian, not from PyPI.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
VENV="${1:-$ROOT/target/baseline-venv}"
REQS="$ROOT/benches/baseline/requirements.txt"

say() { printf 'baseline-setup: %s\n' "$*"; }

# python3-gi + the GIR files give `from gi.repository import Gst, GstApp`; the plugin packages hold rtspsrc,
# rtph264depay (good), h264parse (bad), avdec_h264 (libav), videoconvert/appsink (base).
APT_PACKAGES=(
  python3-venv python3-gi gir1.2-gst-plugins-base-1.0 gir1.2-gstreamer-1.0
  gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad gstreamer1.0-libav
)
missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  [[ "$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)" == "install ok installed" ]] || missing+=("$pkg")
done
if ((${#missing[@]})); then
  say "installing missing apt packages: ${missing[*]}"
  apt-get update
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
else
  say "apt packages present"
fi

# The system interpreter on purpose: python3-gi is built for it, not for any other Python on PATH.
if [[ ! -x "$VENV/bin/python" ]]; then
  say "creating venv $VENV"
  /usr/bin/python3 -m venv --system-site-packages "$VENV"
fi
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r "$REQS"
"$VENV/bin/python" - <<'PY'
import gi
gi.require_version("Gst", "1.0")
gi.require_version("GstApp", "1.0")
from gi.repository import Gst, GstApp  # noqa: F401
import cv2, numpy, onnxruntime, paho.mqtt
print(f"baseline-setup: ready (onnxruntime {onnxruntime.__version__}, numpy {numpy.__version__}, "
      f"opencv {cv2.__version__}, paho-mqtt {paho.mqtt.__version__})")
PY
say "run: $VENV/bin/python $ROOT/benches/baseline/agent.py --help"
