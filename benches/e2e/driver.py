#!/usr/bin/env python3
"""End-to-end benchmark: N simulated cameras served over RTSP from a separate process, a mosquitto broker,
and one of three subjects measured from the outside over the same window:

  agent     the release streetsight daemon (NanoDet, a presence rule on people, events with evidence)
  baseline  benches/baseline/agent.py, the Python script a user would write instead
  decode    the same streams decoded alone by gst-launch-1.0 with the agent's decoder chain (half of the limit)

CPU is the subject process's utime + stime from /proc over the window; RSS is sampled every second.
Analysed frames come from the agent's /metrics or the baseline's stats file, read at both ends of the window.
Latency is the subject's own measurement: an event's frame leaving the decoder → the broker's PUBACK.
Each row is printed as one JSON line (and appended to --out). Standard library only.
"""

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TICKS = os.sysconf("SC_CLK_TCK")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, timeout=20.0):
    end = time.time() + timeout
    while time.time() < end:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"nothing listens on port {port} after {timeout} s")


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def rss_mb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


class Proc:
    """A child process with its output in a log file; killed when the run ends."""

    def __init__(self, name, argv, workdir, env=None):
        self.name = name
        self.log = open(Path(workdir) / f"{name}.log", "w")
        self.p = subprocess.Popen(argv, stdout=self.log, stderr=subprocess.STDOUT,
                                  env={**os.environ, **(env or {})}, cwd=ROOT)

    @property
    def pid(self):
        return self.p.pid

    def alive(self):
        return self.p.poll() is None

    def stop(self, sig=signal.SIGINT, timeout=30):
        if self.alive():
            self.p.send_signal(sig)
            try:
                self.p.wait(timeout)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
        self.log.close()


def start_broker(work):
    port = free_port()
    conf = Path(work) / "mosquitto.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
                    "set_tcp_nodelay true\nmax_queued_messages 100000\n")
    return Proc("mosquitto", ["mosquitto", "-c", str(conf)], work), port


def start_cameras(binary, media, n, work):
    port = free_port()
    proc = Proc("cameras", [binary, "serve-clip", str(media), "--port", str(port), "--mount", "/cam",
                            "--cameras", str(n)], work)
    mounts = ["/cam"] if n == 1 else [f"/cam{i}" for i in range(1, n + 1)]
    return proc, [f"rtsp://127.0.0.1:{port}{m}" for m in mounts]


def agent_config(urls, sampling, interval_ms, threads, workers, broker_port, http_port, state_dir,
                 model="models/nanodet-g-416"):
    sample = ('{ mode = "keyframe" }' if sampling == "keyframe"
              else f'{{ mode = "interval", interval_ms = {interval_ms} }}')
    cams = []
    for i, url in enumerate(urls, 1):
        cams.append(f'''
[[camera]]
id = "cam{i}"
url = "{url}"
sampling = {sample}
model = "nanodet"

[[camera.zone]]
id = "street"
points = [[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]]

[[camera.presence]]
zone = "street"
category = "crowd_density"
labels = ["person"]
min_score = 0.5
dwell_s = 1
incident = {{ clear_s = 10, cooldown_s = 0, update_interval_s = 10 }}
''')
    return f'''[device]
id = "bench"

[uplink]
broker = "mqtt://127.0.0.1:{broker_port}"
topic_prefix = "bench"
telemetry_s = 60
commands = false

[ops]
http = "127.0.0.1:{http_port}"

[storage]
state_dir = "{state_dir}"

[models.nanodet]
path = "{ROOT}/{model}"
threads = {threads}
workers = {workers}
''' + "".join(cams)


