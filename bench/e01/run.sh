#!/usr/bin/env bash
# Benchmark: ebsimager's E01 writer against libewf's ewfacquire, in the same
# run, on the same raw image, at the same compression level and segment size.
# It reports wall time and output size of each, and the ratios.
#
#   bash bench/e01/run.sh                          # 1 GiB image, level fast, 3 runs each
#   SIZE_MIB=2048 LEVEL=best RUNS=1 bash bench/e01/run.sh
#
# The image (built here, without mounting anything): a GPT disk whose first
# half is an ext4 partition filled with real files copied from /usr, then a
# quarter of random bytes, then zeros. Both tools compute MD5, SHA-1 and
# SHA-256. Each timing is the best of RUNS, the tools taking turns; CPU time
# (user + sys) is shown too, as it holds up better on a busy machine.
set -euo pipefail
cd "$(dirname "$0")/../.."

SIZE_MIB=${SIZE_MIB:-1024}
LEVEL=${LEVEL:-fast}               # none, fast or best
SEGMENT=${SEGMENT:-1572864000}     # ewfacquire's default "1.4 GiB": 1500 MiB
RUNS=${RUNS:-3}
WORK=${WORK:-$(mktemp -d /tmp/e01bench.XXXXXX)}
KEEP=${KEEP:-0}                    # 1 keeps $WORK

for tool in ewfacquire ewfverify mkfs.ext4 sfdisk go awk; do
	command -v "$tool" >/dev/null || { echo "run.sh: $tool is not installed" >&2; exit 1; }
done
[ "$KEEP" = 1 ] || trap 'rm -rf "$WORK"' EXIT

# ewfacquire's "none" stores zero chunks raw; ours always compresses them
# ("empty-block"), which is ewfacquire's empty-block level.
case "$LEVEL" in
none) libewf_level=empty-block ;;
fast | best) libewf_level=$LEVEL ;;
*) echo "run.sh: LEVEL must be none, fast or best" >&2; exit 1 ;;
esac

raw=$WORK/disk.raw
part_mib=$((SIZE_MIB / 2))
rand_mib=$((SIZE_MIB / 4))
echo "building a ${SIZE_MIB} MiB disk in $WORK" >&2
mkdir -p "$WORK/root"
# Real files for about 70% of the partition: a tar stream of /usr cut at
# the budget, unpacked (the last file may be cut short, like any file).
budget=$((part_mib * 7 / 10 * 1024 * 1024))
(tar -cf - /usr/lib /usr/bin /usr/share 2>/dev/null || true) | head -c "$budget" |
	(tar -xf - -C "$WORK/root" 2>/dev/null || true)
# One inode per 4 KiB: /usr holds many small files.
mkfs.ext4 -q -F -N $((part_mib * 256)) -d "$WORK/root" "$WORK/part.img" "${part_mib}M"
rm -rf "$WORK/root"
truncate -s "${SIZE_MIB}M" "$raw"
printf 'label: gpt\nstart=2048, size=%d, type=linux\n' $((part_mib * 2048)) | sfdisk -q "$raw"
dd if="$WORK/part.img" of="$raw" bs=1M seek=1 conv=notrunc status=none
rm -f "$WORK/part.img"
dd if=/dev/urandom of="$raw" bs=1M seek=$((1 + part_mib)) count="$rand_mib" conv=notrunc status=none
cat "$raw" >/dev/null # both tools read from the page cache

go build -o "$WORK/e01bench" ./bench/e01

# timed FILE CMD...: runs CMD and writes "wall user+sys" seconds to FILE.
timed() {
	local out=$1
	shift
	if [ -x /usr/bin/time ]; then
		/usr/bin/time -f '%e %U %S' -o "$out.t" "$@"
		awk '{ print $1, $2 + $3 }' "$out.t" >"$out"
	else
		local t0 t1
		t0=$(date +%s.%N)
		"$@"
		t1=$(date +%s.%N)
		awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a, 0 }' >"$out"
	fi
}
minof() { awk -v a="$1" -v b="${2:-1e99}" 'BEGIN { print (a < b) ? a : b }'; }

best_ours= best_libewf= cpu_ours= cpu_libewf=
for run in $(seq "$RUNS"); do
	rm -rf "$WORK/ours" "$WORK/libewf"
	mkdir -p "$WORK/ours" "$WORK/libewf"
	timed "$WORK/ours.time" "$WORK/e01bench" -in "$raw" -out "$WORK/ours/img" -level "$LEVEL" -segment "$SEGMENT" >"$WORK/ours.json"
	timed "$WORK/libewf.time" ewfacquire -u -q -c "$libewf_level" -S "$SEGMENT" -d sha1,sha256 -t "$WORK/libewf/img" "$raw" >"$WORK/libewf.log" 2>&1
	read -r t_ours c_ours <"$WORK/ours.time"
	read -r t_libewf c_libewf <"$WORK/libewf.time"
	echo "run $run: ebsimager ${t_ours}s (cpu ${c_ours}s), ewfacquire ${t_libewf}s (cpu ${c_libewf}s)" >&2
	best_ours=$(minof "$t_ours" "$best_ours")
	best_libewf=$(minof "$t_libewf" "$best_libewf")
	cpu_ours=$(minof "$c_ours" "$cpu_ours")
	cpu_libewf=$(minof "$c_libewf" "$cpu_libewf")
	size_ours=$(du -cb "$WORK"/ours/img.E* | tail -1 | cut -f1)
	size_libewf=$(du -cb "$WORK"/libewf/img.E* | tail -1 | cut -f1)
done

md5_ours=$(sed -n 's/.*"md5":"\([0-9a-f]*\)".*/\1/p' "$WORK/ours.json")
md5_libewf=$(sed -n 's/^MD5 hash calculated over data:[[:space:]]*//p' "$WORK/libewf.log")
if [ "$md5_ours" != "$md5_libewf" ]; then
	echo "run.sh: MD5 differs: ebsimager $md5_ours, ewfacquire $md5_libewf" >&2
	exit 1
fi
ewfverify -q "$WORK/ours/img.E01" | grep -q 'ewfverify: SUCCESS' || { echo "run.sh: ewfverify rejects our image" >&2; exit 1; }

cpus=$(nproc)
printf '\nimage: %d MiB (ext4 with files %d MiB, random %d MiB, zeros), level %s, segment %d bytes, %d CPUs, best of %d\n' \
	"$SIZE_MIB" "$part_mib" "$rand_mib" "$LEVEL" "$SEGMENT" "$cpus" "$RUNS"
printf '%-12s %10s %10s %14s\n' tool wall-s cpu-s bytes
printf '%-12s %10.2f %10.2f %14d\n' ebsimager "$best_ours" "$cpu_ours" "$size_ours"
printf '%-12s %10.2f %10.2f %14d\n' ewfacquire "$best_libewf" "$cpu_libewf" "$size_libewf"
printf 'speed ratio (ewfacquire wall time / ebsimager wall time): %.2fx\n' "$(awk -v a="$best_libewf" -v b="$best_ours" 'BEGIN { print a / b }')"
printf 'cpu ratio (ewfacquire cpu time / ebsimager cpu time): %.2fx\n' "$(awk -v a="$cpu_libewf" -v b="$cpu_ours" 'BEGIN { print a / b }')"
printf 'size ratio (ebsimager bytes / ewfacquire bytes): %.4f\n' "$(awk -v a="$size_ours" -v b="$size_libewf" 'BEGIN { print a / b }')"
echo "md5 $md5_ours (both); ewfverify accepts ebsimager's image"
