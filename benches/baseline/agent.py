#!/usr/bin/env python3
"""Baseline street-camera agent: the Python script a city engineer would write instead of streetsight.

RTSP (GStreamer via PyGObject) -> NanoDet-g 416 (onnxruntime) -> "person present" rule -> MQTT (paho-mqtt).
It exists to be measured against streetsight on the same streams, sampling and machine; see README.md.

    agent.py --model models/nanodet-g-416 --threads 1 --sampling keyframe --broker 127.0.0.1:1883 \
             --topic-prefix bench --stats-out stats.json rtsp://host:8554/cam rtsp://host:8554/cam2

One thread per camera pulls decoded BGR frames from an appsink and puts the sampled ones into one bounded queue
(oldest dropped when full); one inference thread (--workers) runs the shared ONNX Runtime session, counts
persons and, at most every --event-every-s per camera, publishes a JPEG with the person boxes and then a JSON
event (both QoS 1). SIGTERM/SIGINT (or --duration) stops it and writes the JSON stats to --stats-out.
"""
import argparse
import collections
import dataclasses
import datetime
import json
import logging
import pathlib
import signal
import sys
import threading
import time
import tomllib
import uuid

import cv2
import gi
import numpy as np
import onnxruntime as ort
import paho.mqtt.client as mqtt

gi.require_version("Gst", "1.0")
gi.require_version("GstApp", "1.0")
gi.require_version("GstVideo", "1.0")
from gi.repository import Gst, GstApp, GstVideo  # noqa: E402,F401  (GstApp registers AppSink's methods)

log = logging.getLogger("baseline")

PERSON_SCORE = 0.5  # person counting wants ~0.5: at 0.35 cones and litter become low-score people


@dataclasses.dataclass
class Frame:
    camera: str
    image: np.ndarray  # H x W x 3 BGR, uint8
    captured_at: float  # time.time() when the frame left the appsink


@dataclasses.dataclass
class Detection:
    label: str
    score: float
    box: tuple  # x0, y0, x1, y1 in frame pixels


class FrameQueue:
    """Bounded queue that drops the oldest frame when full: a stale frame is worth less than a new one."""

    def __init__(self, capacity):
        self._items = collections.deque()
        self._capacity = capacity
        self._cond = threading.Condition()
        self.dropped = 0

    def put(self, item):
        with self._cond:
            if len(self._items) >= self._capacity:
                self._items.popleft()
                self.dropped += 1
            self._items.append(item)
            self._cond.notify()

    def get(self, timeout):
        with self._cond:
            if not self._items:
                self._cond.wait(timeout)
            return self._items.popleft() if self._items else None


class Stats:
    def __init__(self, cameras):
        self.lock = threading.Lock()
        self.received = {c: 0 for c in cameras}  # each written only by its camera thread
        self.analysed = {c: 0 for c in cameras}
        self.inference_ms = []
        self.latency_s = []
        self.events_published = 0
        self.events_acked = 0


