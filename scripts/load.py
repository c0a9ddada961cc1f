#!/usr/bin/env python3
"""Sustained mixed load: is berth's memory flat and its p99 steady over
minutes of pushes, pulls, metadata reads, listings and deletes?

    python3 scripts/load.py [--binary target/release/berth] [--duration 10m]
        [--workers 8] [--database URL --storage URL [--nodes 2]]

Starts berth on a fresh install and runs WORKERS clients (one keep-alive
connection each, Basic auth) that mix: pushes of small new images (config +
two 64 KiB layers, monolithic uploads, a new tag each), verified pulls
(manifest by tag, then every blob, each hashed against its digest), manifest
and blob HEADs, `tags/list` pages, and deletes of the oldest images (each
worker keeps its newest 50, so the data stays the same size and memory has
no reason to grow). With `--nodes N` (PostgreSQL + S3) N berths share the
install and the workers are spread over them, so one node reads what another
wrote. Every 5 s it samples each berth's RSS. Prints a line per minute
(requests, p50/p99 over all operations, the slowest operation's p99, peak RSS
of each node and, on the filesystem, the blobs stored: garbage collection must
keep up, or the data grows), then a JSON summary comparing the second minute
with the last; exits 1 on any 5xx, failed request or byte that did not verify."""

import argparse
import base64
import hashlib
import http.client
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict

KEY = ("AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")
BASIC = "Basic " + base64.b64encode(f"{KEY[0]}:{KEY[1]}".encode()).decode()
OCI = "application/vnd.oci.image.manifest.v1+json"
KEEP = 50  # images each worker keeps (4 repositories, 2 workers each: ~100 per repository)
REPOS = 4


def duration(text):
    units = {"s": 1, "m": 60, "h": 3600}
    return float(text[:-1]) * units[text[-1]] if text[-1] in units else float(text)


def rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def sha(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


class Stats:
    def __init__(self, start):
        self.start = start
        self.lock = threading.Lock()
        # minute -> op -> [latency ms]
        self.latency = defaultdict(lambda: defaultdict(list))
        # minute -> node -> peak RSS MiB
        self.rss = defaultdict(lambda: defaultdict(float))
        # minute -> blob files stored at its end (filesystem storage only)
        self.stored = {}
        self.errors = []

    def record(self, op, ms):
        minute = int((time.time() - self.start) // 60)
        with self.lock:
            self.latency[minute][op].append(ms)

    def error(self, text):
        with self.lock:
            if len(self.errors) < 50:
                self.errors.append(text)


class Worker:
    def __init__(self, n, host, port, stats, stop):
        self.n, self.stats, self.stop = n, stats, stop
        self.conn = http.client.HTTPConnection(host, port, timeout=60)
        self.rng = random.Random(n)
        self.pushed = 0

    def call(self, op, method, path, body=None, headers=None, ok=(200, 201, 202)):
        t = time.perf_counter()
        try:
            self.conn.request(method, path, body=body, headers={"Authorization": BASIC, **(headers or {})})
            response = self.conn.getresponse()
            data = response.read()
        except (OSError, http.client.HTTPException) as e:
            self.stats.error(f"{op} {method} {path}: {e}")
            self.conn.close()
            return None, None, b""
        self.stats.record(op, (time.perf_counter() - t) * 1000)
        if response.status not in ok:
            self.stats.error(f"{op} {method} {path}: {response.status} {data[:200]!r}")
        return response.status, response, data

    def repo(self):
        return f"load/r{self.rng.randrange(REPOS)}"

    def push(self):
        repo = f"load/r{self.n % REPOS}"
        self.pushed += 1
        config = json.dumps({"os": "linux", "w": self.n, "i": self.pushed}).encode()
        layers = [os.urandom(64 * 1024) for _ in range(2)]
        for blob in [config, *layers]:
            self.call("push-blob", "POST", f"/v2/{repo}/blobs/uploads/?digest={sha(blob)}", blob,
                      {"Content-Type": "application/octet-stream"})
        manifest = json.dumps({
            "schemaVersion": 2, "mediaType": OCI,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": sha(config),
                       "size": len(config)},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": sha(l),
                        "size": len(l)} for l in layers],
        }).encode()
        self.call("push-manifest", "PUT", f"/v2/{repo}/manifests/w{self.n}-{self.pushed}", manifest,
                  {"Content-Type": OCI})

    def tags(self, repo):
        status, _, data = self.call("tags-list", "GET", f"/v2/{repo}/tags/list?n=1000", ok=(200, 404))
        if status != 200:
            return []
        return json.loads(data).get("tags") or []

    def pull(self):
        repo = self.repo()
        tags = self.tags(repo)
        if not tags:
            return
        tag = self.rng.choice(tags)
        status, response, data = self.call("pull-manifest", "GET", f"/v2/{repo}/manifests/{tag}",
                                           headers={"Accept": OCI}, ok=(200, 404))
        if status != 200:
            return  # deleted meanwhile
        if response.getheader("Docker-Content-Digest") != sha(data):
            self.stats.error(f"manifest {repo}:{tag} does not hash to its digest")
        for blob in [json.loads(data)["config"], *json.loads(data)["layers"]]:
            status, _, body = self.call("pull-blob", "GET", f"/v2/{repo}/blobs/{blob['digest']}", ok=(200, 404))
            if status == 200 and sha(body) != blob["digest"]:
                self.stats.error(f"blob {blob['digest']} does not hash to its digest")

    def heads(self):
        repo = self.repo()
        tags = self.tags(repo)
        if not tags:
            return
        status, response, _ = self.call("head-manifest", "HEAD", f"/v2/{repo}/manifests/{self.rng.choice(tags)}",
                                        headers={"Accept": OCI}, ok=(200, 404))
        if status == 200:
            self.call("head-blob", "HEAD", f"/v2/{repo}/blobs/{response.getheader('Docker-Content-Digest')}",
                      ok=(200, 404))

    def prune(self):
        repo = f"load/r{self.n % REPOS}"
        mine = sorted((t for t in self.tags(repo) if t.startswith(f"w{self.n}-")),
                      key=lambda t: int(t.split("-")[1]))
        for tag in mine[:max(0, len(mine) - KEEP)]:
            status, response, _ = self.call("head-manifest", "HEAD", f"/v2/{repo}/manifests/{tag}",
                                            headers={"Accept": OCI}, ok=(200, 404))
            if status == 200:
                self.call("delete", "DELETE", f"/v2/{repo}/manifests/{response.getheader('Docker-Content-Digest')}",
                          ok=(202, 404))

    def run(self):
        ops = [(self.push, 2), (self.pull, 4), (self.heads, 3), (self.prune, 1)]
        choices = [op for op, weight in ops for _ in range(weight)]
        while not self.stop.is_set():
            self.rng.choice(choices)()


def percentile(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * p))] if values else 0.0


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--binary", default="target/release/berth")
    parser.add_argument("--duration", default="10m")
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--database")
    parser.add_argument("--storage")
    parser.add_argument("--nodes", type=int, default=1)
    args = parser.parse_args()
    if args.nodes > 1 and not (args.database and args.storage):
        parser.error("nodes share an install on PostgreSQL + S3 (--database and --storage)")

    tmp = tempfile.mkdtemp(prefix="berth-load-")
    command = [args.binary, "serve", "--listen", "127.0.0.1:0", "--data-dir", os.path.join(tmp, "data"),
               "--create-on-push", "--gc-interval", "1m", "--gc-grace", "30s"]
    if args.database:
        command += ["--database", args.database]
    if args.storage:
        command += ["--storage", args.storage]
    env = {**os.environ, "BERTH_ROOT_ACCESS_KEY_ID": KEY[0], "BERTH_ROOT_SECRET_ACCESS_KEY": KEY[1],
           "BERTH_LOG": "warn"}
    servers, nodes = [], []
    try:
        for _ in range(args.nodes):
            server = subprocess.Popen(command, stdout=subprocess.PIPE, env=env, text=True)
            servers.append(server)
            url = server.stdout.readline().strip().rsplit(" ", 1)[1]
            host, port = url.split("://", 1)[1].split("/", 1)[0].split(":")
            nodes.append((server, host, int(port)))
        blobs_dir = None if args.storage else os.path.join(tmp, "data", "blobs", "blobs")
        return run(nodes, args, blobs_dir)
    finally:
        for server in servers:
            server.terminate()
            server.wait(timeout=60)
        shutil.rmtree(tmp, ignore_errors=True)


