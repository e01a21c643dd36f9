#!/usr/bin/env python3
"""The delivery and continuity experiments of issue 15, from the outside, against the release binary:

  outage   the broker is stopped for --outage-s while the agent produces events; then it returns
  sigkill  the agent is killed with SIGKILL --kills times at random moments (broker up), then runs to drain
  disk     the state directory is an 8 MiB tmpfs (needs root), the broker is down for --disk-outage-s

Two cameras on the served clip: `flap` has crowd levels one person apart (an event every few seconds, with
evidence), `steady` has one level that the clip's walkers always exceed (one crowd that never ends: one
incident id for the whole experiment, however often the agent dies). Stored events are the agent's own
"Incident event stored." log lines; delivered ones are what a persistent QoS 1 subscriber received. Each
experiment prints one JSON line: stored, delivered, lost, duplicates, in order, and what it is about.
Standard library only.
"""

import argparse
import json
import os
import random
import re
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from driver import ROOT, Proc, free_port, wait_port  # noqa: E402

STORED = re.compile(r"Incident event stored\..*?event=(\S+)")


def config(camera_url, broker_port, http_port, state, extra_storage=""):
    model = ROOT / "models/nanodet-g-416"
    return f'''[device]
id = "pole"
[uplink]
broker = "mqtt://127.0.0.1:{broker_port}"
topic_prefix = "exp"
commands = false
[ops]
http = "127.0.0.1:{http_port}"
[storage]
state_dir = "{state}"
{extra_storage}
[evidence]
clean_frame = true
[models.nanodet]
path = "{model}"
[[camera]]
id = "flap"
url = "{camera_url}"
model = "nanodet"
[[camera.zone]]
id = "all"
points = [[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]]
area_m2 = 1.0
[[camera.crowd_density]]
zone = "all"
levels = [{{ name = "l4", min_density = 4.0 }}, {{ name = "l5", min_density = 5.0 }}, {{ name = "l6", min_density = 6.0 }}, {{ name = "l7", min_density = 7.0 }}]
hysteresis = 0.0
sustain_s = 0
clear_s = 0
incident = {{ update_interval_s = 1 }}
[[camera]]
id = "steady"
url = "{camera_url}"
model = "nanodet"
[[camera.zone]]
id = "all"
points = [[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]]
area_m2 = 1.0
[[camera.crowd_density]]
zone = "all"
min_score = 0.4
levels = [{{ name = "busy", min_density = 2.0 }}]
sustain_s = 2
clear_s = 20
incident = {{ cooldown_s = 600 }}
'''


class Broker:
    """mosquitto with persistence, so a persistent subscriber's session and queue outlive a restart."""

    def __init__(self, work):
        self.work, self.port = Path(work), free_port()
        (self.work / "broker").mkdir(exist_ok=True)
        # mosquitto started as root runs as the `mosquitto` user: it must be able to write its database.
        os.chmod(self.work, 0o755)
        os.chmod(self.work / "broker", 0o777)
        self.conf = self.work / "mosquitto.conf"
        self.conf.write_text(f"listener {self.port} 127.0.0.1\nallow_anonymous true\npersistence true\n"
                             f"persistence_location {self.work / 'broker'}/\nmax_queued_messages 1000000\n"
                             "max_inflight_messages 0\n")
        self.proc = None

    def start(self):
        self.proc = Proc("mosquitto", ["mosquitto", "-c", str(self.conf)], self.work)
        wait_port(self.port)

    def stop(self):
        self.proc.stop(signal.SIGTERM)


class Events:
    """A persistent QoS 1 subscriber to the agent's events; reads them back from its output file."""

    def __init__(self, work, port):
        # Proc's log is the payload stream, one event per line.
        self.out = Path(work) / "subscriber.log"
        self.proc = Proc("subscriber", ["mosquitto_sub", "-h", "127.0.0.1", "-p", str(port), "-q", "1", "-c",
                                        "-i", "experiment-sub", "-t", "exp/pole/events", "-F", "%p"], work)
        # Subscribed (and its session on the broker) before anything is published or the broker stops.
        time.sleep(2)

    def read(self):
        events = []
        for line in self.out.read_text(errors="replace").splitlines():
            try:
                events.append(json.loads(line))
            except json.JSONDecodeError:
                pass
        return events


