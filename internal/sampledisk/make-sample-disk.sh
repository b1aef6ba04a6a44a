#!/usr/bin/env bash
# make-sample-disk.sh builds ebsimager's sample evidence disk with the real
# file-system tools, without mounting anything and without loop devices.
#
# usage: make-sample-disk.sh OUT.raw [ARTIFACT_DIR]
#
# OUT.raw becomes a sparse 1 GiB disk (EBS VolumeSize is whole GiB) holding a
# GPT with two 64 MiB partitions:
#   1  Linux filesystem      ext4, label evidence-ext4, files written by
#                            mkfs.ext4 -d and debugfs write, in subdirectories
#   2  Microsoft basic data  NTFS, label EVIDENCE-NTFS, files written by ntfscp
# files.json (partition, file system, path, size, sha256 of every file) is
# written beside OUT.raw. With ARTIFACT_DIR, sample.raw.zst and files.json are
# also written there (this is how internal/sampledisk's committed copies are
# made).
#
# UUIDs, labels, serials and timestamps are fixed. mkfs.ext4 honours
# E2FSPROGS_FAKE_TIME, mkntfs -T zeroes its clock, and debugfs resets the
# change time that mkfs.ext4 -d copies from the staging files. ntfscp stamps
# files with the current time: when faketime(1) is installed it runs with a
# frozen clock and the disk is byte-for-byte reproducible; without it the
# NTFS file timestamps differ between runs.
#
# Needs: sfdisk (fdisk), mkfs.ext4 and debugfs (e2fsprogs), mkntfs,
# ntfslabel and ntfscp (ntfs-3g), awk, seq, sha256sum, dd, truncate; zstd
# only with ARTIFACT_DIR; faketime optional.
set -euo pipefail
export LC_ALL=C TZ=UTC

