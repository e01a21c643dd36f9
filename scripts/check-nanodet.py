#!/usr/bin/env python3
"""Independent sanity check of models/nanodet-g-416/model.onnx with onnxruntime (reference only, not used in CI).

Needs: pip install onnxruntime==1.32.0 numpy opencv-python-headless   (Python >= 3.11 for tomllib)

    scripts/check-nanodet.py vtest.avi person.jpg [--frame 100] [--threshold 0.5] [--annotate /tmp/out]

Images are read as they are; for a video the 0-based frame --frame is used. Prints the model's I/O, then every
detection at or above the threshold (class, score, box in original pixels) and the median inference time.
Pre/post-processing follows manifest.toml: stretch to 416x416, BGR, (x - mean) / std; per stride s the cell
(i, j) has centre ((j + .5)s, (i + .5)s), each side is the expectation of a softmax over reg_max + 1 bins times s;
class-wise NMS.
"""
import argparse
import pathlib
import statistics
import time
import tomllib

import cv2
import numpy as np
import onnxruntime as ort

bundle = pathlib.Path(__file__).resolve().parent.parent / "models" / "nanodet-g-416"
ap = argparse.ArgumentParser()
ap.add_argument("inputs", nargs="+")
ap.add_argument("--model", default=str(bundle / "model.onnx"))
ap.add_argument("--frame", type=int, default=100)
ap.add_argument("--threshold", type=float, default=0.5)
ap.add_argument("--threads", type=int, default=1)
ap.add_argument("--annotate", help="directory for annotated copies of the inputs")
args = ap.parse_args()

manifest = tomllib.loads((pathlib.Path(args.model).parent / "manifest.toml").read_text())
labels, nms_iou = manifest["labels"], manifest["nms_iou"]
mean = np.array(manifest["input"]["mean"], np.float32)
std = np.array(manifest["input"]["std"], np.float32)
size, reg_max = manifest["input"]["width"], manifest["output"]["reg_max"]

opts = ort.SessionOptions()
opts.intra_op_num_threads = args.threads
sess = ort.InferenceSession(args.model, opts, providers=["CPUExecutionProvider"])
(inp,) = sess.get_inputs()
print(f"input  {inp.name} {inp.type} {inp.shape}")
names = [o.name for o in sess.get_outputs()]


def load(path):
    if path.lower().endswith((".jpg", ".jpeg", ".png", ".bmp")):
        img = cv2.imread(path)
    else:
        cap = cv2.VideoCapture(path)
        for _ in range(args.frame):  # read sequentially; seeking in AVI/MJPEG/XviD is not always exact
            cap.grab()
        ok, img = cap.read()
        assert ok, f"{path}: no frame {args.frame}"
    assert img is not None, path
    return img


def iou(a, b):
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def detect(bgr):
    x = (cv2.resize(bgr, (size, size)).astype(np.float32) - mean) / std
    x = np.ascontiguousarray(x.transpose(2, 0, 1)[None])
    times = []
    for _ in range(11):  # first run is warm-up
        t = time.perf_counter()
        outs = sess.run(None, {inp.name: x})
        times.append(time.perf_counter() - t)
    by_rows = {}  # rows -> {"scores": array, "dist": array}; the row count identifies the stride
    for name, out in zip(names, outs):
        kind = "scores" if out.shape[-1] == len(labels) else "dist"
        by_rows.setdefault(out.shape[1], {})[kind] = (name, out[0])
    cands = []
    for stride in manifest["output"]["strides"]:
        cols = size // stride
        (_, scores), (_, dist) = by_rows[cols * cols]["scores"], by_rows[cols * cols]["dist"]
        d = dist.reshape(-1, 4, reg_max + 1)
        p = np.exp(d - d.max(-1, keepdims=True))
        sides = (p / p.sum(-1, keepdims=True) * np.arange(reg_max + 1)).sum(-1) * stride  # l, t, r, b
        cell, cls = np.nonzero(scores >= args.threshold)
        cx, cy = (cell % cols + 0.5) * stride, (cell // cols + 0.5) * stride
        for k, c, x0, y0, x1, y1 in zip(cell, cls, cx - sides[cell, 0], cy - sides[cell, 1],
                                        cx + sides[cell, 2], cy + sides[cell, 3]):
            cands.append((float(scores[k, c]), int(c), (x0, y0, x1, y1)))
    cands.sort(key=lambda c: -c[0])
    kept = []
    for cand in cands:
        if all(k[1] != cand[1] or iou(k[2], cand[2]) <= nms_iou for k in kept):
            kept.append(cand)
    h, w = bgr.shape[:2]
    sx, sy = w / size, h / size
    dets = [(s, c, (max(0, b[0] * sx), max(0, b[1] * sy), min(w, b[2] * sx), min(h, b[3] * sy))) for s, c, b in kept]
    return dets, times, by_rows, outs


for n, path in enumerate(args.inputs):
    img = load(path)
    dets, times, by_rows, outs = detect(img)
    if n == 0:
        for name, out in zip(names, outs):
            rows = out.shape[1]
            kind = "scores" if out.shape[-1] == len(labels) else "box distribution"
            extra = f", range [{out.min():.3g}, {out.max():.3g}]" if kind == "scores" else ""
            print(f"output {name} {list(out.shape)} stride {size // int(rows ** 0.5)} {kind}{extra}")
    print(f"\n{path} ({img.shape[1]}x{img.shape[0]}): {len(dets)} detections >= {args.threshold}, "
          f"inference median {statistics.median(times[1:]) * 1000:.1f} ms ({args.threads} thread(s), "
          f"first run {times[0] * 1000:.1f} ms)")
    for s, c, b in dets:
        print(f"  {labels[c]:<12} {s:.3f}  ({b[0]:.0f}, {b[1]:.0f}, {b[2]:.0f}, {b[3]:.0f})")
    if args.annotate:
        out_dir = pathlib.Path(args.annotate)
        out_dir.mkdir(parents=True, exist_ok=True)
        for s, c, b in dets:
            cv2.rectangle(img, (int(b[0]), int(b[1])), (int(b[2]), int(b[3])), (0, 0, 255), 2)
            cv2.putText(img, f"{labels[c]} {s:.2f}", (int(b[0]), int(b[1]) + 12), cv2.FONT_HERSHEY_SIMPLEX,
                        0.4, (0, 255, 255), 1)
        cv2.imwrite(str(out_dir / (pathlib.Path(path).stem + ".png")), img)
