package manifest

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"io"
	"strings"
	"testing"
	"time"
)

func sample(t *testing.T) ([]byte, Trailer) {
	t.Helper()
	var buf bytes.Buffer
	h := Header{SnapshotID: "snap-1", Region: "us-east-1", VolumeSizeGiB: 1, VolumeSizeBytes: 1 << 30, BlockSize: 524288,
		ToolVersion: "test", StartedAt: time.Unix(0, 0).UTC(), FinishedAt: time.Unix(60, 0).UTC()}
	w, err := NewWriter(&buf, h)
	if err != nil {
		t.Fatal(err)
	}
	for _, i := range []int64{0, 5, 2047} {
		if err := w.Add(Entry{Index: i, SHA256: strings.Repeat("ab", 32), Length: 524288, Name: "b", Size: 100, StoredSHA256: strings.Repeat("cd", 32), Codec: "none", Encryption: "none"}); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Add(Entry{Index: 5}); err == nil {
		t.Fatal("descending entry accepted")
	}
	tr, sum, err := w.Close()
	if err != nil {
		t.Fatal(err)
	}
	if sum != sha256.Sum256(buf.Bytes()) {
		t.Fatal("writer's sum is not the file's SHA-256")
	}
	return buf.Bytes(), tr
}

func TestRoundTrip(t *testing.T) {
	data, tr := sample(t)
	if tr != (Trailer{Type: "end", Blocks: 3, Bytes: 3 * 524288, StoredBytes: 300}) {
		t.Fatalf("trailer %+v", tr)
	}
	r, err := NewReader(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	if h := r.Header(); h.SnapshotID != "snap-1" || h.Format != Format || !h.FinishedAt.Equal(time.Unix(60, 0)) {
		t.Fatalf("header %+v", h)
	}
	var got []int64
	for {
		e, err := r.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, e.Index)
	}
	if len(got) != 3 || got[0] != 0 || got[1] != 5 || got[2] != 2047 {
		t.Fatalf("indexes %v", got)
	}
	if r.Sum() != sha256.Sum256(data) {
		t.Fatal("reader's sum is not the file's SHA-256")
	}
}

func readAll(data []byte) error {
	r, err := NewReader(bytes.NewReader(data))
	if err != nil {
		return err
	}
	for {
		if _, err := r.Next(); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
	}
}

func TestCorruptions(t *testing.T) {
	data, _ := sample(t)
	lines := strings.SplitAfter(string(data), "\n")
	for name, text := range map[string]string{
		"no trailer":       strings.Join(lines[:4], ""),
		"dropped entry":    lines[0] + lines[1] + lines[3] + lines[4],
		"swapped entries":  lines[0] + lines[2] + lines[1] + lines[3] + lines[4],
		"edited length":    strings.Replace(string(data), `"length":524288`, `"length":524287`, 1),
		"unknown field":    strings.Replace(string(data), `"codec"`, `"codex"`, 1),
		"trailing garbage": string(data) + "{}\n",
		"empty":            "",
	} {
		if err := readAll([]byte(text)); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: err = %v, want ErrCorrupt", name, err)
		}
	}
}

// Numbers from outside are bounded before they are trusted: the volume
// against the 64 TiB EBS maximum, the block size, each index against the
// volume, lengths and stored sizes.
func TestBounds(t *testing.T) {
	data, _ := sample(t)
	s := string(data)
	for name, text := range map[string]string{
		"huge volume":     strings.Replace(strings.Replace(s, `"volume_size_gib":1,`, `"volume_size_gib":99999999999,`, 1), `"volume_size_bytes":1073741824`, `"volume_size_bytes":107374182398926258176`, 1),
		"huge volume 2":   strings.Replace(strings.Replace(s, `"volume_size_gib":1,`, `"volume_size_gib":65537,`, 1), `"volume_size_bytes":1073741824`, `"volume_size_bytes":70369817919488`, 1),
		"negative volume": strings.Replace(s, `"volume_size_gib":1,`, `"volume_size_gib":-3,`, 1),
		"bytes disagree":  strings.Replace(s, `"volume_size_bytes":1073741824`, `"volume_size_bytes":1073741825`, 1),
		"block size":      strings.Replace(s, `"block_size":524288`, `"block_size":4096`, 1),
		"index beyond":    strings.Replace(s, `"index":2047`, `"index":2048`, 1),
		"index huge":      strings.Replace(s, `"index":2047`, `"index":9223372036854775807`, 1),
		"long block":      strings.Replace(s, `"length":524288`, `"length":524289`, 1),
		"huge stored":     strings.Replace(s, `"size":100`, `"size":9223372036854775807`, 1),
		"negative stored": strings.Replace(s, `"size":100`, `"size":-100`, 1),
		"provenance":      strings.Replace(s, `"region"`, `"provenance":"elsewhere","region"`, 1),
	} {
		if text == s {
			t.Fatalf("%s: the edit changed nothing", name)
		}
		if err := readAll([]byte(text)); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: err = %v, want ErrCorrupt", name, err)
		}
	}
	// A header of the largest volume, and the provenance of an import, are
	// fine.
	ok := strings.Replace(strings.Replace(s, `"volume_size_gib":1,`, `"volume_size_gib":65536,`, 1), `"volume_size_bytes":1073741824`, `"volume_size_bytes":70368744177664`, 1)
	ok = strings.Replace(ok, `"region"`, `"provenance":"`+ProvenanceImported+`","source":"/x","region"`, 1)
	if err := readAll([]byte(ok)); err != nil {
		t.Errorf("64 TiB imported: %v", err)
	}
}

// The writer never writes what a reader would refuse.
func TestWriterBounds(t *testing.T) {
	h := Header{SnapshotID: "snap-1", VolumeSizeGiB: 1, VolumeSizeBytes: 1 << 30, BlockSize: 524288}
	w, err := NewWriter(io.Discard, h)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range []Entry{{Index: 2048, Length: 524288}, {Index: 5, Length: 0}, {Index: 6, Length: 524288, Size: -1}} {
		if err := w.Add(e); err == nil {
			t.Errorf("entry %+v written", e)
		}
	}
	h.VolumeSizeGiB, h.VolumeSizeBytes = 65537, 65537<<30
	if _, err := NewWriter(io.Discard, h); err == nil {
		t.Error("header of a 65,537 GiB volume written")
	}
}