# ---------------------------------------------------------------------------------------------------------------
# Detector: NanoDet-g 416 as described by the bundle's manifest.toml
# ---------------------------------------------------------------------------------------------------------------
class NanoDet:
    def __init__(self, bundle, threads):
        bundle = pathlib.Path(bundle)
        m = tomllib.loads((bundle / "manifest.toml").read_text())
        self.labels = m["labels"]
        self.score_threshold = m["score_threshold"]
        self.nms_iou = m["nms_iou"]
        self.size = m["input"]["width"]  # square input; resize is a plain stretch
        self.mean = np.array(m["input"]["mean"], np.float32)
        self.std = np.array(m["input"]["std"], np.float32)
        self.input_name = m["input"]["name"]
        self.strides = m["output"]["strides"]
        self.reg_max = m["output"]["reg_max"]
        self.output_names = m["output"]["scores"] + m["output"]["boxes"]  # per stride, in stride order
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(bundle / m["file"]), opts, providers=["CPUExecutionProvider"])

    def detect(self, bgr):
        """Returns (detections, inference seconds)."""
        x = cv2.resize(bgr, (self.size, self.size), interpolation=cv2.INTER_LINEAR)
        x = (x.astype(np.float32) - self.mean) / self.std
        x = np.ascontiguousarray(x.transpose(2, 0, 1)[None])
        t = time.perf_counter()
        outs = self.session.run(self.output_names, {self.input_name: x})
        took = time.perf_counter() - t
        n = len(self.strides)
        return self._decode(outs[:n], outs[n:], bgr.shape[1], bgr.shape[0]), took

    def _decode(self, scores_per_stride, dists_per_stride, width, height):
        boxes, scores, classes = [], [], []
        bins = np.arange(self.reg_max + 1, dtype=np.float32)
        for stride, scores_s, dist_s in zip(self.strides, scores_per_stride, dists_per_stride):
            cols = self.size // stride
            cell, cls = np.nonzero(scores_s[0] >= self.score_threshold)  # scores are already sigmoid
            if cell.size == 0:
                continue
            d = dist_s[0][cell].reshape(-1, 4, self.reg_max + 1)
            p = np.exp(d - d.max(-1, keepdims=True))
            sides = (p / p.sum(-1, keepdims=True) * bins).sum(-1) * stride  # left, top, right, bottom
            cx, cy = (cell % cols + 0.5) * stride, (cell // cols + 0.5) * stride
            boxes.append(np.stack([cx - sides[:, 0], cy - sides[:, 1], cx + sides[:, 2], cy + sides[:, 3]], 1))
            scores.append(scores_s[0][cell, cls])
            classes.append(cls)
        if not boxes:
            return []
        boxes = np.concatenate(boxes) * np.array([width, height, width, height], np.float32) / self.size
        boxes = np.clip(boxes, 0, [width, height, width, height])
        scores, classes = np.concatenate(scores), np.concatenate(classes)
        xywh = np.concatenate([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]], 1)
        keep = cv2.dnn.NMSBoxesBatched(xywh.tolist(), scores.tolist(), classes.tolist(),
                                       self.score_threshold, self.nms_iou)
        return [Detection(self.labels[classes[i]], float(scores[i]), tuple(boxes[i].tolist()))
                for i in np.asarray(keep).reshape(-1)]


# ---------------------------------------------------------------------------------------------------------------
# Cameras: one GStreamer pipeline and one pulling thread each
# ---------------------------------------------------------------------------------------------------------------
def pipeline_description(url, sampling):
    keyframe_filter = "identity drop-buffer-flags=delta-unit ! " if sampling == "keyframe" else ""
    return (f"rtspsrc location={url} protocols=tcp latency=200 ! rtph264depay ! h264parse ! {keyframe_filter}"
            "avdec_h264 max-threads=1 ! videoconvert ! video/x-raw,format=BGR ! "
            "appsink name=sink max-buffers=2 drop=true sync=false emit-signals=false")


def sample_to_bgr(sample):
    info = GstVideo.VideoInfo.new_from_caps(sample.get_caps())
    buf = sample.get_buffer()
    ok, mapped = buf.map(Gst.MapFlags.READ)
    if not ok:
        return None
    try:
        data = np.frombuffer(mapped.data, np.uint8)  # PyGObject hands out a copy, safe after unmap
    finally:
        buf.unmap(mapped)
    rows = data[: info.stride[0] * info.height].reshape(info.height, info.stride[0])
    return rows[:, : info.width * 3].reshape(info.height, info.width, 3)  # rows may be padded


