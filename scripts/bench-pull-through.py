#!/usr/bin/env python3
"""Pull-through benchmark: a cold pull through berth's cache against a pull
straight from the upstream (Debian's docker-registry on loopback), same run.

    python3 scripts/bench-pull-through.py [--bin target/release/berth] [--size-mib 512]

Prints one JSON line: MB/s of each pull (manifest, then the one layer, read
and hashed by the client), the ratio of the cold pull through the cache to the
best direct pull, and the time to the first byte of the layer.
"""
import argparse
import base64
import hashlib
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request

KEY_ID, SECRET = "AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def call(method, url, data=None, headers=None):
    req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    with urllib.request.urlopen(req) as r:
        return r.status, r.headers, r.read()


def wait_for(url):
    for _ in range(100):
        try:
            urllib.request.urlopen(url, timeout=1)
            return
        except urllib.error.HTTPError:
            return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"{url} never answered")


def push_blob(base, repo, data):
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    _, headers, _ = call("POST", f"{base}/v2/{repo}/blobs/uploads/", b"")
    location = headers["Location"]
    location = location if location.startswith("http") else base + location
    sep = "&" if "?" in location else "?"
    call("PUT", f"{location}{sep}digest={digest}", data, {"Content-Type": "application/octet-stream"})
    return digest


def pull(base, repo, layer, auth=None):
    headers = {"Accept": OCI_MANIFEST}
    if auth:
        headers["Authorization"] = auth
    start = time.time()
    call("GET", f"{base}/v2/{repo}/manifests/v1", headers=headers)
    with urllib.request.urlopen(urllib.request.Request(f"{base}/v2/{repo}/blobs/{layer}", headers=headers)) as r:
        hasher, size, first = hashlib.sha256(), 0, None
        while chunk := r.read(1 << 20):
            if first is None:
                first = time.time() - start
            hasher.update(chunk)
            size += len(chunk)
    total = time.time() - start
    assert "sha256:" + hasher.hexdigest() == layer
    return {"mb_s": round(size / total / 1e6), "first_layer_byte_s": round(first, 3)}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--bin", default="target/release/berth")
    parser.add_argument("--size-mib", type=int, default=512)
    args = parser.parse_args()
    work = tempfile.mkdtemp(prefix="bench-pull-through-")
    processes = []
    try:
        upstream_port = free_port()
        config = os.path.join(work, "upstream.yml")
        with open(config, "w") as f:
            f.write(f"version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {work}/upstream\n"
                    f"http:\n  addr: 127.0.0.1:{upstream_port}\n")
        processes.append(subprocess.Popen(["docker-registry", "serve", config],
                                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        upstream = f"http://127.0.0.1:{upstream_port}"
        wait_for(upstream + "/v2/")
        layer = push_blob(upstream, "lib/big", os.urandom(args.size_mib << 20))
        config_blob = b'{"os":"linux","architecture":"amd64"}'
        config_digest = push_blob(upstream, "lib/big", config_blob)
        manifest = json.dumps({
            "schemaVersion": 2, "mediaType": OCI_MANIFEST,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest,
                       "size": len(config_blob)},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer,
                        "size": args.size_mib << 20}]}).encode()
        call("PUT", f"{upstream}/v2/lib/big/manifests/v1", manifest, {"Content-Type": OCI_MANIFEST})

        direct = [pull(upstream, "lib/big", layer)]
        berth_port = free_port()
        env = {**os.environ, "BERTH_ROOT_ACCESS_KEY_ID": KEY_ID, "BERTH_ROOT_SECRET_ACCESS_KEY": SECRET,
               "BERTH_LOG": "warn"}
        processes.append(subprocess.Popen(
            [args.bin, "serve", "--listen", f"127.0.0.1:{berth_port}", "--data-dir", f"{work}/berth",
             "--insecure-upstream", f"127.0.0.1:{upstream_port}"], env=env, stdout=subprocess.DEVNULL))
        berth = f"http://127.0.0.1:{berth_port}"
        wait_for(berth + "/v2/")
        subprocess.run(["aws", "--endpoint-url", berth, "--region", "us-east-1", "ecr",
                        "create-pull-through-cache-rule", "--ecr-repository-prefix", "mirror",
                        "--upstream-registry-url", f"127.0.0.1:{upstream_port}"],
                       env={**os.environ, "AWS_ACCESS_KEY_ID": KEY_ID, "AWS_SECRET_ACCESS_KEY": SECRET,
                            "AWS_CONFIG_FILE": "/dev/null"}, check=True, capture_output=True)
        auth = "Basic " + base64.b64encode(f"{KEY_ID}:{SECRET}".encode()).decode()
        cpu = lambda pid: sum(int(x) for x in open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[11:13]) / os.sysconf("SC_CLK_TCK")
        before = [cpu(p.pid) for p in processes]
        cold = pull(berth, "mirror/lib/big", layer, auth)
        spent = [round(cpu(p.pid) - b, 2) for p, b in zip(processes, before)]
        cold["cpu_s"] = {"upstream": spent[0], "berth": spent[1]}
        warm = pull(berth, "mirror/lib/big", layer, auth)
        direct.append(pull(upstream, "lib/big", layer))
        best = max(d["mb_s"] for d in direct)
        print(json.dumps({
            "size_mib": args.size_mib, "direct": direct, "cold_through_cache": cold, "warm": warm,
            "cold_ratio_to_direct": round(cold["mb_s"] / best, 3),
            "warm_ratio_to_direct": round(warm["mb_s"] / best, 3)}))
    finally:
        for p in processes:
            p.terminate()
            p.wait()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
