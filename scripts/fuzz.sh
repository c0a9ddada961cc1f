#!/usr/bin/env bash
# Coverage-guided fuzzing of every parser that reads client bytes, on the
# stable toolchain: libFuzzer through cargo-fuzz, built without a sanitizer
# (sanitizers need nightly; Rust code is memory-safe without them, and
# panics, overflows, hangs and runaway memory are what we look for).
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]
#
# SECONDS_PER_TARGET defaults to 60; TARGETs default to every target in
# fuzz/Cargo.toml. Builds, then runs each target for that long starting
# from its seed corpus in fuzz/corpus/<target>/ (read-only: new inputs go
# to a scratch directory; FUZZ_MERGE=1 merges the ones that add coverage
# back into fuzz/corpus/). Prints the executions per target and every
# crash, hang or out-of-memory with its reproducer under
# fuzz/artifacts/<target>/, and exits non-zero if any was found.
#
# Reproduce one: scripts/fuzz.sh --repro TARGET PATH
# Builds are heavy on a small machine: CARGO_BUILD_JOBS=1 nice -n 10 scripts/fuzz.sh
# FUZZ_SERVER=0 leaves out the targets needing berth-server (the slowest build).
set -euo pipefail

CARGO_FUZZ_VERSION=0.13.2
# Stable: no sanitizer; -O with debug assertions and overflow checks on.
BUILD_FLAGS=(-O --debug-assertions --sanitizer none)
# A run fails on a panic, on an input taking over 10 s, or on 2 GiB resident.
RUN_FLAGS=(-timeout=10 -rss_limit_mb=2048 -print_final_stats=1)

SERVER_TARGETS=(query range)
if [[ "${FUZZ_SERVER:-1}" == 0 ]]; then
    BUILD_FLAGS+=(--no-default-features)
fi

caller_dir="$PWD"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root/fuzz"

if ! cargo fuzz --version 2>/dev/null | grep -q "$CARGO_FUZZ_VERSION"; then
    echo "== installing cargo-fuzz $CARGO_FUZZ_VERSION"
    cargo install cargo-fuzz --version "$CARGO_FUZZ_VERSION" --locked
fi

if [[ "${1:-}" == "--repro" ]]; then
    [[ $# -eq 3 ]] || { echo "usage: $0 --repro TARGET PATH" >&2; exit 2; }
    exec cargo fuzz run "${BUILD_FLAGS[@]}" "$2" "$(cd "$caller_dir" && realpath "$3")" -- -runs=1
fi

seconds="${1:-60}"
[[ "$seconds" =~ ^[0-9]+$ ]] || { echo "usage: $0 [SECONDS_PER_TARGET] [TARGET...]" >&2; exit 2; }
shift || true
if [[ $# -gt 0 ]]; then
    targets=("$@")
else
    mapfile -t targets < <(cargo fuzz list)
    if [[ "${FUZZ_SERVER:-1}" == 0 ]]; then
        mapfile -t targets < <(printf '%s\n' "${targets[@]}" | grep -vxF -f <(printf '%s\n' "${SERVER_TARGETS[@]}"))
    fi
fi

echo "== building ${#targets[@]} targets"
cargo fuzz build "${BUILD_FLAGS[@]}"

scratch="$(mktemp -d "${TMPDIR:-/tmp}/berth-fuzz.XXXXXX")"
trap 'rm -rf "$scratch"' EXIT
failed=0
summary=()
for target in "${targets[@]}"; do
    mkdir -p "corpus/$target" "artifacts/$target" "$scratch/$target"
    log="$scratch/$target.log"
    echo "== $target: ${seconds}s"
    status=0
    cargo fuzz run "${BUILD_FLAGS[@]}" "$target" "$scratch/$target" "corpus/$target" -- \
        "${RUN_FLAGS[@]}" -max_total_time="$seconds" >"$log" 2>&1 || status=$?
    runs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)"
    cov="$(grep -oE 'cov: [0-9]+' "$log" | tail -1 | cut -d' ' -f2 || true)"
    if [[ $status -eq 0 ]]; then
        summary+=("$(printf '%-14s ok     %10s execs  cov %s' "$target" "${runs:-?}" "${cov:-?}")")
    else
        failed=1
        artifact="$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -1)"
        kind="$(grep -A1 -m1 'panicked at' "$log" | tr '\n' ' ' || true)"
        [[ -n "$kind" ]] || kind="$(grep -oE -m1 'ERROR: libFuzzer: [a-z -]+' "$log" || true)"
        summary+=("$(printf '%-14s FAILED %10s execs  %s -> %s' "$target" "${runs:-?}" "${kind:-exit $status}" "${artifact:-no artifact}")")
        echo "---- $target failed (exit $status); the end of its log:"
        grep -vE '^#[0-9]+' "$log" | tail -40 || true
        echo "----"
    fi
    if [[ "${FUZZ_MERGE:-0}" == 1 ]]; then
        cargo fuzz run "${BUILD_FLAGS[@]}" "$target" "corpus/$target" "$scratch/$target" -- -merge=1 \
            >>"$log" 2>&1 || true
    fi
done

echo "== summary (${seconds}s per target)"
printf '%s\n' "${summary[@]}"
if [[ $failed -ne 0 ]]; then
    echo "== failures: reproduce with scripts/fuzz.sh --repro TARGET ARTIFACT; each becomes a unit test"
fi
exit "$failed"
