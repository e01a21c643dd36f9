#!/usr/bin/env python3
"""A second computation of `streetsight eval`'s numbers, in plain Python (no numpy), from the COCO labels
and the detections the report lists in COCO's results format. It follows pycocotools' COCOeval
(evaluateImg: greedy matching by score per image, crowd/ignored boxes last; accumulate: precision made
monotone, 101 recall points), without area ranges or a cap on detections per image, as the report states.

    python3 scripts/eval_check.py LABELS.json REPORT.json   → prints JSON: per model, per class
        ap50, ap50_95, precision, recall, f1 at the model's threshold, and the frame count MAE.
"""
import json
import struct
import sys

IOUS = [0.5 + 0.05 * i for i in range(10)]


def f32(x):
    return struct.unpack("f", struct.pack("f", x))[0]


def iou(d, g):
    dx1, dy1, dw, dh = d
    gx1, gy1, gw, gh = g
    iw = min(dx1 + dw, gx1 + gw) - max(dx1, gx1)
    ih = min(dy1 + dh, gy1 + gh) - max(dy1, gy1)
    if iw <= 0 or ih <= 0:
        return 0.0
    inter = iw * ih
    return inter / (dw * dh + gw * gh - inter)


def evaluate_image(gts, dets, t):
    """gts: [(bbox, ignore)], dets: [(score, bbox)] sorted by score desc. Returns per det: 1 hit, 0 miss, None ignored."""
    order = sorted(range(len(gts)), key=lambda i: gts[i][1])
    gts = [gts[i] for i in order]
    matched = [False] * len(gts)
    out = []
    for score, d in dets:
        best, m = min(t, 1 - 1e-10), -1
        for gi, (g, ign) in enumerate(gts):
            if matched[gi] and not ign:
                continue
            if m > -1 and not gts[m][1] and ign:
                break
            v = iou(d, g)
            if v < best:
                continue
            best, m = v, gi
        if m == -1:
            out.append(0)
        elif gts[m][1]:
            out.append(None)
        else:
            matched[m] = True
            out.append(1)
    return out


def accumulate(scored, npos):
    scored = sorted(scored, key=lambda s: -s[0])
    tp = fp = 0
    rc, pr = [], []
    for _, hit in scored:
        tp += hit
        fp += 1 - hit
        rc.append(tp / npos if npos else 0.0)
        pr.append(tp / (tp + fp))
    for i in range(len(pr) - 1, 0, -1):
        if pr[i] > pr[i - 1]:
            pr[i - 1] = pr[i]
    q = []
    for k in range(101):
        r = k / 100
        # searchsorted(rc, r, side="left")
        lo, hi = 0, len(rc)
        while lo < hi:
            mid = (lo + hi) // 2
            if rc[mid] < r:
                lo = mid + 1
            else:
                hi = mid
        q.append(pr[lo] if lo < len(pr) else 0.0)
    return sum(q) / len(q)


def main(labels_path, report_path):
    labels = json.load(open(labels_path))
    report = json.load(open(report_path))
    names = {c["id"]: c["name"] for c in labels["categories"]}
    images = sorted(labels["images"], key=lambda i: i["file_name"])
    result = {}
    for model in report["models"]:
        op = f32(model["score_threshold"])
        per_class = {}
        for cid, name in names.items():
            gt = {i["id"]: [] for i in images}
            for a in labels["annotations"]:
                if a["category_id"] == cid:
                    gt[a["image_id"]].append((a["bbox"], bool(a.get("iscrowd", 0))))
            npos = sum(1 for boxes in gt.values() for _, ign in boxes if not ign)
            if npos == 0:
                continue
            dt = {i["id"]: [] for i in images}
            for d in model["detections"]:
                if d["category_id"] == cid:
                    dt[d["image_id"]].append((d["score"], d["bbox"]))
            aps, op_hits = [], None
            for t in IOUS:
                scored = []
                for img in images:
                    dets = sorted(dt[img["id"]], key=lambda s: -s[0])
                    for (score, _), o in zip(dets, evaluate_image(gt[img["id"]], dets, t)):
                        if o is not None:
                            scored.append((score, o))
                aps.append(accumulate(scored, npos))
                if op_hits is None:
                    op_hits = [o for s, o in scored if s >= op]
            tp = sum(op_hits)
            fp = len(op_hits) - tp
            p = tp / (tp + fp) if tp + fp else 0.0
            r = tp / npos
            per_class[name] = {
                "ap50": aps[0],
                "ap50_95": sum(aps) / len(aps),
                "precision": p,
                "recall": r,
                "f1": 2 * p * r / (p + r) if p + r else 0.0,
                "tp": tp,
                "fp": fp,
            }
        count_name = report["count_class"]
        count_from = max(op, f32(report["count_score"]))
        cid = next(k for k, v in names.items() if v == count_name)
        errors = []
        for img in images:
            truth = sum(1 for a in labels["annotations"]
                        if a["image_id"] == img["id"] and a["category_id"] == cid and not a.get("iscrowd", 0))
            found = sum(1 for d in model["detections"]
                        if d["image_id"] == img["id"] and d["category_id"] == cid and d["score"] >= count_from)
            errors.append(abs(found - truth))
        result[model["name"] + " " + model["path"]] = {
            "classes": per_class,
            "count_mae": sum(errors) / len(errors),
        }
    json.dump(result, sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
