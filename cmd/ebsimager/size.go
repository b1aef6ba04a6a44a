package main

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"syscall"

	"github.com/ebsimager/ebsimager/internal/image/raw"
	"github.com/ebsimager/ebsimager/internal/ui"
)

// parseSize reads sizes like 2GiB, 650MB, 1.4GiB or 1048576; "" is 0.
func parseSize(s string) (int64, error) {
	if s == "" {
		return 0, nil
	}
	units := []struct {
		suffix string
		mult   float64
	}{
		{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10},
		{"TB", 1e12}, {"GB", 1e9}, {"MB", 1e6}, {"KB", 1e3}, {"B", 1},
	}
	num, mult := s, 1.0
	for _, u := range units {
		if strings.HasSuffix(s, u.suffix) {
			num, mult = strings.TrimSpace(strings.TrimSuffix(s, u.suffix)), u.mult
			break
		}
	}
	v, err := strconv.ParseFloat(num, 64)
	// v*mult must be a whole number of bytes that fits an int64: NaN, the
	// infinities and anything from 2^63 up are refused, not wrapped.
	if err != nil || !(v > 0) || v*mult >= math.MaxInt64 || v*mult < 1 {
		return 0, fmt.Errorf("size %q: want a positive number of bytes below 8 EiB, with an optional unit (KiB, MiB, GiB, TiB, KB, MB, GB, TB)", s)
	}
	return int64(v * mult), nil
}

// minSplit is the smallest --split: 1 MiB, as for an E01 segment
// (ewf.MinSegmentSize). Smaller segments fit no medium better; they only
// multiply the files a tool has to open.
const minSplit = 1 << 20

// splitSize checks a --split for an image of size bytes and returns it
// rounded down to whole 512-byte sectors, the unit raw images are cut in
// (so 650MB, which is not a whole number of sectors, still fits 650 MB
// media). Every segment is open while the image is written, so there may
// be no more segments than this process can open files, less a reserve
// for the evidence being read.
func splitSize(flag string, split, size int64) (int64, error) {
	if split == 0 {
		return 0, nil
	}
	if split < minSplit {
		return 0, usagef("--split %s: want at least 1MiB", flag)
	}
	split -= split % 512
	n := (size + split - 1) / split
	limit := int64(raw.MaxSegments)
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err == nil && rl.Cur < uint64(limit)+openReserve {
		limit = int64(rl.Cur) - openReserve
	}
	if n > limit {
		return 0, usagef("--split %s makes %d segments of a %s image, and all are open while it is written: at most %d may be here (ulimit -n); use a larger --split", flag, n, ui.Bytes(size), max(limit, 0))
	}
	return split, nil
}

// openReserve is how many open files an export keeps for everything but
// its segments: the evidence's manifest and block files, the lock, the
// checksum files, standard streams.
const openReserve = 64
