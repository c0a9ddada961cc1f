#!/usr/bin/env bash
# The crash soak (scripts/soak.py) on both backend pairs: SQLite + filesystem
# with an emulated power loss after each kill, then two nodes sharing
# PostgreSQL + S3 (s3s-fs), one of them killed each round.
# Usage: scripts/soak.sh [DURATION per backend pair, default 10m]
# Uses BERTH_BIN (default target/debug/berth), and the PostgreSQL and S3
# servers named in the environment, or starts them as the tests do.
set -euo pipefail
cd "$(dirname "$0")/.."
duration=${1:-10m}
[ -x "${BERTH_BIN:-target/debug/berth}" ] || cargo build -p berth --locked
[ -x .venv/bin/python ] || { python3 -m venv .venv && .venv/bin/pip install -q -r tests/clients/requirements.txt; }

echo "== crash soak: SQLite + filesystem, power loss after each kill ($duration)"
.venv/bin/python scripts/soak.py --duration "$duration" --power-loss

echo "== crash soak: two nodes on PostgreSQL + S3, one killed each round ($duration)"
if [ -z "${BERTH_TEST_DATABASE_URL:-}" ]; then
  BERTH_TEST_DATABASE_URL=$(scripts/postgres.sh)
  export BERTH_TEST_DATABASE_URL
fi
if [ -z "${AWS_ENDPOINT_URL_S3:-}" ]; then
  AWS_ENDPOINT_URL_S3=$(PATH="$HOME/.cargo/bin:$PATH" scripts/s3.sh)
  export AWS_ENDPOINT_URL_S3
fi
export AWS_ACCESS_KEY_ID=${AWS_ACCESS_KEY_ID:-s3-test-key} AWS_SECRET_ACCESS_KEY=${AWS_SECRET_ACCESS_KEY:-s3-test-secret}
export BERTH_TEST_STORAGE_URL=${BERTH_TEST_STORAGE_URL:-s3://berth}
.venv/bin/python scripts/soak.py --duration "$duration" --backend postgres-s3 --nodes 2