def run_camera(camera, url, args, frames, stats, stop):
    interval_ns = args.interval_ms * Gst.MSECOND
    backoff = 1.0
    while not stop.is_set():
        pipeline = Gst.parse_launch(pipeline_description(url, args.sampling))
        sink, bus = pipeline.get_by_name("sink"), pipeline.get_bus()
        next_due = None  # interval mode: buffer timestamp from which the next frame is analysed
        pipeline.set_state(Gst.State.PLAYING)
        log.info("%s: connecting to %s", camera, url)
        try:
            while not stop.is_set():
                msg = bus.pop_filtered(Gst.MessageType.ERROR | Gst.MessageType.EOS)
                if msg is not None:
                    if msg.type == Gst.MessageType.ERROR:
                        err, _debug = msg.parse_error()
                        log.warning("%s: stream error from %s: %s", camera, msg.src.get_name(), err.message)
                    else:
                        log.warning("%s: end of stream", camera)
                    break
                sample = sink.try_pull_sample(200 * Gst.MSECOND)
                if sample is None:
                    continue
                captured_at = time.time()
                stats.received[camera] += 1
                backoff = 1.0
                if args.sampling == "interval":
                    # By buffer timestamp (as streetsight does), so wall-clock jitter doesn't skip a second.
                    pts = sample.get_buffer().pts
                    if pts == Gst.CLOCK_TIME_NONE:
                        pts = time.monotonic_ns()
                    if next_due is not None and pts < next_due:
                        continue
                    next_due = pts + interval_ns
                image = sample_to_bgr(sample)
                if image is not None:
                    frames.put(Frame(camera, image, captured_at))
        finally:
            pipeline.set_state(Gst.State.NULL)
        if not stop.is_set():
            log.info("%s: reconnecting in %.0f s", camera, backoff)
            stop.wait(backoff)
            backoff = min(backoff * 2, 10.0)


def run_camera_opencv(camera, url, args, frames, stats, stop):
    """The camera loop most scripts have: `cv2.VideoCapture` (FFmpeg) reads and decodes every frame to BGR;
    one frame per --interval-ms (by arrival time: over RTSP, VideoCapture's position does not advance) goes
    on to the detector. No keyframe sampling: VideoCapture cannot skip decoding the frames in between."""
    backoff = 1.0
    while not stop.is_set():
        log.info("%s: opening %s with cv2.VideoCapture", camera, url)
        cap = cv2.VideoCapture(url, cv2.CAP_FFMPEG)
        next_due = None
        try:
            while not stop.is_set() and cap.isOpened():
                ok, image = cap.read()
                if not ok:
                    log.warning("%s: read failed", camera)
                    break
                captured_at = time.time()
                stats.received[camera] += 1
                backoff = 1.0
                now_ms = time.monotonic() * 1000
                if next_due is not None and now_ms < next_due:
                    continue
                next_due = now_ms + args.interval_ms
                frames.put(Frame(camera, image, captured_at))
        finally:
            cap.release()
        if not stop.is_set():
            log.info("%s: reconnecting in %.0f s", camera, backoff)
            stop.wait(backoff)
            backoff = min(backoff * 2, 10.0)


