#!/usr/bin/env bash
# Measures the stored-block codecs on one core (GOMAXPROCS=1), the
# acquisition store step (SHA-256 + zstd + age) on one and two cores, the
# read side, and the original tool's Python gzip/Fernet on the same disk.
# Needs mkfs.ext4 and, for the last part, python3 with `cryptography`.
# Takes a few minutes; run it on an otherwise idle machine.
set -euo pipefail
cd "$(dirname "$0")/../.."
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
export EBSIMAGER_BENCH_DIR=$dir
go test -run '^$' -bench 'Store|Open' -benchtime 2s -count 1 -cpu 1 ./bench/codec/
go test -run '^$' -bench 'AcquireBlock' -benchtime 2s -count 1 -cpu 1,2 ./bench/codec/
python3 bench/codec/original.py "$dir/disk.img"
