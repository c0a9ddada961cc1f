#!/usr/bin/env python3
"""Console page timings with many images in one repository (issue: each
page < 100 ms of server time at 10,000 images).

    python3 scripts/console-timings.py [--binary target/release/berth]
        [--images 10000] [--rounds 20] [--database URL --storage URL]

Starts berth on a fresh install, pushes IMAGES small images (one shared
config and layer, a manifest each, each tagged) into `big/app`, puts a
lifecycle policy (so the settings page computes its live preview over all
of them), signs in to the console with the root key, then asks each page
ROUNDS times over one keep-alive connection and prints the median and the
slowest time to the whole response, measured on the client over loopback
(an upper bound of the server's time). Needs boto3 (the test venv has it)."""

import argparse
import base64
import hashlib
import http.client
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse

KEY = ("AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")
REGION = "us-east-1"
REPO = "big/app"


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--binary", default="target/release/berth")
    parser.add_argument("--images", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--database")
    parser.add_argument("--storage")
    args = parser.parse_args()

    tmp = tempfile.mkdtemp(prefix="berth-console-timings-")
    command = [args.binary, "serve", "--listen", "127.0.0.1:0", "--data-dir", os.path.join(tmp, "data"),
               "--create-on-push"]
    if args.database:
        command += ["--database", args.database]
    if args.storage:
        command += ["--storage", args.storage]
    env = {**os.environ, "BERTH_ROOT_ACCESS_KEY_ID": KEY[0], "BERTH_ROOT_SECRET_ACCESS_KEY": KEY[1],
           "BERTH_REGION": REGION, "BERTH_LOG": "warn"}
    server = subprocess.Popen(command, stdout=subprocess.PIPE, env=env, text=True)
    try:
        url = server.stdout.readline().strip().rsplit(" ", 1)[1]
        host = url.split("://", 1)[1].split("/", 1)[0]
        run(host, args)
    finally:
        server.terminate()
        server.wait(timeout=30)


def run(host, args):
    basic = "Basic " + base64.b64encode(f"{KEY[0]}:{KEY[1]}".encode()).decode()
    conn = http.client.HTTPConnection(host, timeout=60)

    def call(method, path, body=None, headers=None):
        conn.request(method, path, body=body, headers={"Authorization": basic, **(headers or {})})
        response = conn.getresponse()
        data = response.read()
        return response.status, response, data

    blobs = []
    for data in (json.dumps({"os": "linux", "architecture": "amd64"}).encode(), b"layer" * 100):
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        status, _, _ = call("POST", f"/v2/{REPO}/blobs/uploads/?digest={digest}", data,
                            {"Content-Type": "application/octet-stream"})
        assert status == 201, status
        blobs.append({"digest": digest, "size": len(data)})
    started = time.time()
    digests = []
    for i in range(args.images):
        manifest = json.dumps({
            "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", **blobs[0]},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", **blobs[1]}],
            "annotations": {"n": str(i)},
        }).encode()
        status, _, _ = call("PUT", f"/v2/{REPO}/manifests/v{i}", manifest,
                            {"Content-Type": "application/vnd.oci.image.manifest.v1+json"})
        assert status == 201, status
        digests.append("sha256:" + hashlib.sha256(manifest).hexdigest())
    print(f"pushed {args.images} images in {time.time() - started:.1f} s")

    import boto3
    ecr = boto3.client("ecr", endpoint_url=f"http://{host}", region_name=REGION,
                       aws_access_key_id=KEY[0], aws_secret_access_key=KEY[1])
    ecr.put_lifecycle_policy(repositoryName=REPO, lifecyclePolicyText=json.dumps({"rules": [
        {"rulePriority": 1, "selection": {"tagStatus": "any", "countType": "imageCountMoreThan",
                                          "countNumber": 5000}, "action": {"type": "expire"}}]}))

    # Sign in to the console with the root key.
    form = urllib.parse.urlencode({"access_key_id": KEY[0], "secret_access_key": KEY[1]})
    conn.request("POST", "/console/sign-in", body=form,
                 headers={"Content-Type": "application/x-www-form-urlencoded"})
    response = conn.getresponse()
    response.read()
    cookie = response.getheader("Set-Cookie").split(";", 1)[0]

    middle = sorted(digests)[len(digests) // 2]
    quoted = urllib.parse.quote(REPO, safe="/")
    pages = [
        ("repositories", "/console"),
        ("repository, first page", f"/console/repositories/{quoted}"),
        ("repository, a middle page", f"/console/repositories/{quoted}?after={urllib.parse.quote(middle)}"),
        ("image", f"/console/repositories/{quoted}?image={urllib.parse.quote(digests[-1])}"),
        ("policies (settings)", f"/console/repositories/{quoted}?settings"),
        ("projects", "/console/projects"),
        ("connected identities", "/console/identities"),
        ("IAM users and groups", "/console/iam"),
    ]
    print(f"{'page':32} {'median ms':>10} {'max ms':>8} {'bytes':>9}")
    worst = 0.0
    for name, path in pages:
        times, size = [], 0
        for _ in range(args.rounds):
            t = time.perf_counter()
            conn.request("GET", path, headers={"Cookie": cookie})
            response = conn.getresponse()
            body = response.read()
            times.append((time.perf_counter() - t) * 1000)
            assert response.status == 200, (path, response.status, body[:300])
            size = len(body)
        worst = max(worst, statistics.median(times))
        print(f"{name:32} {statistics.median(times):10.1f} {max(times):8.1f} {size:9}")
    # The live preview: the settings form posted with do=preview (every
    # image evaluated; half of them listed as what would expire).
    import re
    conn.request("GET", f"/console/repositories/{quoted}?settings", headers={"Cookie": cookie})
    page = conn.getresponse().read().decode()
    csrf = re.search(r'name="csrf" value="([^"]+)"', page).group(1)
    policy = json.dumps({"rules": [{"rulePriority": 1, "selection": {
        "tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": args.images // 2},
        "action": {"type": "expire"}}]})
    form = urllib.parse.urlencode({"csrf": csrf, "name": REPO, "text": policy, "do": "preview"})
    times, size = [], 0
    for _ in range(max(3, args.rounds // 4)):
        t = time.perf_counter()
        conn.request("POST", "/console/actions/lifecycle", body=form, headers={
            "Cookie": cookie, "Content-Type": "application/x-www-form-urlencoded"})
        response = conn.getresponse()
        body = response.read()
        times.append((time.perf_counter() - t) * 1000)
        assert response.status == 200, (response.status, body[:300])
        size = len(body)
    worst = max(worst, statistics.median(times))
    print(f"{'lifecycle preview (POST)':32} {statistics.median(times):10.1f} {max(times):8.1f} {size:9}")
    print(f"slowest median: {worst:.1f} ms (goal < 100 ms)")
    return 0 if worst < 100 else 1


if __name__ == "__main__":
    sys.exit(main())
