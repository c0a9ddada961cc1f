#!/usr/bin/env bash
# Installs everything the tests need, then runs them all:
#   formatting and lints, unit and end-to-end tests (cargo), the OCI conformance
#   suite, and the real-client suite (skopeo, oras, aws CLI, boto3, docker);
#   then the end-to-end tests, conformance and clients again on PostgreSQL + S3.
# Usage: scripts/test.sh
set -euo pipefail
cd "$(dirname "$0")/.."
# A CI build gains nothing from incremental artifacts, which take gigabytes.
export CARGO_INCREMENTAL=0
echo "== free disk: $(df -h --output=avail . | tail -1)"

need_apt=()
command -v skopeo >/dev/null || need_apt+=(skopeo)
command -v buildah >/dev/null || need_apt+=(buildah)
command -v podman >/dev/null || need_apt+=(podman)
command -v busybox >/dev/null || need_apt+=(busybox-static)
command -v chromium >/dev/null || need_apt+=(chromium)
command -v chromedriver >/dev/null || need_apt+=(chromium-driver)
command -v dockerd >/dev/null || need_apt+=(docker.io)
command -v docker-credential-ecr-login >/dev/null || need_apt+=(amazon-ecr-credential-helper)
command -v debootstrap >/dev/null || need_apt+=(debootstrap)
command -v systemd-analyze >/dev/null || need_apt+=(systemd)
command -v strip >/dev/null || need_apt+=(binutils)
command -v docker-registry >/dev/null || need_apt+=(docker-registry)
command -v pg_ctlcluster >/dev/null || need_apt+=(postgresql)
command -v xz >/dev/null || need_apt+=(xz-utils)
command -v openssl >/dev/null || need_apt+=(openssl)
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || need_apt+=(nginx-light)
python3 -c 'import venv, ensurepip' 2>/dev/null || need_apt+=(python3-venv)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "== installing ${need_apt[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${need_apt[@]}" > /dev/null
fi

if ! docker info >/dev/null 2>&1; then
  echo "== starting a docker engine (containerd + dockerd, vfs storage)"
  mkdir -p target
  pgrep -x containerd >/dev/null || (containerd > target/containerd.log 2>&1 &)
  for _ in $(seq 50); do [ -S /run/containerd/containerd.sock ] && break; sleep 0.2; done
  (dockerd --containerd=/run/containerd/containerd.sock --iptables=false --ip6tables=false \
     --bridge=none --storage-driver=vfs > target/dockerd.log 2>&1 &)
  for _ in $(seq 150); do docker info >/dev/null 2>&1 && break; sleep 0.2; done
  docker info >/dev/null || { tail -n 20 target/dockerd.log; exit 1; }
fi

echo "== python clients (.venv)"
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/pip install -q --disable-pip-version-check -r tests/clients/requirements.txt

echo "== format and lints"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings

echo "== cargo tests"
cargo build --workspace --locked
cargo test --workspace --locked

echo "== OCI conformance"
scripts/conformance.sh target/debug/berth

echo "== benchmark smoke run (a check that it works, not a timing)"
target/debug/berth bench --scenario blob,push,pull,burst,metadata,scale \
  --blob-size 16MiB --chunk-size 4MiB --layers 3x64KiB,1x6MiB --clients 2 --images 1 --rounds 2 --burst-clients 3 \
  --duration 1s --metadata-clients 4 --scale-tags 2000 --scale-repos 150 \
  --history target/bench-history.json
target/debug/berth bench --scenario housekeeping --housekeeping-images 2000 --housekeeping-blobs 20000 \
  --work-dir target
target/debug/berth bench --scenario scan --scan-layer-size 48MiB --work-dir target

# An S3 server for both rounds: build sources are read from it, and the
# second round keeps blobs in it.
AWS_ENDPOINT_URL_S3=$(PATH="$HOME/.cargo/bin:$PATH" scripts/s3.sh)
export AWS_ENDPOINT_URL_S3

echo "== SDK scenarios: the JS SDK's packages, the Rust SDK scenario's build"
(cd tests/sdk/js && npm ci --no-audit --no-fund --loglevel=error)
nice -n 10 cargo build -j 1 --locked --manifest-path tests/sdk/rust/Cargo.toml --target-dir tests/sdk/rust/target

clients() { PATH="$PWD/.venv/bin:$PATH" BERTH_BIN="$PWD/target/debug/berth" .venv/bin/pytest -q tests/clients; }
echo "== real clients (skopeo, oras, aws CLI, boto3, docker, buildah)"
clients

echo "== the behaviour suite again, on PostgreSQL + S3 (s3s-fs)"
BERTH_TEST_DATABASE_URL=$(scripts/postgres.sh)
export BERTH_TEST_DATABASE_URL
export AWS_ACCESS_KEY_ID=s3-test-key AWS_SECRET_ACCESS_KEY=s3-test-secret BERTH_TEST_STORAGE_URL=s3://berth
cargo test -p berth --test oci_api --test multi_node --test gc --test integrity --test hostile --test jobs --locked
cargo test -p berth-store --test outbox --locked
CONFORMANCE_RESULTS=target/conformance-postgres-s3 scripts/conformance.sh target/debug/berth
clients

echo "== crash soak, short form (scripts/soak.sh runs it for longer)"
scripts/soak.sh 40s
