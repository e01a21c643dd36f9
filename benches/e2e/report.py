#!/usr/bin/env python3
"""Markdown tables from the JSON lines of scripts/bench.sh (benches/e2e/driver.py rows).

  limit ratio = agent CPU-s / (the same streams decoded alone + ONNX Runtime alone × the frames the agent
                analysed), over windows of the same length, same threads
  vs baseline = (agent analysed frames per CPU-s) / (baseline analysed frames per CPU-s); RSS likewise
"""

import json
import sys


def load(path):
    rows = [json.loads(line) for line in open(path) if line.strip()]
    inference = {r["threads"]: r for r in rows if r.get("subject") == "inference"}
    runs = {}
    for r in rows:
        if r.get("subject") in ("agent", "baseline", "decode"):
            runs[(r["subject"], r["media"], r["sampling"], r["cameras"])] = r
    return inference, runs


def fmt(v, digits=2):
    return "–" if v is None else f"{v:.{digits}f}"


def per_cpu_s(r):
    """Analysed frames per CPU-second."""
    return r["analysed_fps"] / r["cpu_s_per_s"] if r and r.get("analysed_fps") and r["cpu_s_per_s"] else None


def main(path):
    inference, runs = load(path)
    keys = sorted({(m, s) for (_, m, s, _) in runs}, key=lambda k: (k[0], k[1] != "keyframe"))
    for media, sampling in keys:
        print(f"\n### {media}, {sampling} sampling\n")
        print("| cameras | agent CPU-s per camera-s | analysed fps | agent RSS MB | latency p50 / p99 ms | "
              "decode alone CPU-s/s | limit ratio | baseline CPU-s per camera-s | baseline analysed fps | "
              "baseline RSS MB | frames per CPU-s vs baseline | RSS vs baseline |")
        print("|" + "---|" * 12)
        for n in sorted({c for (_, m, s, c) in runs if (m, s) == (media, sampling)}):
            a = runs.get(("agent", media, sampling, n))
            d = runs.get(("decode", media, sampling, n))
            b = runs.get(("baseline", media, sampling, n))
            inf = inference.get(a["threads"]) if a else None
            limit = None
            if a and d and inf and a.get("analysed_fps"):
                floor = d["cpu_s_per_s"] + a["analysed_fps"] * inf["cpu_ms_per_run"] / 1000
                limit = a["cpu_s_per_s"] / floor
            speed = per_cpu_s(a) / per_cpu_s(b) if per_cpu_s(a) and per_cpu_s(b) else None
            rss = a["rss_mb_max"] / b["rss_mb_max"] if a and b else None
            lat = f"{fmt(a.get('latency_p50_ms'), 0)} / {fmt(a.get('latency_p99_ms'), 0)}" if a else "–"
            print(f"| {n} | {fmt(a and a['cpu_s_per_camera_s'], 3)} | {fmt(a and a.get('analysed_fps'))} | "
                  f"{fmt(a and a['rss_mb_max'], 0)} | {lat} | {fmt(d and d['cpu_s_per_s'], 3)} | {fmt(limit)} | "
                  f"{fmt(b and b['cpu_s_per_camera_s'], 3)} | {fmt(b and b.get('analysed_fps'))} | "
                  f"{fmt(b and b['rss_mb_max'], 0)} | {fmt(speed)}× | {fmt(rss)}× |")
    for t, r in sorted(inference.items()):
        print(f"\nONNX Runtime alone, {t} thread(s): {r['cpu_ms_per_run']:.1f} ms CPU, "
              f"{r['wall_ms_per_run']:.1f} ms wall per inference")
    rows = [json.loads(line) for line in open(path) if line.strip()]
    for r in rows:
        if r.get("rss_mb_every_10s"):
            print(f"\nOverload, {r['cameras']} cameras ({r['media']}, {r['sampling']}): analysed "
                  f"{r['analysed_fps']} fps, skipped or dropped {r['dropped_or_skipped_per_s']} frames/s, CPU {r['cpu_s_per_s']} s/s, "
                  f"RSS every 10 s (MB): {r['rss_mb_every_10s']}")


if __name__ == "__main__":
    main(sys.argv[1])
