#!/usr/bin/env python3
"""Crash soak: berth killed with SIGKILL at random moments under concurrent
pushes, restarted on the same data, and checked after every round.

Pushers (one thread each, each with repositories of its own) mix monolithic,
two-step, chunked, streamed and mounted blob uploads with manifest pushes
that move a few tags, and journal what berth acknowledged. Each round runs
them for a random while, kills a node, optionally emulates a power loss
(staging files truncated to a random length: what was not synced is gone),
restarts it and checks:

  - berth starts on the data as it is, with no repair;
  - every acknowledged manifest is served byte for byte, and every blob it
    references hashes to its digest;
  - every tag names the manifest last acknowledged for it, or one whose push
    was in flight when the node died;
  - every acknowledged blob is there with its size;
  - no request got a 5xx, ever.

At the end, GC runs with no grace: the debris goes, and every check passes
again. With `--nodes 2` (PostgreSQL + S3) two nodes share the install and
one of them is killed each round while the other keeps serving.

Usage: scripts/soak.py [--duration 10m] [--backend sqlite|postgres-s3]
       [--nodes 1|2] [--pushers 10] [--power-loss]
The PostgreSQL + S3 backend reads BERTH_TEST_DATABASE_URL and
BERTH_TEST_STORAGE_URL (and the AWS_* variables for S3), as the tests do.
Prints a JSON summary; exits 1 if any check failed.
"""

import argparse
import hashlib
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

