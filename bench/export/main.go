// Command export drives the Go side of bench/export/run.sh: it generates
// the test image and hashes or exports it the way ebsimager's export does,
// so the script can time it against md5sum, sha1sum and sha256sum.
//
//	export gen SIZE FILE   write SIZE bytes (suffix K, M or G) of seeded
//	                       random data with runs of zeros to FILE
//	export hash FILE       read FILE block by block into digest (md5, sha1,
//	                       sha256), zero blocks through WriteZeros
//	export image FILE OUT  copy FILE into a sparse raw image OUT through
//	                       raw.Writer with the same three hashes
//
// hash and image print one line: the mode, bytes, seconds, MiB/s and the
// three digests as alg=hex.
package main

import (
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/ebsimager/ebsimager/internal/block"
	"github.com/ebsimager/ebsimager/internal/digest"
	"github.com/ebsimager/ebsimager/internal/image/raw"
)

var hashes = []string{digest.MD5, digest.SHA1, digest.SHA256}

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "export:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	switch {
	case len(args) == 3 && args[0] == "gen":
		size, err := parseSize(args[1])
		if err != nil {
			return err
		}
		return generate(size, args[2])
	case len(args) == 2 && args[0] == "hash":
		return hashFile(args[1])
	case len(args) == 3 && args[0] == "image":
		return imageFile(args[1], args[2])
	}
	return fmt.Errorf("usage: export gen SIZE FILE | hash FILE | image FILE OUT")
}

func parseSize(s string) (int64, error) {
	mult := int64(1)
	for suffix, m := range map[string]int64{"K": 1 << 10, "M": 1 << 20, "G": 1 << 30} {
		if strings.HasSuffix(s, suffix) {
			s, mult = strings.TrimSuffix(s, suffix), m
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("size %q: want a positive number with an optional K, M or G", s)
	}
	return n * mult, nil
}

// generate writes size bytes: random blocks, every eighth block zeros
// (a file system's unused space), and one 256 MiB run of zeros in the
// middle (a large hole). The seed is fixed, so every run hashes the same
// bytes.
func generate(size int64, name string) error {
	f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	rng := rand.NewChaCha8([32]byte{'e', 'b', 's', 'i', 'm', 'a', 'g', 'e', 'r'})
	buf := make([]byte, block.Size)
	zeros := make([]byte, block.Size)
	holeStart, holeEnd := size/2, size/2+256<<20 // 256 MiB of zeros mid-image
	for off := int64(0); off < size; off += block.Size {
		p := buf[:min(int64(block.Size), size-off)]
		i := off / block.Size
		if i%8 == 7 || (off >= holeStart && off < holeEnd) {
			p = zeros[:len(p)]
		} else {
			rng.Read(p)
		}
		if _, err := f.Write(p); err != nil {
			f.Close()
			return err
		}
	}
	return f.Close()
}

// hashFile reads the image as export reads blocks, handing zero blocks to
// WriteZeros as holes and the rest to Write.
func hashFile(name string) error {
	start := time.Now()
	r, err := raw.Open(name)
	if err != nil {
		return err
	}
	defer r.Close()
	set, err := digest.New(hashes...)
	if err != nil {
		return err
	}
	buf := make([]byte, block.Size)
	for off := int64(0); off < r.Size(); off += block.Size {
		p := buf[:min(int64(block.Size), r.Size()-off)]
		if _, err := r.ReadAt(p, off); err != nil && err != io.EOF {
			return err
		}
		if block.IsZero(p) {
			set.WriteZeros(int64(len(p)))
		} else {
			set.Write(p)
		}
	}
	report("go-digest", r.Size(), time.Since(start), set.Sums())
	return nil
}

// imageFile copies the image through raw.Writer: the whole export sink,
// with hole detection, positioned writes, fsync and checksum files.
func imageFile(name, out string) error {
	start := time.Now()
	r, err := raw.Open(name)
	if err != nil {
		return err
	}
	defer r.Close()
	w, err := raw.Create(out, r.Size(), raw.Options{Hashes: hashes})
	if err != nil {
		return err
	}
	buf := make([]byte, block.Size)
	for off := int64(0); off < r.Size(); off += block.Size {
		p := buf[:min(int64(block.Size), r.Size()-off)]
		if _, err := r.ReadAt(p, off); err != nil && err != io.EOF {
			w.Abort()
			return err
		}
		if err := w.WriteBlock(off/block.Size, p); err != nil {
			w.Abort()
			return err
		}
	}
	res, err := w.Close()
	if err != nil {
		return err
	}
	report("go-raw-writer", res.Size, time.Since(start), res.Sums)
	return nil
}

func report(mode string, n int64, d time.Duration, sums map[string]string) {
	algs := make([]string, 0, len(sums))
	for alg := range sums {
		algs = append(algs, alg)
	}
	sort.Strings(algs)
	fmt.Printf("%s bytes=%d seconds=%.2f MiB/s=%.0f", mode, n, d.Seconds(), float64(n)/(1<<20)/d.Seconds())
	for _, alg := range algs {
		fmt.Printf(" %s=%s", alg, sums[alg])
	}
	fmt.Println()
}
