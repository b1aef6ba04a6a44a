#!/usr/bin/env bash
# Benchmark: ebsimager's acquisition against the emulator, with a quota
# bucket of a given depth, latency and quota, next to a minimal reference
# client at the ceiling (no latency, no quota). It builds ebsimager and the
# benchmark from this tree and prints a Markdown table for the README.
#
#   bash bench/acquire/run.sh                         # the whole matrix and the ceiling
#   bash bench/acquire/run.sh -rows ceiling           # only the ceiling rows
#   bash bench/acquire/run.sh -rows b0.1s/20ms -size 4
#   bash bench/acquire/run.sh -only memory            # peak RSS on 16 and 64 TiB snapshots
#   bash bench/acquire/run.sh -list                   # the row ids -rows matches
#
# Flags are the benchmark's own (go run ./bench/acquire -h). It needs about
# half of -size (GiB) free in $TMPDIR: one row's output at a time.
set -euo pipefail
cd "$(dirname "$0")/../.."

work=$(mktemp -d "${TMPDIR:-/tmp}/acquire-bench.XXXXXX")
trap 'rm -rf "$work"' EXIT
go build -o "$work/ebsimager" ./cmd/ebsimager
go build -o "$work/acquire-bench" ./bench/acquire
ACQUIRE_BENCH_COMMAND="bash bench/acquire/run.sh${*:+ $*}" "$work/acquire-bench" -bin "$work/ebsimager" "$@"
