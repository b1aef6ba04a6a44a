package raw

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/ebsimager/ebsimager/internal/block"
	"github.com/ebsimager/ebsimager/internal/bucket"
)

// memLarge is bucket.Memory with large objects: each is held until
// Commit PUTs it (once, as S3 completes an upload), and failAt, when
// set, fails the write that reaches that many bytes of the image.
type memLarge struct {
	*bucket.Memory
	sent, failAt int64
	open         int
}

type memUpload struct {
	m    *memLarge
	key  string
	buf  bytes.Buffer
	done bool
}

func (m *memLarge) CreateLarge(_ context.Context, key string, size int64, meta map[string]string) (bucket.LargeObject, error) {
	m.open++
	return &memUpload{m: m, key: key}, nil
}

func (u *memUpload) Write(p []byte) (int, error) {
	if u.m.failAt > 0 && u.m.sent+int64(len(p)) >= u.m.failAt {
		return 0, errors.New("part refused")
	}
	u.m.sent += int64(len(p))
	return u.buf.Write(p)
}
func (u *memUpload) Flush() error { return nil }
func (u *memUpload) Commit() error {
	u.done = true
	u.m.open--
	return u.m.PutNew(context.Background(), u.key, u.buf.Bytes(), sha256.Sum256(u.buf.Bytes()), nil)
}
func (u *memUpload) Abort() error {
	if !u.done {
		u.done = true
		u.m.open--
	}
	return nil
}

// TestObjectWriter: a split image written as objects holds, put
// together, the same bytes as the local image of the same blocks (holes
// as zeros), and checksum objects equal to the local checksum files; a
// failed write leaves no object and no open upload; a taken name is
// refused before anything is sent.
func TestObjectWriter(t *testing.T) {
	const size = 5 * block.Size // three segments of 1 MiB, the last half full
	blocks := map[int64][]byte{1: bytes.Repeat([]byte{7}, block.Size), 3: bytes.Repeat([]byte{9}, block.Size)}
	o := Options{Split: 1 << 20, Hashes: []string{"md5", "sha256"}}
	dir := t.TempDir()
	local := filepath.Join(dir, "disk.raw")
	lw, err := Create(local, size, o)
	if err != nil {
		t.Fatal(err)
	}
	m := &memLarge{Memory: &bucket.Memory{}}
	w, err := CreateObjects(context.Background(), m, "disk.raw", size, o, map[string]string{"k": "v"})
	if err != nil {
		t.Fatal(err)
	}
	for _, i := range []int64{1, 3} {
		if err := lw.WriteBlock(i, blocks[i]); err != nil {
			t.Fatal(err)
		}
		if err := w.WriteBlock(i, blocks[i]); err != nil {
			t.Fatal(err)
		}
	}
	lres, err := lw.Close()
	if err != nil {
		t.Fatal(err)
	}
	res, err := w.Close()
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Files) != 3 || res.Files[2] != "disk.raw.003" || res.Hashes["sha256"] != lres.Sums["sha256"] {
		t.Fatalf("result %+v, local %+v", res, lres)
	}
	for i, name := range res.Files {
		got, err := m.Get(context.Background(), name, size)
		want, _ := os.ReadFile(lres.Files[i])
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s: %d bytes (%v), the local segment %d bytes", name, len(got), err, len(want))
		}
	}
	for _, alg := range []string{"md5", "sha256"} {
		got, _ := m.Get(context.Background(), "disk.raw."+alg, 1<<20)
		want, _ := os.ReadFile(local + "." + alg)
		if !bytes.Equal(got, want) {
			t.Errorf("disk.raw.%s is %q, the local file %q", alg, got, want)
		}
	}
	if _, err := m.Head(context.Background(), "disk.raw.sha1"); !errors.Is(err, bucket.ErrNotFound) {
		t.Errorf("disk.raw.sha1 was not asked for: %v", err)
	}

	// The same name again: refused at once.
	if _, err := CreateObjects(context.Background(), m, "disk.raw", size, o, nil); !errors.Is(err, bucket.ErrExists) {
		t.Errorf("a taken name: %v, want ErrExists", err)
	}

	// A write refused in the second segment: nothing under any name.
	f := &memLarge{Memory: &bucket.Memory{}, failAt: 1<<20 + 100}
	w, err = CreateObjects(context.Background(), f, "disk.raw", size, o, nil)
	if err != nil {
		t.Fatal(err)
	}
	var werr error
	for _, i := range []int64{1, 3} {
		if werr = w.WriteBlock(i, blocks[i]); werr != nil {
			break
		}
	}
	if werr == nil {
		t.Fatal("no write failed")
	}
	if _, err := w.Close(); err == nil {
		t.Fatal("Close after a failed write succeeded")
	}
	if keys, _ := f.List(context.Background(), "", 100); len(keys) != 0 || f.open != 0 {
		t.Errorf("after a failed write: objects %v, %d uploads open", keys, f.open)
	}
}
