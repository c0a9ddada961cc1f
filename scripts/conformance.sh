#!/usr/bin/env bash
# Runs the OCI distribution-spec conformance suite (../shared/tools/oci-conformance.xz)
# against a berth it starts itself; the report lands in target/conformance/.
# Usage: scripts/conformance.sh [path/to/berth]
set -euo pipefail
cd "$(dirname "$0")/.."

suite_xz=../shared/tools/oci-conformance.xz
if [ ! -f "$suite_xz" ]; then
  echo "conformance: $suite_xz not present; skipped"
  exit 0
fi
berth=${1:-target/debug/berth}
mkdir -p target
xz -dc "$suite_xz" > target/oci-conformance
chmod +x target/oci-conformance

data=$(mktemp -d)
out=$(mktemp)
database=()
if [ -n "${BERTH_TEST_DATABASE_URL:-}" ]; then
  case "$BERTH_TEST_DATABASE_URL" in *\?*) sep='&' ;; *) sep='?' ;; esac
  database=(--database "${BERTH_TEST_DATABASE_URL}${sep}schema=conformance_$$")
fi
if [ -n "${BERTH_TEST_STORAGE_URL:-}" ]; then
  database+=(--storage "${BERTH_TEST_STORAGE_URL%/}/conformance_$$")
fi
key_id=AKIACONFORMANCE00001
secret=conformance-secret-access-key-0000000000
BERTH_ROOT_ACCESS_KEY_ID=$key_id BERTH_ROOT_SECRET_ACCESS_KEY=$secret \
  "$berth" serve "${database[@]}" --create-on-push --listen 127.0.0.1:0 --data-dir "$data/data" > "$out" 2> "$data/berth.log" &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$data" "$out"' EXIT
for _ in $(seq 100); do grep -q http:// "$out" && break; sleep 0.1; done
address=$(sed -n 's|.*http://\([^/]*\)/v2/.*|\1|p' "$out" | head -n 1)

results=${CONFORMANCE_RESULTS:-target/conformance}
rm -rf "$results"
# Everything berth supports is enabled. Left at their defaults: anonymous mount (berth mounts
# only from a named repository, as ECR gates mounting) and sparse indexes (berth, like ECR,
# refuses an index whose children are missing).
OCI_REGISTRY="$address" OCI_TLS=disabled \
OCI_REPO1=conformance/repo1 OCI_REPO2=conformance/repo2 \
OCI_USERNAME="$key_id" OCI_PASSWORD="$secret" \
OCI_API_BLOBS_UPLOAD_CANCEL=true OCI_API_MANIFESTS_TAG_PARAM=true \
OCI_RESULTS_DIR="$results" \
  target/oci-conformance > "$results.log" 2>&1 || {
    grep -E 'failed test|FAIL' "$results.log" | head -n 40
    echo "conformance: FAILED (full log: $results.log, berth log below)"
    tail -n 20 "$data/berth.log"
    exit 1
  }
grep -E '^\s+(Pass|FAIL|Skip|Disabled|Error)\.+' "$results.log" | tr -s ' .' ' '
echo "conformance: passed (report: $results/)"