# ---------------------------------------------------------------------------------------------------------------
# MQTT: events and evidence, latency measured at PUBACK
# ---------------------------------------------------------------------------------------------------------------
class Publisher:
    def __init__(self, broker, stats):
        host, _, port = broker.rpartition(":")
        self.stats = stats
        self.lock = threading.Lock()
        self.sent = {}  # mid -> capture time for events, None for evidence
        self.acked_early = {}  # mid -> ack time, when PUBACK beat publish() returning
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"baseline-{uuid.uuid4().hex[:8]}")
        self.client.max_inflight_messages_set(100)
        self.client.max_queued_messages_set(0)  # 0 = unlimited: keep events while the broker is away
        self.client.reconnect_delay_set(min_delay=1, max_delay=30)
        self.client.on_connect = lambda c, u, f, rc, p: log.info("MQTT connected (%s)", rc)
        self.client.on_disconnect = lambda c, u, f, rc, p: log.warning("MQTT disconnected (%s)", rc)
        self.client.on_publish = self._on_publish
        self.client.connect_async(host, int(port), keepalive=30)
        self.client.loop_start()

    def _on_publish(self, client, userdata, mid, reason_code, properties):
        now = time.time()
        with self.lock:
            if mid not in self.sent:
                self.acked_early[mid] = now
                return
            self._acked(self.sent.pop(mid), now)

    def _acked(self, captured_at, now):  # caller holds self.lock
        if captured_at is not None:
            self.stats.events_acked += 1
            self.stats.latency_s.append(now - captured_at)

    def publish(self, topic, payload, captured_at=None):
        """QoS 1. Pass captured_at for an event message to have its PUBACK latency recorded."""
        info = self.client.publish(topic, payload, qos=1)
        with self.lock:
            if info.mid in self.acked_early:
                self._acked(captured_at, self.acked_early.pop(info.mid))
            else:
                self.sent[info.mid] = captured_at

    def close(self, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if not self.sent:
                    break
            time.sleep(0.05)
        self.client.disconnect()
        self.client.loop_stop()


# ---------------------------------------------------------------------------------------------------------------
# Inference worker and the presence rule
# ---------------------------------------------------------------------------------------------------------------
def run_worker(detector, frames, publisher, args, stats, last_event, stop):
    while not stop.is_set():
        frame = frames.get(timeout=0.2)
        if frame is None:
            continue
        try:
            detections, took = detector.detect(frame.image)
            persons = [d for d in detections if d.label == "person" and d.score >= PERSON_SCORE]
            with stats.lock:
                stats.analysed[frame.camera] += 1
                stats.inference_ms.append(took * 1000)
                due = persons and frame.captured_at - last_event.get(frame.camera, 0) >= args.event_every_s
                if due:
                    last_event[frame.camera] = frame.captured_at
            if due:
                publish_event(frame, persons, publisher, args.topic_prefix, stats)
        except Exception:
            log.exception("%s: frame failed", frame.camera)


def publish_event(frame, persons, publisher, prefix, stats):
    image = frame.image.copy()
    for p in persons:
        x0, y0, x1, y1 = map(int, p.box)
        cv2.rectangle(image, (x0, y0), (x1, y1), (0, 0, 255), 2)
    ok, jpeg = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 85])
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    event_id = str(uuid.uuid4())
    evidence_topic = f"{prefix}/{frame.camera}/evidence/{event_id}"
    publisher.publish(evidence_topic, jpeg.tobytes())
    event = {
        "event_id": event_id,
        "camera": frame.camera,
        "category": "presence",
        "count": len(persons),
        "detected_at": datetime.datetime.fromtimestamp(frame.captured_at, datetime.timezone.utc)
        .isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "evidence_topic": evidence_topic,
    }
    with stats.lock:
        stats.events_published += 1
    publisher.publish(f"{prefix}/{frame.camera}/events", json.dumps(event), captured_at=frame.captured_at)


# ---------------------------------------------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------------------------------------------
def percentile(values, q):
    return float(np.percentile(values, q)) if values else None


def report(stats, frames, started_at, stopped_at):
    with stats.lock:
        lat, inf = list(stats.latency_s), list(stats.inference_ms)
        return {
            "frames_received": {"total": sum(stats.received.values()), "per_camera": dict(stats.received)},
            "frames_analysed": {"total": sum(stats.analysed.values()), "per_camera": dict(stats.analysed)},
            "frames_dropped_queue": frames.dropped,
            "events_published": stats.events_published,
            "events_acked": stats.events_acked,
            "latency_s": {"count": len(lat), "p50": percentile(lat, 50), "p99": percentile(lat, 99),
                          "max": max(lat) if lat else None},
            "inference_ms": {"count": len(inf), "p50": percentile(inf, 50)},
            "started_at": started_at,
            "stopped_at": stopped_at,
        }