class Agent:
    def __init__(self, binary, cfg, work):
        self.binary, self.cfg, self.work, self.n, self.proc = binary, cfg, Path(work), 0, None

    def start(self):
        self.n += 1
        self.proc = Proc(f"agent-{self.n}", [self.binary, "run", "-c", str(self.cfg)], self.work,
                         {"RUST_LOG": "info"})

    def stored(self):
        ids = []
        for i in range(1, self.n + 1):
            text = (self.work / f"agent-{i}.log").read_text(errors="replace")
            ids += STORED.findall(text)
        return ids

    def log_lines(self):
        return [l for i in range(1, self.n + 1)
                for l in (self.work / f"agent-{i}.log").read_text(errors="replace").splitlines()]

    def lines(self, needle):
        return sum((self.work / f"agent-{i}.log").read_text(errors="replace").count(needle)
                   for i in range(1, self.n + 1))


def wait_delivered(agent, events, timeout):
    end = time.time() + timeout
    while time.time() < end:
        got = {e["event_id"] for e in events.read()}
        if set(agent.stored()) <= got:
            return True
        time.sleep(1)
    return False


def summary(name, agent, events, **extra):
    stored = agent.stored()
    got = events.read()
    ids = [e["event_id"] for e in got]
    delivered = [i for i in stored if i in set(ids)]
    positions = {i: n for n, i in enumerate(dict.fromkeys(ids))}
    order = [positions[i] for i in delivered]
    steady = [e for e in got if e["camera"]["id"] == "steady"]
    opened = {e["incident_id"] for e in steady if e["phase"] == "opened"}
    resolved = {e["incident_id"]: e.get("reason") for e in steady if e["phase"] == "resolved"}
    missing = [i for i in stored if i not in set(ids)]
    row = {
        "experiment": name,
        "stored": len(stored),
        "delivered": len(delivered),
        "lost": len(stored) - len(delivered),
        "duplicates": len(ids) - len(set(ids)),
        "in_order": order == sorted(order),
        "not_stored_lines": agent.lines("it is lost"),
        "steady_incidents_opened": len(opened),
        "steady_resolved": resolved,
        "missing": [l for l in agent.log_lines() if any(m in l for m in missing[:3])][:3],
        **extra,
    }
    print(json.dumps(row), flush=True)
    return row


def metric(http_port, name):
    try:
        text = urllib.request.urlopen(f"http://127.0.0.1:{http_port}/metrics", timeout=5).read().decode()
    except OSError:
        return None
    return sum(float(l.rsplit(" ", 1)[1]) for l in text.splitlines() if l.startswith(name))


def health(http_port):
    try:
        r = urllib.request.urlopen(f"http://127.0.0.1:{http_port}/healthz", timeout=5)
        return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())
    except OSError:
        return None, {}


def setup(args, work, state, extra_storage=""):
    camera = Proc("camera", [args.binary, "serve-clip", str(args.clip), "--port", str(cam_port := free_port()),
                             "--mount", "/cam"], work)
    wait_port(cam_port)
    broker = Broker(work)
    broker.start()
    events = Events(work, broker.port)
    http = free_port()
    cfg = Path(work) / "agent.toml"
    cfg.write_text(config(f"rtsp://127.0.0.1:{cam_port}/cam", broker.port, http, state, extra_storage))
    return camera, broker, events, Agent(args.binary, cfg, work), http


def outage(args, work):
    camera, broker, events, agent, _ = setup(args, work, Path(work) / "state")
    agent.start()
    time.sleep(30)
    broker.stop()
    time.sleep(args.outage_s)
    broker.start()
    ok = wait_delivered(agent, events, 300)
    agent.proc.stop(signal.SIGTERM)
    row = summary("broker_outage", agent, events, outage_s=args.outage_s, drained=ok)
    for p in (events.proc, broker.proc, camera):
        p.stop(signal.SIGTERM)
    return row


