#!/usr/bin/env bash
# Before/after: the same block-moving jobs with two ebsimager binaries, one
# after the other on the same emulator and the same evidence, so that a
# refactoring can show it costs nothing. For each job it prints wall time,
# CPU time (user+sys) and peak RSS from /usr/bin/time, best of RUNS
# rounds, each running the old binary and then the new one.
#
#   bash bench/compare/run.sh OLD_BINARY NEW_BINARY
#   SIZE=8 FRACTION=0.5 RUNS=3 bash bench/compare/run.sh old new
#
# Jobs: acquire --out, acquire --image (raw), export to raw and to E01,
# compress (zstd, in place, on a copy), inspect, verify. The emulator has
# no latency and no quota (the ceiling); bench/acquire measures the
# limiter under quotas. Needs about 2 x SIZE x FRACTION GiB in $TMPDIR.
set -euo pipefail
old=$(realpath "$1") new=$(realpath "$2")
SIZE=${SIZE:-8} FRACTION=${FRACTION:-0.5} RUNS=${RUNS:-3}
work=$(mktemp -d "${TMPDIR:-/tmp}/compare-bench.XXXXXX")
trap 'kill $emu 2>/dev/null || true; rm -rf "$work"' EXIT

snap=snap-0bec0000000000001
"$old" emulate --synthetic "$snap=${SIZE}GiB,$FRACTION,7" > "$work/emu.out" 2> "$work/emu.err" &
emu=$!
for _ in $(seq 100); do grep -q endpoint= "$work/emu.out" 2>/dev/null && break; sleep 0.1; done
endpoint=$(sed -n 's/.*endpoint=\([^;]*\);.*/\1/p' "$work/emu.out" | head -1)
export AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench AWS_REGION=us-east-1 \
	AWS_ENDPOINT_URL="$endpoint" AWS_EC2_METADATA_DISABLED=true

# once NAME BIN ARGS...: one run after prep(), as "wall cpu rss_mib".
once() {
	local name=$1 bin=$2; shift 2
	prep
	/usr/bin/time -f "%e %U %S %M" -o "$work/time" "$bin" "$@" > /dev/null 2> "$work/err" ||
		{ echo "$name failed:" >&2; cat "$work/err" >&2; exit 1; }
	awk '{ printf "%.2f %.2f %d", $1, $2 + $3, $4 / 1024 }' "$work/time"
}

# best A B: the line with the lower wall time ("" counts as none).
best() {
	if [ -z "$1" ] || awk -v a="$2" -v b="$1" 'BEGIN { split(a, x, " "); split(b, y, " "); exit !(x[1] < y[1]) }'; then
		echo "$2"
	else
		echo "$1"
	fi
}

# row NAME ARGS...: RUNS rounds, each running the old binary then the
# new one, so that drift on the machine (write-back, other load) falls
# on both alike; the best of each.
row() {
	local name=$1; shift
	local o="" n="" i
	for i in $(seq "$RUNS"); do
		o=$(best "$o" "$(once "$name" "$old" "$@")")
		n=$(best "$n" "$(once "$name" "$new" "$@")")
	done
	awk -v name="$name" -v o="$o" -v n="$n" 'BEGIN {
		split(o, a, " "); split(n, b, " ")
		printf "| %-16s | %6.2f s | %6.2f s | %5.2f | %6.2f s | %6.2f s | %4d MiB | %4d MiB |\n", name, a[1], b[1], b[1] / a[1], a[2], b[2], a[3], b[3]
	}'
}

echo "host: $(nproc) cores, $(go version | cut -d' ' -f3); ${SIZE} GiB synthetic, fraction $FRACTION, best of $RUNS"
echo
echo "| job              | old wall | new wall | new/old | old CPU  | new CPU  | old RSS  | new RSS  |"
echo "|------------------|----------|----------|---------|----------|----------|----------|----------|"
prep() { rm -rf "$work/ev"; }
row "acquire --out" acquire "$snap" --out "$work/ev"
prep() { rm -rf "$work"/img.raw*; }
row "acquire --image" acquire "$snap" --image "$work/img.raw"
rm -rf "$work"/img.raw*
"$old" acquire "$snap" --out "$work/ev" > /dev/null 2>&1
row "export raw" export "$work/ev" --out "$work/img.raw" --force
prep() { rm -rf "$work"/img.E* "$work"/img.md5 "$work"/img.sha1 "$work"/img.sha256; }
row "export e01" export "$work/ev" --format e01 --out "$work/img.E01" --force
prep() { :; }
row "inspect" inspect "$work/ev"
row "verify" verify "$work/ev"
prep() { rm -rf "$work/cp"; cp -a "$work/ev" "$work/cp"; }
row "compress zstd" compress "$work/cp" --codec zstd
