package main

import (
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"hash"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/ebsimager/ebsimager/internal/emulator"
	"github.com/ebsimager/ebsimager/internal/testenv"
)

const snapImageHash = "snap-0a1100000000000a1"

// TestAcquireImageHashes: acquire --image hashes the raw image while the
// blocks arrive, out of order (a fifth of the fetches fail once and are
// retried), with listed zero blocks and unlisted holes. Its .md5, .sha1
// and .sha256 must check with the coreutils and equal the hashes of the
// volume computed here.
func TestAcquireImageHashes(t *testing.T) {
	t.Parallel()
	tools := testenv.RequireTool(t, "md5sum", "sha1sum", "sha256sum")
	dir := t.TempDir()
	src := filepath.Join(dir, "src.raw")
	// 40 blocks: data in 26 of them, the others zeros that the snapshot
	// lists; the 1 GiB volume beyond them is unlisted.
	blocks := map[int64]byte{}
	for i := int64(0); i < 40; i++ {
		if i%3 != 1 {
			blocks[i] = byte(0x10 + i)
		}
	}
	blocksImage(t, src, 40<<19, blocks)
	srv, endpoint := startEmulator(t, emulator.Options{Seed: 3, Faults: emulator.Faults{ServerError: 0.2}})
	if err := srv.AddRawImage(snapImageHash, src, emulator.RawOptions{VolumeGiB: 1, ListZeroBlocks: true}); err != nil {
		t.Fatal(err)
	}
	want := volumeSums(t, src, 1<<30)
	c := newCLI(t, endpoint)
	img := filepath.Join(dir, "img.raw")
	c.ok("acquire", snapImageHash, "--image", img, "--quiet")
	for i, alg := range []string{"md5", "sha1", "sha256"} {
		if got := sidecar(t, img+"."+alg); got != want[alg] {
			t.Errorf("%s says %s, the volume's %s is %s", filepath.Base(img)+"."+alg, got, alg, want[alg])
		}
		cmd := exec.Command(tools[i], "-c", filepath.Base(img)+"."+alg)
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("%s -c: %v\n%s", tools[i], err, out)
		}
	}
	if leftovers(t, dir) != nil {
		t.Fatalf("acquire --image left %v", leftovers(t, dir))
	}
}

// volumeSums hashes the file at path followed by zeros up to size bytes.
func volumeSums(t *testing.T, path string, size int64) map[string]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	hs := map[string]hash.Hash{"md5": md5.New(), "sha1": sha1.New(), "sha256": sha256.New()}
	w := io.MultiWriter(hs["md5"], hs["sha1"], hs["sha256"])
	zeros := io.LimitReader(zeroReader{}, size-fi.Size())
	if _, err := io.Copy(w, io.MultiReader(f, zeros)); err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for alg, h := range hs {
		out[alg] = hex.EncodeToString(h.Sum(nil))
	}
	return out
}

type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}