if [ $# -lt 1 ] || [ $# -gt 2 ]; then
	echo "usage: $0 OUT.raw [ARTIFACT_DIR]" >&2
	exit 2
fi
out=$1
artifacts=${2:-}
mkdir -p "$(dirname "$out")"
outdir=$(cd "$(dirname "$out")" && pwd)
out="$outdir/$(basename "$out")"

# The fixed moment every timestamp is set to: 2024-01-02T03:04:05Z.
stamp='2024-01-02 03:04:05'
epoch=1704164645
export SOURCE_DATE_EPOCH=$epoch
export E2FSPROGS_FAKE_TIME=$epoch

# Layout in 512-byte sectors. Partitions start on 1 MiB boundaries (2048
# sectors, sfdisk's default alignment) and are 64 MiB (131072 sectors) each.
disk_bytes=$((1 << 30))
p1_start=2048
p1_sectors=131072
p2_start=$((p1_start + p1_sectors))
p2_sectors=131072

disk_guid=5EB1A6E5-0000-4000-8000-00000000D15C
p1_guid=5EB1A6E5-0001-4000-8000-0000000E0004
p2_guid=5EB1A6E5-0002-4000-8000-00000000A7F5
ext4_uuid=0e4d1c2b-3a49-4f5e-8d6c-7b8a9c0d1e2f
ext4_hash_seed=6f1d2c3b-4a59-4e6f-8071-a2b3c4d5e6f7
ntfs_serial=5EB1A6E5D15C0002

work=$(mktemp -d "$outdir/.sampledisk.XXXXXX")
trap 'rm -rf "$work"' EXIT

frozen() {
	if command -v faketime >/dev/null 2>&1; then
		faketime -f "$stamp" "$@"
	else
		"$@"
	fi
}

# --- the files -------------------------------------------------------------
ext=$work/ext4-root
ntfs=$work/ntfs-root
mkdir -p "$ext/etc" "$ext/var/log" "$ext/home/analyst" "$ext/usr/local/bin" "$ntfs"

cat >"$ext/README.txt" <<'EOF'
ebsimager sample evidence disk, partition 1 (ext4).
Every file on this volume is listed with its SHA-256 in files.json.
EOF

cat >"$ext/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/bin/bash
daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin
sshd:x:105:65534::/run/sshd:/usr/sbin/nologin
analyst:x:1000:1000:Case Analyst,,,:/home/analyst:/bin/bash
intruder:x:0:0::/tmp/.x:/bin/sh
EOF

cat >"$ext/home/analyst/notes.txt" <<'EOF'
2024-01-02 02:58 first alert from the IDS
2024-01-02 03:01 instance isolated, snapshot requested
EOF

# A log larger than one 512 KiB EBS block, so it spans two blocks.
seq 1 9000 | awk '{ printf "2024-01-02T%02d:%02d:%02dZ sshd[%d]: Failed password for invalid user guest%d from 203.0.113.%d port %d ssh2\n", int($1 / 3600) % 24, int($1 / 60) % 60, $1 % 60, 1000 + $1 % 977, $1 % 97, $1 % 250, 40000 + $1 }' >"$ext/var/log/auth.log"

# A small binary holding every byte value once.
for i in $(seq 0 255); do printf "\\x$(printf %02x "$i")"; done >"$ext/usr/local/bin/payload.bin"

cat >"$ntfs/README.txt" <<'EOF'
ebsimager sample evidence disk, partition 2 (NTFS).
Every file on this volume is listed with its SHA-256 in files.json.
EOF

cat >"$ntfs/hosts.txt" <<'EOF'
127.0.0.1 localhost
203.0.113.7 c2.example.invalid
EOF

# A second log over 512 KiB, with different content from the ext4 one.
seq 1 8000 | awk '{ printf "%06d 2024-01-02 Security 4625 An account failed to log on. Account: admin%d Source: 198.51.100.%d\n", $1, $1 % 53, $1 % 200 }' >"$ntfs/Security.log"

for i in $(seq 255 -1 0); do printf "\\x$(printf %02x "$i")"; done >"$ntfs/tool.bin"

# Written by debugfs rather than mkfs.ext4 -d.
echo "web-01.evidence.internal" >"$work/hostname"

find "$ext" "$ntfs" -exec touch -h -d "$stamp" {} +

# --- partition 1: ext4 -----------------------------------------------------
truncate -s $((p1_sectors * 512)) "$work/p1.img"
mkfs.ext4 -F -q -t ext4 -b 4096 -I 256 -L evidence-ext4 -U "$ext4_uuid" -M /srv/evidence \
	-E "hash_seed=$ext4_hash_seed,root_owner=0:0,lazy_itable_init=0,lazy_journal_init=0,nodiscard" \
	-d "$ext" "$work/p1.img"
# mkfs.ext4 -d copies each staging file's change time, which is when this
# script wrote it; pin it, and write one more file with debugfs.
{
	(cd "$ext" && find . -mindepth 1) | sed 's|^\.||' | while read -r p; do
		echo "set_inode_field $p ctime @$epoch"
	done
	echo "cd /etc"
	echo "write $work/hostname hostname"
	echo "cd /"
	for field in atime mtime ctime crtime; do
		echo "set_inode_field /etc/hostname $field @$epoch"
	done
} >"$work/debugfs.cmds"
debugfs -w -f "$work/debugfs.cmds" "$work/p1.img" >/dev/null 2>&1

# --- partition 2: NTFS -----------------------------------------------------
# -p/-H/-S fill the boot sector's geometry fields for a partition starting
# at p2_start; -T zeroes mkntfs's clock.
truncate -s $((p2_sectors * 512)) "$work/p2.img"
mkntfs -F -f -q -T -L EVIDENCE-NTFS -s 512 -c 4096 -p "$p2_start" -H 255 -S 63 "$work/p2.img" 2>/dev/null
ntfslabel --new-serial="$ntfs_serial" "$work/p2.img" >/dev/null
for f in README.txt hosts.txt Security.log tool.bin; do
	frozen ntfscp -t "$work/p2.img" "$ntfs/$f" "$f" >/dev/null
done

# --- the disk --------------------------------------------------------------
truncate -s $disk_bytes "$work/disk.raw"
sfdisk --quiet --no-reread --no-tell-kernel "$work/disk.raw" <<EOF
label: gpt
label-id: $disk_guid
first-lba: 2048
start=$p1_start, size=$p1_sectors, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, uuid=$p1_guid, name="evidence-ext4"
start=$p2_start, size=$p2_sectors, type=EBD0A0A2-B9E5-4433-87C0-68B6B72699C7, uuid=$p2_guid, name="EVIDENCE-NTFS"
EOF
# Both partitions start on MiB boundaries, so whole-MiB dd keeps them exact.
dd if="$work/p1.img" of="$work/disk.raw" bs=1M seek=$((p1_start / 2048)) conv=notrunc,sparse status=none
dd if="$work/p2.img" of="$work/disk.raw" bs=1M seek=$((p2_start / 2048)) conv=notrunc,sparse status=none

# --- files.json ------------------------------------------------------------
entry() { # partition fs root path
	local f=$3$4
	printf '  {"partition": %d, "fs": "%s", "path": "%s", "size": %d, "sha256": "%s"}' \
		"$1" "$2" "$4" "$(stat -c %s "$f")" "$(sha256sum "$f" | cut -d' ' -f1)"
}
{
	echo '['
	entry 1 ext4 "$ext" /README.txt
	echo ','
	entry 1 ext4 "$ext" /etc/passwd
	echo ','
	printf '  {"partition": %d, "fs": "%s", "path": "%s", "size": %d, "sha256": "%s"}' \
		1 ext4 /etc/hostname "$(stat -c %s "$work/hostname")" "$(sha256sum "$work/hostname" | cut -d' ' -f1)"
	echo ','
	entry 1 ext4 "$ext" /home/analyst/notes.txt
	echo ','
	entry 1 ext4 "$ext" /usr/local/bin/payload.bin
	echo ','
	entry 1 ext4 "$ext" /var/log/auth.log
	echo ','
	entry 2 ntfs "$ntfs" /README.txt
	echo ','
	entry 2 ntfs "$ntfs" /Security.log
	echo ','
	entry 2 ntfs "$ntfs" /hosts.txt
	echo ','
	entry 2 ntfs "$ntfs" /tool.bin
	echo
	echo ']'
} >"$work/files.json"

# Evidence files are 0600; each lands under its final name by rename.
chmod 0600 "$work/disk.raw" "$work/files.json"
sync "$work/disk.raw" "$work/files.json"
mv -f "$work/files.json" "$outdir/files.json"
mv -f "$work/disk.raw" "$out"

if [ -n "$artifacts" ]; then
	mkdir -p "$artifacts"
	zstd -q -19 --sparse -f -o "$work/sample.raw.zst" "$out"
	cp "$outdir/files.json" "$work/files.artifact.json"
	sync "$work/sample.raw.zst" "$work/files.artifact.json"
	mv -f "$work/sample.raw.zst" "$artifacts/sample.raw.zst"
	mv -f "$work/files.artifact.json" "$artifacts/files.json"
fi
