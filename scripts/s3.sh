#!/usr/bin/env bash
# Starts an S3-compatible server for the tests: s3s-fs (the s3s project's
# filesystem-backed S3 server; it checks SigV4 signatures and supports
# multipart uploads and copies), built from crates.io on first use. Prints
# its endpoint URL; the bucket `berth` exists, reached with the key pair
# s3-test-key / s3-test-secret.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v s3s-fs >/dev/null; then
  echo "installing s3s-fs 0.14.1 (cargo install, a few minutes once)" >&2
  cargo install s3s-fs@0.14.1 --features binary --locked --quiet >&2
fi
root=target/s3
rm -rf "$root"
mkdir -p "$root/berth"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
(s3s-fs --host 127.0.0.1 --port "$port" --access-key s3-test-key --secret-key s3-test-secret "$root" \
   > target/s3s-fs.log 2>&1 &)
for _ in $(seq 50); do
  python3 -c "import socket; socket.create_connection(('127.0.0.1', $port), 1)" 2>/dev/null && break
  sleep 0.2
done
echo "http://127.0.0.1:$port"
