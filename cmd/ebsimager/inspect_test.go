package main

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/ebsimager/ebsimager/internal/block"
	"github.com/ebsimager/ebsimager/internal/emulator"
	"github.com/ebsimager/ebsimager/internal/inspect"
	"github.com/ebsimager/ebsimager/internal/sampledisk"
	"github.com/ebsimager/ebsimager/internal/sampledisk/sampletest"
	"github.com/ebsimager/ebsimager/internal/store"
	"github.com/ebsimager/ebsimager/internal/testenv"
	"github.com/ebsimager/ebsimager/internal/volume"
)

// inspectCLI runs `ebsimager inspect args…` as a subprocess.
func inspectCLI(t *testing.T, args ...string) result {
	t.Helper()
	return newCLI(t, "").run(append([]string{"inspect"}, args...)...)
}

func inspectOK(t *testing.T, args ...string) string {
	t.Helper()
	r := inspectCLI(t, args...)
	if r.code != 0 {
		t.Fatalf("ebsimager inspect %s: exit %d\n%s%s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
	}
	return r.stdout
}

// TestInspectCommand acquires the sample disk, then inspects the evidence
// directory, the disk, a split export of it, an E01 export of it and the
// snapshot itself, read live: every source gives the same layout, text
// and JSON (issue 12: one read side), which agrees with mmls and fsstat
// on the disk.
func TestInspectCommand(t *testing.T) {
	t.Parallel()
	tools := testenv.RequireTool(t, "mmls", "fsstat")
	dir := t.TempDir()
	disk, err := sampledisk.Extract(dir)
	if err != nil {
		t.Fatal(err)
	}
	srv, endpoint := startEmulator(t, emulator.Options{})
	if err := srv.AddRawImage(snapDisk, disk, emulator.RawOptions{}); err != nil {
		t.Fatal(err)
	}
	c := newCLI(t, endpoint)
	ev := filepath.Join(dir, "ev")
	c.ok("acquire", snapDisk, "--out", ev, "--quiet")
	split := filepath.Join(dir, "split.raw")
	c.ok("export", ev, "--out", split, "--split", "300MiB", "--quiet")
	e01 := filepath.Join(dir, "e01")
	c.ok("export", ev, "--out", e01, "--format", "e01", "--quiet")

	text := inspectOK(t, disk)
	js := inspectOK(t, disk, "--json")
	for _, src := range []string{ev, split, split + ".001", e01 + ".E01"} {
		if got := inspectOK(t, src); got != text {
			t.Errorf("inspect %s:\n%s\ninspect of the disk:\n%s", src, got, text)
		}
		if got := inspectOK(t, src, "--json"); got != js {
			t.Errorf("inspect %s --json differs from the disk's:\n%s", src, got)
		}
	}
	// The snapshot itself, read live, gives the same layout too, from a
	// few blocks and one List call, and says what it cost.
	srv.ResetCounters()
	lr := c.ok("inspect", snapDisk, "--json")
	gets := srv.Counters().Count("GetSnapshotBlock", emulator.OutcomeOK)
	lists := srv.Counters().Count("ListSnapshotBlocks", emulator.OutcomeOK)
	if lr.stdout != js {
		t.Errorf("inspect %s --json differs from the disk's:\n%s", snapDisk, lr.stdout)
	}
	t.Logf("inspect %s: %d List and %d Get calls", snapDisk, lists, gets)
	if gets == 0 || gets > 8 || lists != 1 || !strings.Contains(lr.stderr, fmt.Sprintf("%d List and %d Get calls", lists, gets)) {
		t.Errorf("inspect %s made %d List and %d Get calls; stderr:\n%s", snapDisk, lists, gets, lr.stderr)
	}
	if got := c.ok("inspect", snapDisk).stdout; got != text {
		t.Errorf("inspect %s:\n%s\ninspect of the disk:\n%s", snapDisk, got, text)
	}

	var l inspect.Layout
	if err := json.Unmarshal([]byte(js), &l); err != nil {
		t.Fatal(err)
	}
	if l.Table != inspect.TableGPT || l.Size != sampledisk.Size || !strings.HasPrefix(text, "GPT disk, 1073741824 bytes") {
		t.Fatalf("layout: %s", text)
	}

	// mmls lists the same partitions, which are the sample disk's.
	mmlsOut := runTool(t, tools[0], disk)
	row := regexp.MustCompile(`(?m)^\d+:\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s+(.*)$`)
	rows := row.FindAllStringSubmatch(mmlsOut, -1)
	if len(rows) != len(l.Partitions) || len(rows) != len(sampletest.Partitions) {
		t.Fatalf("mmls lists %d partitions, inspect %d, the sample disk has %d\n%s", len(rows), len(l.Partitions), len(sampletest.Partitions), mmlsOut)
	}
	for i, m := range rows {
		p, want := l.Partitions[i], sampletest.Partitions[i]
		slot, _ := strconv.Atoi(m[1])
		start, _ := strconv.ParseInt(m[2], 10, 64)
		end, _ := strconv.ParseInt(m[3], 10, 64)
		length, _ := strconv.ParseInt(m[4], 10, 64)
		if p.Number != slot+1 || p.StartSector != start || p.EndSector != end || p.Sectors != length || p.Name != strings.TrimSpace(m[5]) ||
			p.Number != want.Number || p.StartSector != want.StartSector || p.Sectors != want.Sectors || p.Name != want.Name {
			t.Errorf("partition %d: inspect %+v, mmls %q, sample disk %+v", i+1, p, m[0], want)
		}
	}

	// fsstat reads the same file systems.
	for _, p := range l.Partitions {
		out := runTool(t, tools[1], "-o", strconv.FormatInt(p.StartSector, 10), disk)
		fs := p.FileSystem
		field := func(name string) string {
			m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name) + `: (.*)$`).FindStringSubmatch(out)
			if m == nil {
				t.Fatalf("fsstat of partition %d has no %q:\n%s", p.Number, name, out)
			}
			return strings.TrimSpace(m[1])
		}
		switch fs.Type {
		case inspect.TypeExt4:
			// fsstat prints the ext UUID's bytes in reverse order.
			raw, _ := hex.DecodeString(strings.ReplaceAll(fs.UUID, "-", ""))
			slices.Reverse(raw)
			if field("File System Type") != "Ext4" || field("Volume Name") != fs.Label || field("Volume ID") != hex.EncodeToString(raw) ||
				field("Last mounted on") != fs.Ext.LastMountedOn || field("Last Written at") != fs.Ext.LastWrite.Format("2006-01-02 15:04:05")+" (UTC)" {
				t.Errorf("partition %d: inspect %+v %+v, fsstat:\n%s", p.Number, fs, fs.Ext, out)
			}
		case inspect.TypeNTFS:
			if field("File System Type") != "NTFS" || field("Volume Name") != fs.Label || field("Volume Serial Number") != fs.Serial ||
				field("First Cluster of MFT") != fmt.Sprint(fs.NTFS.MFTCluster) ||
				field("Size of MFT Entries") != fmt.Sprintf("%d bytes", fs.NTFS.MFTRecordSize) ||
				field("Cluster Size") != strconv.FormatInt(fs.ClusterSize, 10) {
				t.Errorf("partition %d: inspect %+v %+v, fsstat:\n%s", p.Number, fs, fs.NTFS, out)
			}
		default:
			t.Errorf("partition %d holds %s", p.Number, fs.Type)
		}
	}

	// The evidence volume reads exactly like the disk, at any offset and
	// length, across block boundaries and past the end.
	evd, err := store.Open(ev)
	if err != nil {
		t.Fatal(err)
	}
	vol, err := volume.Open(context.Background(), ev, volume.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer vol.Close()
	df, err := os.Open(disk)
	if err != nil {
		t.Fatal(err)
	}
	defer df.Close()
	rng := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 100; i++ {
		off := rng.Int64N(sampledisk.Size + block.Size)
		if i < 30 {
			off = rng.Int64N(140*block.Size) + rng.Int64N(2)*(sampledisk.Size-block.Size) // where the data is, and the end
		}
		n := rng.IntN(3 * block.Size)
		got, want := make([]byte, n), make([]byte, n)
		gn, gerr := vol.ReadAt(got, off)
		wn, werr := df.ReadAt(want, off)
		if gn != wn || !bytes.Equal(got[:gn], want[:wn]) || (gerr == nil) != (werr == nil) {
			t.Fatalf("ReadAt(%d bytes at %d): %d, %v; the disk gives %d, %v", n, off, gn, gerr, wn, werr)
		}
	}

	// Only the blocks inspect needs are read: record them, then make
	// every other block file unreadable; inspect still gives the same.
	rec := &recordingReader{r: vol, blocks: map[int64]bool{}}
	if _, err := inspect.Inspect(rec, vol.Size()); err != nil {
		t.Fatal(err)
	}
	if len(rec.blocks) == 0 || len(rec.blocks) > 8 {
		t.Fatalf("inspect read %d blocks: %v", len(rec.blocks), rec.blocks)
	}
	mr, closer, err := evd.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	spoiled := 0
	for {
		e, err := mr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if !rec.blocks[e.Index] {
			if err := os.Truncate(filepath.Join(ev, filepath.FromSlash(e.Name)), 1); err != nil {
				t.Fatal(err)
			}
			spoiled++
		}
	}
	closer.Close()
	if spoiled < 5 {
		t.Fatalf("only %d block files to spoil", spoiled)
	}
	if got := inspectOK(t, ev); got != text {
		t.Fatalf("inspect read a block it does not need:\n%s", got)
	}
	// A spoiled block that is needed is caught, never decoded.
	var needed int64 = -1
	for i := range rec.blocks {
		needed = max(needed, i)
	}
	name := blockFile(t, ev, needed)
	if err := os.WriteFile(name, []byte("tampered"), 0o600); err != nil {
		t.Fatal(err)
	}
	if r := inspectCLI(t, ev); r.code != exitMismatch || !strings.Contains(r.stderr, fmt.Sprintf("block %d", needed)) {
		t.Fatalf("inspect of a tampered block: exit %d\n%s", r.code, r.stderr)
	}
}

