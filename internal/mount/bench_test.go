package mount_test

import (
	"bytes"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ebsimager/ebsimager/internal/mount"
	"github.com/ebsimager/ebsimager/internal/mount/mounttest"
)

// BenchmarkRead reads a 64 MiB volume held in memory through the mount
// with 1 MiB read calls: "cold" drops the file's pages first, so every
// byte crosses FUSE (the cost of the mount itself, the volume costing
// nothing); "cached" reads what the kernel kept.
func BenchmarkRead(b *testing.B) {
	mounttest.RequireFUSE(b)
	data := bytes.Repeat([]byte("0123456789abcdef"), 4<<20) // 64 MiB
	dir := b.TempDir()
	b.Cleanup(func() { exec.Command("fusermount3", "-u", "-z", dir).Run() })
	ctx, cancel := context.WithCancel(context.Background())
	ready, done := make(chan struct{}), make(chan error, 1)
	go func() {
		done <- mount.Serve(ctx, dir, bytes.NewReader(data), mount.Files(int64(len(data)), nil), mount.Options{Ready: func() { close(ready) }})
	}()
	select {
	case <-ready:
	case err := <-done:
		b.Fatal(err)
	case <-time.After(30 * time.Second):
		b.Fatal("not mounted in 30 s")
	}
	defer func() { cancel(); <-done }()
	path := filepath.Join(dir, "disk.raw")
	buf := make([]byte, 1<<20)
	for _, cold := range []bool{true, false} {
		name := "cached"
		if cold {
			name = "cold"
		}
		b.Run(name, func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			for b.Loop() {
				f, err := os.Open(path)
				if err != nil {
					b.Fatal(err)
				}
				if cold {
					unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED)
				}
				n, err := io.CopyBuffer(io.Discard, struct{ io.Reader }{f}, buf)
				f.Close()
				if err != nil || n != int64(len(data)) {
					b.Fatalf("read %d bytes: %v", n, err)
				}
			}
		})
	}
}
