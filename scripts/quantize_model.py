#!/usr/bin/env python3
"""Make an INT8 variant of a model bundle: ONNX Runtime's static quantisation (QDQ, per-channel int8
weights, uint8 activations) calibrated on frames of a clip, preprocessed exactly as the bundle's manifest
says (size, stretch, colour order, mean/std). Writes a new bundle directory with the quantised graph and a
manifest whose sha256, name and version are the new model's; the rest of the manifest is kept.

    python3 -m venv /tmp/q && /tmp/q/bin/pip install onnxruntime==1.32.0 onnx numpy
    /tmp/q/bin/python scripts/quantize_model.py models/nanodet-g-416 models/nanodet-g-416-int8 \
        --clip tests/media/vtest.mp4 --fps 1

Frames are decoded with gst-launch-1.0 (GStreamer's tools), stretched to the model's input size; a
letterbox bundle is calibrated on stretched frames too (the statistics barely differ). Measure the result
with `streetsight eval --model NEW --baseline OLD` before shipping it.
"""

import argparse
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib

import numpy as np
import onnx
import onnx.numpy_helper
from onnxruntime.quantization import (
    CalibrationDataReader,
    CalibrationMethod,
    QuantFormat,
    QuantType,
    quantize_static,
)
from onnxruntime.quantization.shape_inference import quant_pre_process


def frames(clip, width, height, fps):
    """The clip's frames as RGB uint8 arrays of the model's input size, `fps` per second."""
    with tempfile.TemporaryDirectory() as tmp:
        raw = os.path.join(tmp, "frames.rgb")
        subprocess.run(
            [
                "gst-launch-1.0", "-q",
                "filesrc", f"location={clip}", "!", "decodebin", "!", "videoconvert", "!",
                "videorate", "!", "videoscale", "add-borders=false", "!",
                f"video/x-raw,format=RGB,width={width},height={height},pixel-aspect-ratio=1/1,framerate={fps}/1",
                "!", "filesink", f"location={raw}",
            ],
            check=True,
        )
        data = np.fromfile(raw, dtype=np.uint8)
    size = width * height * 3
    return [data[i : i + size].reshape(height, width, 3) for i in range(0, len(data) - size + 1, size)]


def unquantisable(path):
    """Nodes fed a non-finite constant (a -inf padding before a max-pool, as TF's SAME pooling exports)
    and the nodes that read their output: no int8 scale can hold infinity, so these stay in float."""
    model = onnx.load(path)
    bad_inits = {
        t.name
        for t in model.graph.initializer
        if onnx.numpy_helper.to_array(t).dtype.kind == "f"
        and not np.isfinite(onnx.numpy_helper.to_array(t)).all()
    }
    nodes = [n for n in model.graph.node if bad_inits.intersection(n.input)]
    outputs = {o for n in nodes for o in n.output}
    nodes += [n for n in model.graph.node if outputs.intersection(n.input)]
    return sorted({n.name for n in nodes})


def tensor(rgb, inp):
    """One frame as the model's input tensor, as the agent's preprocessor makes it."""
    x = rgb.astype(np.float32)
    if inp.get("color", "rgb") == "bgr":
        x = x[:, :, ::-1]
    mean = np.array(inp.get("mean", [0.0, 0.0, 0.0]), dtype=np.float32)
    std = np.array(inp.get("std", [1.0, 1.0, 1.0]), dtype=np.float32)
    x = (x - mean) / std * np.float32(inp.get("scale", 1.0))
    if inp.get("layout", "nchw") == "nchw":
        x = x.transpose(2, 0, 1)
    return np.ascontiguousarray(x[np.newaxis])


class Frames(CalibrationDataReader):
    def __init__(self, name, tensors):
        self.items = iter([{name: t} for t in tensors])

    def get_next(self):
        return next(self.items, None)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("bundle")
    ap.add_argument("out")
    ap.add_argument("--clip", required=True)
    ap.add_argument("--fps", type=int, default=1)
    ap.add_argument("--method", choices=["minmax", "percentile", "entropy"], default="minmax")
    ap.add_argument("--per-tensor", action="store_true", help="one weight scale per tensor, not per channel")
    ap.add_argument("--exclude", nargs="*", default=[], help="node names left in float")
    args = ap.parse_args()

    manifest_path = os.path.join(args.bundle, "manifest.toml")
    text = open(manifest_path, encoding="utf-8").read()
    manifest = tomllib.loads(text)
    inp = manifest["input"]
    if inp.get("dtype", "f32") != "f32":
        sys.exit("only f32-input bundles can be calibrated here")
    source = os.path.join(args.bundle, manifest.get("file", "model.onnx"))
    calibration = [tensor(f, inp) for f in frames(args.clip, inp["width"], inp["height"], args.fps)]
    print(f"{len(calibration)} calibration frames from {args.clip}", file=sys.stderr)

    os.makedirs(args.out, exist_ok=True)
    target = os.path.join(args.out, "model.onnx")
    with tempfile.TemporaryDirectory() as tmp:
        prepared = os.path.join(tmp, "prepared.onnx")
        quant_pre_process(source, prepared, skip_symbolic_shape=True)
        excluded = sorted(set(unquantisable(prepared)) | set(args.exclude))
        print(f"left in float: {', '.join(excluded) or 'nothing'}", file=sys.stderr)
        method = {
            "minmax": CalibrationMethod.MinMax,
            "percentile": CalibrationMethod.Percentile,
            "entropy": CalibrationMethod.Entropy,
        }[args.method]
        quantize_static(
            prepared,
            target,
            Frames(inp["name"], calibration),
            quant_format=QuantFormat.QDQ,
            per_channel=not args.per_tensor,
            nodes_to_exclude=excluded,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            calibrate_method=method,
        )
    onnx.checker.check_model(target)
    digest = hashlib.sha256(open(target, "rb").read()).hexdigest()

    name = manifest["name"] + "-int8"
    version = manifest["version"] + "+int8"
    out = re.sub(r'(?m)^name = ".*"$', f'name = "{name}"', text, count=1)
    out = re.sub(r'(?m)^version = ".*"$', f'version = "{version}"', out, count=1)
    out = re.sub(r'(?m)^sha256 = ".*"$', f'sha256 = "{digest}"', out, count=1)
    out = re.sub(r'(?m)^file = ".*"\n', 'file = "model.onnx"\n', out, count=1)
    out = re.sub(
        r'(?m)^source = "(.*)"$',
        lambda m: f'source = "{m.group(1)}; INT8: scripts/quantize_model.py (ONNX Runtime static QDQ, per-channel, '
        f'{args.method} on {len(calibration)} frames of {os.path.basename(args.clip)}; in float: '
        f'{", ".join(excluded) or "nothing"})"',
        out,
        count=1,
    )
    with open(os.path.join(args.out, "manifest.toml"), "w", encoding="utf-8") as f:
        f.write(out)
    for extra in ("LICENSE", "NOTICE"):
        if os.path.exists(os.path.join(args.bundle, extra)):
            shutil.copy(os.path.join(args.bundle, extra), args.out)
    print(f"{target}: {os.path.getsize(target)} bytes, sha256 {digest}", file=sys.stderr)


if __name__ == "__main__":
    main()