import requests

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BINARY = os.environ.get("BERTH_BIN", os.path.join(ROOT, "target", "debug", "berth"))
KEY = ("AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
TAGS = ("latest", "stable", "v1")


def duration(text):
    units = {"s": 1, "m": 60, "h": 3600}
    return float(text[:-1]) * units[text[-1]] if text[-1] in units else float(text)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Node:
    """One berth process on the shared install."""

    def __init__(self, install, port):
        self.install, self.port, self.proc = install, port, None
        self.url = f"http://127.0.0.1:{port}"

    def start(self):
        env = {**os.environ, "BERTH_LOG": "warn", "BERTH_ROOT_ACCESS_KEY_ID": KEY[0],
               "BERTH_ROOT_SECRET_ACCESS_KEY": KEY[1]}
        self.proc = subprocess.Popen(
            [BINARY, "serve", "--listen", f"127.0.0.1:{self.port}", "--create-on-push",
             "--gc-interval", "1000h", *self.install],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, text=True)
        line = self.proc.stdout.readline()
        if not line.startswith("berth is serving"):
            raise RuntimeError(f"berth did not start: {line!r} (exit {self.proc.poll()})")
        threading.Thread(target=self.proc.stdout.read, daemon=True).start()

    def kill(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def rss_kib(self):
        try:
            with open(f"/proc/{self.proc.pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        return int(line.split()[1])
        except OSError:
            pass
        return None

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=60)


class Journal:
    """What berth acknowledged, shared by the pushers (each writes its own repositories)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.blobs = {}        # (repo, digest) -> size, acknowledged by a 201
        self.manifests = {}    # (repo, digest) -> bytes, acknowledged
        self.tags = {}         # (repo, tag) -> [digest acknowledged last, {digests in flight since}]
        self.server_errors = []
        self.mountable = []    # (repo, digest, size) others may mount from

    def blob(self, repo, digest, size):
        with self.lock:
            self.blobs[(repo, digest)] = size
            self.mountable.append((repo, digest, size))
            if len(self.mountable) > 200:
                self.mountable.pop(0)

    def tag_attempt(self, repo, tag, digest):
        with self.lock:
            self.tags.setdefault((repo, tag), [None, set()])[1].add(digest)

    def tag_acked(self, repo, tag, digest, content):
        with self.lock:
            self.manifests[(repo, digest)] = content
            self.tags[(repo, tag)] = [digest, set()]


class Pusher(threading.Thread):
    def __init__(self, n, nodes, journal, stop, seed):
        super().__init__(daemon=True)
        self.n, self.nodes, self.journal, self.stop_event = n, nodes, journal, stop
        self.random = random.Random(seed)
        self.session = requests.Session()
        self.session.auth = KEY
        self.ops = 0

    def url(self, path):
        return self.random.choice(self.nodes).url + path

    def check(self, response, *ok):
        if response.status_code >= 500:
            self.journal.server_errors.append(
                f"{response.request.method} {response.request.url} -> {response.status_code} {response.text[:200]}")
            raise IOError("5xx")
        if response.status_code not in ok:
            raise IOError(f"{response.request.method} {response.request.url} -> {response.status_code} {response.text[:200]}")
        return response

    def upload(self, repo, data):
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        how = self.random.choice(["monolithic", "two-step", "chunked", "streamed", "mount"])
        if how == "mount" and self.journal.mountable:
            src, mdigest, size = self.random.choice(self.journal.mountable)
            if src != repo:
                r = self.check(self.session.post(self.url(f"/v2/{repo}/blobs/uploads/?mount={mdigest}&from={src}"),
                                                 timeout=60), 201, 202)
                if r.status_code == 201:
                    self.journal.blob(repo, mdigest, size)
                    return mdigest, size
                # Refused mount: an upload session; finish it with this blob.
                location = r.headers["Location"]
                self.check(self.session.put(self.url(f"{location}{'&' if '?' in location else '?'}digest={digest}"),
                                            data=data, timeout=60), 201)
                self.journal.blob(repo, digest, len(data))
                return digest, len(data)
        if how in ("monolithic", "mount"):
            self.check(self.session.post(self.url(f"/v2/{repo}/blobs/uploads/?digest={digest}"), data=data,
                                         timeout=60), 201)
        else:
            r = self.check(self.session.post(self.url(f"/v2/{repo}/blobs/uploads/"), timeout=60), 202)
            location = r.headers["Location"]
            sep = "&" if "?" in location else "?"
            if how == "two-step":
                self.check(self.session.put(self.url(f"{location}{sep}digest={digest}"), data=data, timeout=60), 201)
            else:
                if how == "chunked":
                    step = max(1, len(data) // self.random.randint(2, 5))
                    for start in range(0, len(data), step):
                        part = data[start:start + step]
                        r = self.check(self.session.patch(
                            self.url(location), data=part, timeout=60,
                            headers={"Content-Range": f"{start}-{start + len(part) - 1}",
                                     "Content-Type": "application/octet-stream"}), 202)
                        location = r.headers["Location"]
                else:
                    pieces = [data[i:i + 65536] for i in range(0, len(data), 65536)]
                    r = self.check(self.session.patch(self.url(location), data=iter(pieces), timeout=60,
                                                      headers={"Content-Type": "application/octet-stream"}), 202)
                    location = r.headers["Location"]
                sep = "&" if "?" in location else "?"
                self.check(self.session.put(self.url(f"{location}{sep}digest={digest}"), timeout=60), 201)
        self.journal.blob(repo, digest, len(data))
        return digest, len(data)

    def push_image(self):
        repo = f"soak/p{self.n}-{self.random.choice('ab')}"
        config = json.dumps({"os": "linux", "architecture": "amd64", "nonce": self.random.getrandbits(64)}).encode()
        layers = []
        for _ in range(self.random.randint(1, 3)):
            size = self.random.choice([512, 4096, 200_000, 1_500_000, 3_000_000])
            layers.append(self.random.randbytes(size))
        config_digest, config_size = self.upload(repo, config)
        described = []
        for layer in layers:
            digest, size = self.upload(repo, layer)
            described.append({"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": digest, "size": size})
        manifest = json.dumps({
            "schemaVersion": 2, "mediaType": OCI_MANIFEST,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest,
                       "size": config_size},
            "layers": described,
        }).encode()
        digest = "sha256:" + hashlib.sha256(manifest).hexdigest()
        tag = self.random.choice(TAGS)
        self.journal.tag_attempt(repo, tag, digest)
        self.check(self.session.put(self.url(f"/v2/{repo}/manifests/{tag}"), data=manifest, timeout=60,
                                    headers={"Content-Type": OCI_MANIFEST}), 201)
        self.journal.tag_acked(repo, tag, digest, manifest)

    def run(self):
        while not self.stop_event.is_set():
            try:
                self.push_image()
                self.ops += 1
            except (IOError, requests.RequestException, KeyError):
                # The node died under us (or was refused): try again when it is back.
                time.sleep(0.05)


def verify(node, journal, full):
    """Every check against the journal; returns a list of failures."""
    failures = []
    s = requests.Session()
    s.auth = KEY
    for (repo, digest), content in list(journal.manifests.items()):
        r = s.get(f"{node.url}/v2/{repo}/manifests/{digest}", headers={"Accept": OCI_MANIFEST}, timeout=60)
        if r.status_code != 200 or r.content != content:
            failures.append(f"lost or changed manifest {repo}@{digest}: {r.status_code}")
            continue
        if not full:
            continue
        parsed = json.loads(content)
        for blob in [parsed["config"], *parsed["layers"]]:
            r = s.get(f"{node.url}/v2/{repo}/blobs/{blob['digest']}", timeout=120)
            got = "sha256:" + hashlib.sha256(r.content).hexdigest()
            if r.status_code != 200 or got != blob["digest"]:
                failures.append(f"blob {repo}@{blob['digest']}: {r.status_code}, hashes to {got}")
    for (repo, tag), (acked, in_flight) in list(journal.tags.items()):
        r = s.head(f"{node.url}/v2/{repo}/manifests/{tag}", headers={"Accept": OCI_MANIFEST}, timeout=60)
        got = r.headers.get("Docker-Content-Digest") if r.status_code == 200 else None
        allowed = in_flight | ({acked} if acked else set())
        if got not in allowed and not (got is None and acked is None):
            failures.append(f"tag {repo}:{tag} names {got}, acknowledged {acked}, in flight {sorted(in_flight)}")
    for (repo, digest), size in list(journal.blobs.items()):
        r = s.head(f"{node.url}/v2/{repo}/blobs/{digest}", timeout=60)
        if r.status_code != 200 or int(r.headers.get("Content-Length", -1)) != size:
            failures.append(f"acknowledged blob {repo}@{digest} ({size} bytes): {r.status_code}")
    return failures


def lose_unsynced(data_dir, rng):
    """Emulates a power loss: each staging file keeps a random prefix."""
    staging = os.path.join(data_dir, "blobs", "uploads")
    cut = 0
    if os.path.isdir(staging):
        for name in os.listdir(staging):
            path = os.path.join(staging, name)
            if os.path.isfile(path):
                size = os.path.getsize(path)
                os.truncate(path, rng.randint(0, size))
                cut += 1
    return cut


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=duration, default=600.0)
    parser.add_argument("--backend", choices=["sqlite", "postgres-s3"], default="sqlite")
    parser.add_argument("--nodes", type=int, choices=[1, 2], default=1)
    parser.add_argument("--pushers", type=int, default=10)
    parser.add_argument("--power-loss", action="store_true",
                        help="truncate staging files after each kill (filesystem storage only)")
    parser.add_argument("--seed", type=int, default=None)
    args = parser.parse_args()
    seed = args.seed if args.seed is not None else random.randrange(1 << 32)
    rng = random.Random(seed)

    tmp = tempfile.mkdtemp(prefix="berth-soak-")
    data = os.path.join(tmp, "data")
    install = ["--data-dir", data]
    if args.backend == "postgres-s3":
        url = os.environ["BERTH_TEST_DATABASE_URL"]
        schema = "soak_" + os.path.basename(tmp).replace("-", "_")
        install += ["--database", f"{url}{'&' if '?' in url else '?'}schema={schema}",
                    "--storage", os.environ["BERTH_TEST_STORAGE_URL"].rstrip("/") + "/" + schema]
    elif args.nodes > 1:
        parser.error("two nodes share PostgreSQL + S3 (--backend postgres-s3)")
    if args.power_loss and args.backend != "sqlite":
        parser.error("--power-loss truncates local staging files (--backend sqlite)")

    nodes = [Node(install, free_port()) for _ in range(args.nodes)]
    for node in nodes:
        node.start()
    journal = Journal()
    summary = {"seed": seed, "backend": args.backend, "nodes": args.nodes, "pushers": args.pushers,
               "power_loss": args.power_loss, "rounds": 0, "staging_files_cut": 0}
    rss = []
    failures = []
    ended = time.time() + args.duration
    pushed = 0
    try:
        while time.time() < ended and not failures:
            stop = threading.Event()
            pushers = [Pusher(n, nodes, journal, stop, rng.getrandbits(64)) for n in range(args.pushers)]
            for p in pushers:
                p.start()
            time.sleep(rng.uniform(0.5, 4.0))
            # Memory under load, just before the kill.
            rss.extend(r for r in (n.rss_kib() for n in nodes) if r)
            victim = rng.choice(nodes)
            victim.kill()
            stop.set()
            for p in pushers:
                p.join(timeout=120)
            pushed += sum(p.ops for p in pushers)
            if args.power_loss:
                summary["staging_files_cut"] += lose_unsynced(data, rng)
            victim.start()
            summary["rounds"] += 1
            # Every round checks manifests, tags and blob sizes; every fifth hashes every blob too.
            failures += verify(rng.choice(nodes), journal, full=summary["rounds"] % 5 == 1)
        failures += verify(nodes[0], journal, full=True)
        # GC with no grace: the debris of the killed pushes goes, nothing acknowledged does.
        gc = subprocess.run([BINARY, "gc", *install, "--grace", "0s"], capture_output=True, text=True,
                            timeout=600, env={**os.environ, "BERTH_LOG": "warn"})
        summary["gc"] = gc.stdout.strip().splitlines()[-1:] if gc.returncode == 0 else gc.stderr[-500:]
        if gc.returncode != 0:
            failures.append(f"gc failed: {gc.stderr[-500:]}")
        # Blobs acknowledged but never referenced by an acknowledged manifest are garbage now.
        referenced = set()
        for (repo, _), content in journal.manifests.items():
            parsed = json.loads(content)
            referenced.update((repo, b["digest"]) for b in [parsed["config"], *parsed["layers"]])
        journal.blobs = {k: v for k, v in journal.blobs.items() if k in referenced}
        failures += verify(nodes[0], journal, full=True)
    finally:
        for node in nodes:
            node.stop()
        if not failures:
            shutil.rmtree(tmp, ignore_errors=True)
    summary.update({
        "images_pushed": pushed,
        "manifests_acknowledged_and_verified": len(journal.manifests),
        "tags_checked": len(journal.tags),
        "blobs_acknowledged": len(journal.blobs),
        "server_errors": len(journal.server_errors),
        "failures": len(failures),
        # Resident memory of the nodes under load before each kill: first, largest, last.
        "rss_mib": [round(r / 1024, 1) for r in (rss[:1] + [max(rss, default=0)] + rss[-1:])] if rss else None,
    })
    print(json.dumps(summary, indent=2))
    for line in journal.server_errors[:20] + failures[:50]:
        print("FAIL:", line, file=sys.stderr)
    if failures or journal.server_errors:
        print(f"data kept in {tmp}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
