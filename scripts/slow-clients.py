#!/usr/bin/env python3
"""Slow-client attack figure: how berth serves ordinary clients while many
connections dribble their headers (slowloris) or their upload bodies.

    python3 scripts/slow-clients.py [--binary target/release/berth]
        [--slow 1000] [--seconds 20] [--client-timeout 10s]
        [--per-address N] [--max-connections N] [--attacker-address 127.0.0.2]

Starts berth (Basic auth, one small image pushed), opens SLOW connections
that send one header byte every second (or, for a tenth of them, start an
upload and send one body byte every second), and meanwhile measures an
ordinary client doing authenticated manifest GETs over fresh connections:
requests answered, p50/p99 latency, refusals. Then it waits out
--client-timeout and says how many slow connections berth has dropped, and
berth's RSS. Prints one JSON object."""

import argparse
import base64
import hashlib
import http.client
import json
import os
import socket
import statistics
import subprocess
import tempfile
import threading
import time

KEY = ("AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")


def rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--binary", default="target/release/berth")
    p.add_argument("--slow", type=int, default=1000)
    p.add_argument("--seconds", type=float, default=20)
    p.add_argument("--client-timeout", default="10s")
    p.add_argument("--per-address", type=int, default=0)
    p.add_argument("--max-connections", type=int, default=4096)
    p.add_argument("--attacker-address", default=None,
                   help="source address of the slow connections (e.g. 127.0.0.2; the ordinary client is 127.0.0.1)")
    args = p.parse_args()

    tmp = tempfile.mkdtemp(prefix="berth-slow-")
    command = [args.binary, "serve", "--listen", "127.0.0.1:0", "--data-dir", os.path.join(tmp, "data"),
               "--create-on-push", "--client-timeout", args.client_timeout,
               "--max-connections", str(args.max_connections)]
    if args.per_address:
        command += ["--max-connections-per-address", str(args.per_address)]
    env = {**os.environ, "BERTH_ROOT_ACCESS_KEY_ID": KEY[0], "BERTH_ROOT_SECRET_ACCESS_KEY": KEY[1],
           "BERTH_LOG": "error"}
    server = subprocess.Popen(command, stdout=subprocess.PIPE, env=env, text=True)
    try:
        url = server.stdout.readline().strip().rsplit(" ", 1)[1]
        host, port = url.split("://", 1)[1].split("/", 1)[0].split(":")
        port = int(port)
        print(json.dumps(attack(server.pid, host, port, args), indent=2))
    finally:
        server.terminate()
        server.wait(timeout=30)


def attack(pid, host, port, args):
    basic = "Basic " + base64.b64encode(f"{KEY[0]}:{KEY[1]}".encode()).decode()
    conn = http.client.HTTPConnection(host, port, timeout=30)
    config = b'{"os":"linux"}'
    digest = "sha256:" + hashlib.sha256(config).hexdigest()
    conn.request("POST", f"/v2/slow/app/blobs/uploads/?digest={digest}", body=config,
                 headers={"Authorization": basic})
    assert conn.getresponse().read() is not None
    manifest = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                           "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                                      "digest": digest, "size": len(config)}, "layers": []}).encode()
    conn.request("PUT", "/v2/slow/app/manifests/v1", body=manifest,
                 headers={"Authorization": basic, "Content-Type": "application/vnd.oci.image.manifest.v1+json"})
    assert conn.getresponse().status == 201
    conn.close()

    stop = threading.Event()
    slow, opened, refused_slow = [], [0], [0]

    def slowloris(i):
        try:
            source = (args.attacker_address, 0) if args.attacker_address else None
            s = socket.create_connection((host, port), timeout=5, source_address=source)
        except OSError:
            refused_slow[0] += 1
            return
        opened[0] += 1
        slow.append(s)
        if i % 10 == 0:
            # A slow upload body: headers whole, then a byte a second.
            head = (f"POST /v2/slow/app/blobs/uploads/?digest={digest} HTTP/1.1\r\nHost: x\r\n"
                    f"Authorization: {basic}\r\nContent-Length: 100000\r\n\r\n").encode()
        else:
            head = b"GET /v2/ HTTP/1.1\r\nHost: x\r\nX-Slow: "
        try:
            s.sendall(head)
            while not stop.is_set():
                s.sendall(b"a")
                stop.wait(1.0)
        except OSError:
            pass

    threads = []
    for i in range(args.slow):
        t = threading.Thread(target=slowloris, args=(i,), daemon=True)
        t.start()
        threads.append(t)
    time.sleep(2)
    rss_under_attack = rss_mib(pid)

    latencies, failures = [], 0
    end = time.time() + args.seconds
    while time.time() < end:
        t0 = time.perf_counter()
        try:
            c = http.client.HTTPConnection(host, port, timeout=10)
            c.request("GET", "/v2/slow/app/manifests/v1", headers={
                "Authorization": basic, "Accept": "application/vnd.oci.image.manifest.v1+json"})
            r = c.getresponse()
            r.read()
            c.close()
            if r.status == 200:
                latencies.append((time.perf_counter() - t0) * 1000)
            else:
                failures += 1
        except OSError:
            failures += 1
            time.sleep(0.05)

    def alive():
        n = 0
        for s in slow:
            try:
                s.sendall(b"a")
                n += 1
            except OSError:
                pass
        return n

    latencies.sort()
    result = {
        "slow_connections_attempted": args.slow,
        "slow_connections_open": opened[0],
        "ordinary_requests_ok": len(latencies),
        "ordinary_requests_failed": failures,
        "ordinary_p50_ms": round(statistics.median(latencies), 2) if latencies else None,
        "ordinary_p99_ms": round(latencies[int(len(latencies) * 0.99) - 1], 2) if latencies else None,
        "berth_rss_mib_under_attack": round(rss_under_attack, 1),
    }
    # Past the client timeout, berth has dropped them.
    timeout_s = float(args.client_timeout.rstrip("s"))
    time.sleep(timeout_s + 3)
    result["slow_connections_still_open_after_timeout"] = alive()
    stop.set()
    for s in slow:
        s.close()
    return result


if __name__ == "__main__":
    main()