// recordingReader notes which blocks are read.
type recordingReader struct {
	r      io.ReaderAt
	blocks map[int64]bool
}

func (r *recordingReader) ReadAt(p []byte, off int64) (int, error) {
	for b := off / block.Size; b <= (off+int64(len(p))-1)/block.Size; b++ {
		r.blocks[b] = true
	}
	return r.r.ReadAt(p, off)
}

func blockFile(t *testing.T, ev string, index int64) string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(ev, store.LeafDir(index), fmt.Sprintf("%010d_*", index)))
	if err != nil || len(m) != 1 {
		t.Fatalf("block file %d: %v %v", index, m, err)
	}
	return m[0]
}

// runTool runs an external tool and returns its output.
func runTool(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

func TestInspectErrors(t *testing.T) {
	dir := t.TempDir()
	if r := inspectCLI(t); r.code != exitUsage {
		t.Errorf("inspect without an argument: exit %d, %s", r.code, r.stderr)
	}
	if r := inspectCLI(t, filepath.Join(dir, "nothing")); r.code != exitLocalIO {
		t.Errorf("inspect of a missing file: exit %d, %s", r.code, r.stderr)
	}
	if r := inspectCLI(t, dir); r.code != exitError || !strings.Contains(r.stderr, "is not an evidence directory") {
		t.Errorf("inspect of a plain directory: exit %d, %s", r.code, r.stderr)
	}
	// A file that opens with the EWF signature is read as an E01 (not as a
	// raw image): one that is not a whole E01 is refused.
	e01 := filepath.Join(dir, "disk.E01")
	if err := os.WriteFile(e01, append([]byte("EVF\x09\x0d\x0a\xff\x00"), make([]byte, 4096)...), 0o600); err != nil {
		t.Fatal(err)
	}
	if r := inspectCLI(t, e01); r.code != exitError || !strings.Contains(r.stderr, "disk.E01: segment number 0, want 1") {
		t.Errorf("inspect of a damaged E01: exit %d, %s", r.code, r.stderr)
	}
	// A bare file system image: no table.
	img := filepath.Join(dir, "zeros.raw")
	if err := os.WriteFile(img, make([]byte, 1<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	if got := inspectOK(t, img); !strings.HasPrefix(got, "No partition table, 1048576 bytes\nFile system: unknown") {
		t.Errorf("inspect of zeros:\n%s", got)
	}

	// An acquisition that has not completed has no manifest.
	_, endpoint := startEmulator(t, emulator.Options{}, specA)
	ev := filepath.Join(dir, "ev")
	newCLI(t, endpoint).ok("acquire", snapA, "--out", ev, "--quiet")
	if err := os.Rename(filepath.Join(ev, store.ManifestName), filepath.Join(dir, "manifest")); err != nil {
		t.Fatal(err)
	}
	if r := inspectCLI(t, ev); r.code != exitIncomplete {
		t.Errorf("inspect of an incomplete acquisition: exit %d, %s", r.code, r.stderr)
	}
}