def summary(r, seconds):
    lat = r["latency_s"]
    fmt = lambda v: "-" if v is None else f"{v * 1000:.0f}ms"  # noqa: E731
    return (f"{seconds:.0f}s: received {r['frames_received']['total']} analysed {r['frames_analysed']['total']} "
            f"({r['frames_analysed']['total'] / max(seconds, 1e-9):.2f}/s) dropped {r['frames_dropped_queue']} "
            f"events {r['events_published']} acked {r['events_acked']} latency p50 {fmt(lat['p50'])} "
            f"p99 {fmt(lat['p99'])} inference p50 "
            + ("-" if r["inference_ms"]["p50"] is None else f"{r['inference_ms']['p50']:.1f}ms"))


def write_stats(path, result):
    """Replace the file atomically: a reader never sees half a file."""
    tmp = pathlib.Path(f"{path}.tmp")
    tmp.write_text(json.dumps(result, indent=2) + "\n")
    tmp.replace(path)


def iso(t):
    return datetime.datetime.fromtimestamp(t, datetime.timezone.utc).isoformat(timespec="milliseconds")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("urls", nargs="+", metavar="URL", help="RTSP URLs; camera ids are cam0, cam1, ... in order")
    ap.add_argument("--model", default="models/nanodet-g-416", help="model bundle directory with manifest.toml")
    ap.add_argument("--threads", type=int, default=1, help="ONNX Runtime intra-op threads")
    ap.add_argument("--workers", type=int, default=1, help="inference threads sharing one session")
    ap.add_argument("--sampling", choices=["keyframe", "interval"], default="keyframe")
    ap.add_argument("--interval-ms", type=int, default=1000)
    ap.add_argument("--capture", choices=["gstreamer", "opencv"], default="gstreamer",
                    help="opencv: cv2.VideoCapture reads every frame (the typical script; implies interval "
                         "sampling)")
    ap.add_argument("--broker", default="127.0.0.1:1883", help="HOST:PORT")
    ap.add_argument("--topic-prefix", default="baseline")
    ap.add_argument("--event-every-s", type=float, default=5.0)
    ap.add_argument("--stats-out", help="JSON stats file written on exit")
    ap.add_argument("--duration", type=float, help="stop after this many seconds")
    ap.add_argument("--stats-every", type=float,
                    help="every S seconds print a progress line to stderr and rewrite --stats-out (so a benchmark "
                         "driver can read the counters at both ends of its window)")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stderr)

    Gst.init(None)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())

    cameras = [f"cam{i}" for i in range(len(args.urls))]
    stats = Stats(cameras)
    frames = FrameQueue(2 * len(cameras))
    detector = NanoDet(args.model, args.threads)
    publisher = Publisher(args.broker, stats)
    last_event = {}
    started = time.time()
    camera_loop = run_camera_opencv if args.capture == "opencv" else run_camera
    threads = [threading.Thread(target=camera_loop, args=(c, u, args, frames, stats, stop), name=c)
               for c, u in zip(cameras, args.urls)]
    threads += [threading.Thread(target=run_worker, args=(detector, frames, publisher, args, stats, last_event,
                                                          stop), name=f"worker{i}") for i in range(args.workers)]
    for t in threads:
        t.start()

    next_progress = started + (args.stats_every or float("inf"))
    while not stop.is_set():
        now = time.time()
        if args.duration and now - started >= args.duration:
            break
        if now >= next_progress:
            current = report(stats, frames, iso(started), None)
            print(summary(current, now - started), file=sys.stderr, flush=True)
            if args.stats_out:
                write_stats(args.stats_out, current)
            next_progress += args.stats_every
        stop.wait(0.2)
    stop.set()
    for t in threads:
        t.join(timeout=10)
    stopped = time.time()  # analysis has stopped; only outstanding PUBACKs are still awaited
    publisher.close(timeout=5)
    result = report(stats, frames, iso(started), iso(stopped))
    if args.stats_out:
        write_stats(args.stats_out, result)
    print(summary(result, stopped - started), flush=True)


if __name__ == "__main__":
    main()