def scrape(http_port):
    text = urllib.request.urlopen(f"http://127.0.0.1:{http_port}/metrics", timeout=5).read().decode()
    sums, values = {}, {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        key, value = line.rsplit(" ", 1)
        values[key] = float(value)
        name = key.split("{", 1)[0]
        sums[name] = sums.get(name, 0.0) + float(value)
    return sums, values


class Subject:
    """How to start one subject and read its frame counters."""

    def __init__(self, args, kind, urls, broker_port, work):
        self.kind, self.work = kind, Path(work)
        sampling, interval = args.sampling, args.interval_ms
        if kind == "agent":
            self.http = free_port()
            cfg = self.work / "agent.toml"
            cfg.write_text(agent_config(urls, sampling, interval, args.threads, args.workers, broker_port, self.http,
                                        self.work / "state", args.model))
            self.proc = Proc("agent", [args.binary, "run", "-c", str(cfg)], work,
                             {"RUST_LOG": "warn"})
        elif kind in ("baseline", "opencv"):
            self.stats = self.work / "baseline-stats.json"
            # opencv: the typical script, cv2.VideoCapture decoding every frame, one per interval analysed.
            capture = ["--capture", "opencv", "--sampling", "interval"] if kind == "opencv" else []
            self.proc = Proc(kind, [
                str(args.python), str(ROOT / "benches/baseline/agent.py"),
                "--model", str(ROOT / args.model), "--threads", str(args.threads),
                "--workers", str(args.workers),
                "--sampling", sampling, "--interval-ms", str(interval),
                "--broker", f"127.0.0.1:{broker_port}", "--topic-prefix", "bench",
                "--event-every-s", "10", "--stats-out", str(self.stats), "--stats-every", "1", *capture, *urls,
            ], work)
        else:
            drop = "identity drop-buffer-flags=delta-unit ! " if sampling == "keyframe" else ""
            argv = ["gst-launch-1.0", "-q"]
            for url in urls:
                argv += (f"rtspsrc location={url} protocols=tcp latency=200 ! rtph264depay ! h264parse ! "
                         f"{drop}avdec_h264 max-threads=1 ! fakesink sync=false").split()
            self.proc = Proc("decode", argv, work)

    def counters(self):
        """(cameras streaming, frames analysed, frames dropped, events delivered, latency p50/p99 in s)."""
        if self.kind == "agent":
            sums, values = scrape(self.http)
            lat = (values.get('streetsight_event_latency_seconds{quantile="0.5"}'),
                   values.get('streetsight_event_latency_seconds{quantile="0.99"}'))
            return (sums.get("streetsight_camera_up", 0), sums.get("streetsight_camera_frames_analysed_total", 0),
                    sums.get("streetsight_camera_frames_dropped_total", 0)
                    + sums.get("streetsight_camera_frames_skipped_total", 0),
                    sums.get("streetsight_events_delivered_total", 0), lat)
        if self.kind in ("baseline", "opencv"):
            s = json.loads(self.stats.read_text())
            lat = s.get("latency_s", {})
            streaming = sum(1 for v in s.get("frames_received", {}).get("per_camera", {}).values() if v > 0)
            return (streaming, s["frames_analysed"]["total"], s.get("frames_dropped_queue", 0),
                    s.get("events_acked", 0), (lat.get("p50"), lat.get("p99")))
        return None

    def ready(self, n):
        if self.kind == "decode":
            return self.alive()
        try:
            streaming, analysed = self.counters()[:2]
            return streaming >= n and analysed > 0
        except (OSError, ValueError, KeyError):
            return False

    def alive(self):
        return self.proc.alive()


def run(args):
    work = tempfile.mkdtemp(prefix="streetsight-bench-")
    media = Path(args.media)
    broker, cameras, subject = None, None, None
    try:
        # Each process is held before it is waited for, so a failed start still stops it below.
        broker, broker_port = start_broker(work)
        wait_port(broker_port)
        cameras, urls = start_cameras(args.binary, media, args.cameras, work)
        wait_port(int(urls[0].split(":")[2].split("/")[0]), 60)
        subject = Subject(args, args.subject, urls, broker_port, work)
        deadline = time.time() + 120
        while not subject.ready(args.cameras):
            if not subject.alive():
                raise RuntimeError(f"{args.subject} exited; see {work}/{subject.proc.name}.log")
            if time.time() > deadline:
                raise RuntimeError(f"{args.subject} not streaming from all cameras after 120 s; see {work}")
            time.sleep(0.5)
        time.sleep(args.warmup)
        pid = subject.proc.pid
        c0 = subject.counters()
        cpu0, srv0, t0 = cpu_seconds(pid), cpu_seconds(cameras.pid), time.time()
        rss = []
        while time.time() - t0 < args.window:
            rss.append(rss_mb(pid))
            time.sleep(1.0)
        c1 = subject.counters()
        cpu1, srv1, t1 = cpu_seconds(pid), cpu_seconds(cameras.pid), time.time()
        if not subject.alive():
            raise RuntimeError(f"{args.subject} exited during the window; see {work}")
        secs = t1 - t0
        row = {
            "subject": args.subject, "media": media.stem, "sampling": args.sampling, "cameras": args.cameras,
            "threads": args.threads, "workers": args.workers, "window_s": round(secs, 1),
            "cpu_s_per_s": round((cpu1 - cpu0) / secs, 4),
            "cpu_s_per_camera_s": round((cpu1 - cpu0) / secs / args.cameras, 4),
            "server_cpu_s_per_s": round((srv1 - srv0) / secs, 4),
            "rss_mb_max": round(max(rss), 1), "rss_mb_first": round(rss[0], 1), "rss_mb_last": round(rss[-1], 1),
            "date": time.strftime("%Y-%m-%d %H:%M", time.gmtime(t0)),
        }
        if args.rss_trace:
            row["rss_mb_every_10s"] = [round(v, 1) for v in rss[::10]]
        if c0 is not None:
            analysed = c1[1] - c0[1]
            row.update({
                "analysed_fps": round(analysed / secs, 3),
                "dropped_or_skipped_per_s": round((c1[2] - c0[2]) / secs, 3),
                "events_delivered": int(c1[3] - c0[3]),
                "cpu_ms_per_analysed_frame": round((cpu1 - cpu0) * 1000 / analysed, 2) if analysed else None,
                "latency_p50_ms": None if c1[4][0] is None else round(c1[4][0] * 1000, 1),
                "latency_p99_ms": None if c1[4][1] is None else round(c1[4][1] * 1000, 1),
            })
        line = json.dumps(row)
        print(line, flush=True)
        if args.out:
            with open(args.out, "a") as f:
                f.write(line + "\n")
    finally:
        for p in (subject.proc if subject else None, cameras, broker):
            if p is not None:
                p.stop(signal.SIGTERM if p is not cameras else signal.SIGINT)
        if not args.keep:
            subprocess.run(["rm", "-rf", work])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--subject", choices=["agent", "baseline", "opencv", "decode"], default="agent")
    ap.add_argument("--media", required=True, help="H.264 MP4 served to every camera (benches/e2e/media.sh)")
    ap.add_argument("--cameras", type=int, default=1)
    ap.add_argument("--sampling", choices=["keyframe", "interval"], default="keyframe")
    ap.add_argument("--interval-ms", type=int, default=2000)
    ap.add_argument("--model", default="models/nanodet-g-416", help="bundle directory, relative to the repo")
    ap.add_argument("--threads", type=int, default=1, help="ONNX Runtime intra-op threads")
    ap.add_argument("--workers", type=int, default=1, help="inference workers (each with the threads above)")
    ap.add_argument("--warmup", type=float, default=15)
    ap.add_argument("--window", type=float, default=30)
    ap.add_argument("--binary", default=str(ROOT / "target/release/streetsight"))
    ap.add_argument("--python", default=str(ROOT / "target/baseline-venv/bin/python"))
    ap.add_argument("--out", help="append the JSON row to this file")
    ap.add_argument("--keep", action="store_true", help="keep the work directory (logs, config)")
    ap.add_argument("--rss-trace", action="store_true", help="add the RSS every 10 s of the window to the row")
    args = ap.parse_args()
    if args.cameras < 1 or args.window < 1:
        ap.error("--cameras and --window must be at least 1")
    try:
        run(args)
    except RuntimeError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