def stored_blobs(blobs_dir):
    return sum(len(files) for _, _, files in os.walk(blobs_dir))


def run(nodes, args, blobs_dir):
    """`nodes`: (process, host, port) of each berth; worker n uses node n mod N;
    `blobs_dir`: where the filesystem store keeps blobs (None on S3)."""
    seconds = duration(args.duration)
    start = time.time()
    stats, stop = Stats(start), threading.Event()
    workers = [Worker(n, *nodes[n % len(nodes)][1:], stats, stop) for n in range(args.workers)]
    threads = [threading.Thread(target=w.run, daemon=True) for w in workers]
    for w in workers:
        w.push()  # every repository exists before the mix starts
    for t in threads:
        t.start()
    while time.time() - start < seconds:
        time.sleep(5)
        if any(server.poll() is not None for server, _, _ in nodes):
            stats.error("berth exited")
            break
        minute = int((time.time() - start) // 60)
        for i, (server, _, _) in enumerate(nodes):
            stats.rss[minute][i] = max(stats.rss[minute][i], rss_mib(server.pid))
        if blobs_dir and int((time.time() - start + 5) // 60) > minute:  # the minute's last sample
            stats.stored[minute] = stored_blobs(blobs_dir)
    stop.set()
    for t in threads:
        t.join(timeout=60)

    minutes = sorted(m for m in stats.latency if m < int(seconds // 60) or seconds < 60)
    rows = []
    print(f"{'minute':>6} {'requests':>9} {'p50 ms':>7} {'p99 ms':>7} {'slowest op p99':>24} {'RSS MiB':>8}"
          f" {'blobs stored':>12}")
    for m in minutes:
        by_op = stats.latency[m]
        every = [v for values in by_op.values() for v in values]
        slowest = max(by_op, key=lambda op: percentile(by_op[op], 0.99))
        row = {"minute": m + 1, "requests": len(every), "p50_ms": round(percentile(every, 0.5), 2),
               "p99_ms": round(percentile(every, 0.99), 2),
               "slowest_op": slowest, "slowest_op_p99_ms": round(percentile(by_op[slowest], 0.99), 2),
               "rss_mib": [round(stats.rss[m][i], 1) for i in range(len(nodes))],
               "blobs_stored": stats.stored.get(m)}
        rows.append(row)
        print(f"{row['minute']:>6} {row['requests']:>9} {row['p50_ms']:>7} {row['p99_ms']:>7} "
              f"{slowest + ' ' + str(row['slowest_op_p99_ms']):>24} {' / '.join(map(str, row['rss_mib'])):>8}"
              f" {'' if row['blobs_stored'] is None else row['blobs_stored']:>12}")
    summary = {"minutes": rows, "errors": stats.errors}
    if len(rows) >= 3:
        second, last = rows[1], rows[-1]
        summary["rss_growth_second_to_last_minute"] = [
            round(a / max(b, 1), 3) for a, b in zip(last["rss_mib"], second["rss_mib"])]
        summary["p99_ratio_last_to_second_minute"] = round(last["p99_ms"] / max(second["p99_ms"], 0.001), 3)
    print(json.dumps({k: v for k, v in summary.items() if k != "minutes"}, indent=2))
    return 1 if stats.errors else 0


if __name__ == "__main__":
    sys.exit(main())