def sigkill(args, work):
    state = Path(work) / "state"
    camera, broker, events, agent, _ = setup(args, work, state)
    rng = random.Random(15)
    bad = 0
    for _ in range(args.kills):
        agent.start()
        time.sleep(rng.uniform(6, 16))
        agent.proc.p.kill()
        agent.proc.p.wait()
        agent.proc.log.close()
        db = sqlite3.connect(state / "outbox.sqlite")
        bad += db.execute("PRAGMA integrity_check").fetchone()[0] != "ok"
        db.close()
    agent.start()
    ok = wait_delivered(agent, events, 300)
    time.sleep(5)
    agent.proc.stop(signal.SIGTERM)
    row = summary("sigkill", agent, events, kills=args.kills, integrity_failures=bad, drained=ok)
    for p in (events.proc, broker.proc, camera):
        p.stop(signal.SIGTERM)
    return row


def disk(args, work, evidence_mb):
    state = Path(work) / "state"
    state.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(state)], check=True)
    try:
        camera, broker, events, agent, http = setup(
            args, work, state, f"evidence_max_mb = {evidence_mb}\nreserve_mb = 2\njpeg_quality = 95")
        broker.stop()
        agent.start()
        unhealthy, end = False, time.time() + args.disk_outage_s
        while time.time() < end:
            code, body = health(http)
            unhealthy |= code == 503 and body.get("disk", {}).get("short") is True
            time.sleep(1)
        dropped_disk = metric(http, "streetsight_evidence_dropped_disk_total")
        dropped_outbox = metric(http, 'streetsight_outbox_dropped_total{kind="evidence"}')
        broker.start()
        ok = wait_delivered(agent, events, 300)
        time.sleep(3)
        code, body = health(http)
        agent.proc.stop(signal.SIGTERM)
        files = [p for p in state.rglob("*") if p.is_file()]
        bad = [p.name for p in files if p.name.endswith(".tmp") or
               (p.suffix in (".jpg", ".ref") and p.stat().st_size == 0)]
        outbox = sum(p.stat().st_size for p in files if p.name.startswith("outbox.sqlite"))
        row = summary("full_disk", agent, events, disk_mb=8, evidence_max_mb=evidence_mb,
                      outage_s=args.disk_outage_s, evidence_dropped_for_space=dropped_disk,
                      evidence_evicted_from_outbox=dropped_outbox, healthz_503_while_short=unhealthy,
                      short_after_drain=body.get("disk", {}).get("short"), bad_files=bad,
                      outbox_bytes_after_drain=outbox, drained=ok)
        for p in (events.proc, broker.proc, camera):
            p.stop(signal.SIGTERM)
        return row
    finally:
        subprocess.run(["umount", "-l", str(state)])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("experiments", nargs="*", default=["outage", "sigkill", "disk"])
    ap.add_argument("--binary", default=str(ROOT / "target/release/streetsight"))
    ap.add_argument("--clip", default=str(ROOT / "tests/media/vtest.mp4"))
    ap.add_argument("--outage-s", type=int, default=300)
    ap.add_argument("--kills", type=int, default=25)
    ap.add_argument("--disk-outage-s", type=int, default=100)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    rows = []
    for name in args.experiments:
        with tempfile.TemporaryDirectory() as work:
            if name == "outage":
                rows.append(outage(args, work))
            elif name == "sigkill":
                rows.append(sigkill(args, work))
            elif name == "disk":
                rows.append(disk(args, work, 128))
                with tempfile.TemporaryDirectory() as work2:
                    rows.append(disk(args, work2, 1))
    if args.out:
        with open(args.out, "a") as f:
            for r in rows:
                f.write(json.dumps(r) + "\n")
    return 0 if all(r["lost"] == 0 for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
