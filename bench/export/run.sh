#!/usr/bin/env bash
# Export-style whole-image hashing: ebsimager's digest package computing
# MD5, SHA-1 and SHA-256 in one pass (bench/export hash) against md5sum,
# sha1sum and sha256sum run in parallel on the same file. The image is
# generated here (seeded random data, every eighth 512 KiB block zeros and
# a 256 MiB run of zeros), read once to warm the page cache so that both
# sides hash from memory, and deleted afterwards.
#
# Usage: bench/export/run.sh            (8 GiB image, best of 2 runs)
#        SIZE=1G RUNS=3 bench/export/run.sh
#        IMAGE=1 bench/export/run.sh    (also time raw.Writer, which writes
#                                        a second, sparse copy)
# Needs about SIZE of free disk in $TMPDIR (twice with IMAGE=1).
set -euo pipefail

SIZE=${SIZE:-8G}
RUNS=${RUNS:-2}
IMAGE=${IMAGE:-0}

cd "$(dirname "$0")/../.."
tmp=$(mktemp -d "${TMPDIR:-/tmp}/ebsimager-bench-export.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
img=$tmp/image.raw

now() { date +%s%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", (b - a) / 1e9 }'; }
best() { awk -v a="$1" -v b="$2" 'BEGIN { print (a == "" || b < a) ? b : a }'; }

go build -o "$tmp/export" ./bench/export
echo "host: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg), $(go version | cut -d' ' -f3)"
echo "generating $SIZE in $tmp ..."
"$tmp/export" gen "$SIZE" "$img"
cat "$img" > /dev/null
bytes=$(stat -c %s "$img")

core_best="" go_best="" image_best=""
for run in $(seq "$RUNS"); do
	t0=$(now)
	md5sum "$img" > "$tmp/md5" & p1=$!
	sha1sum "$img" > "$tmp/sha1" & p2=$!
	sha256sum "$img" > "$tmp/sha256" & p3=$!
	wait $p1 $p2 $p3
	t1=$(now)
	core=$(secs "$t0" "$t1")
	echo "run $run: coreutils md5sum & sha1sum & sha256sum: ${core} s"
	core_best=$(best "$core_best" "$core")

	out=$("$tmp/export" hash "$img")
	echo "run $run: $out"
	go=$(sed -n 's/.*seconds=\([0-9.]*\).*/\1/p' <<<"$out")
	go_best=$(best "$go_best" "$go")

	for alg in md5 sha1 sha256; do
		want=$(cut -d' ' -f1 "$tmp/$alg")
		got=$(sed -n "s/.* $alg=\([0-9a-f]*\).*/\1/p" <<<"$out")
		if [ "$want" != "$got" ]; then
			echo "MISMATCH: $alg coreutils $want, digest $got" >&2
			exit 1
		fi
	done

	if [ "$IMAGE" = 1 ]; then
		rm -f "$tmp/out.raw" "$tmp"/out.raw.*
		out=$("$tmp/export" image "$img" "$tmp/out.raw")
		echo "run $run: $out (on disk: $(du -k "$tmp/out.raw" | cut -f1) KiB)"
		image_best=$(best "$image_best" "$(sed -n 's/.*seconds=\([0-9.]*\).*/\1/p' <<<"$out")")
		cmp "$img" "$tmp/out.raw"
	fi
done

echo
echo "image: $bytes bytes; digests agree with coreutils"
awk -v c="$core_best" -v g="$go_best" -v n="$bytes" 'BEGIN {
	printf "best coreutils (3 processes): %.2f s  %.0f MiB/s\n", c, n / 1048576 / c
	printf "best digest (md5,sha1,sha256): %.2f s  %.0f MiB/s\n", g, n / 1048576 / g
	printf "ratio digest/coreutils wall time: %.2f\n", g / c
}'
if [ "$IMAGE" = 1 ]; then
	awk -v c="$core_best" -v g="$image_best" 'BEGIN { printf "best raw.Writer export: %.2f s, ratio to coreutils %.2f\n", g, g / c }'
fi
