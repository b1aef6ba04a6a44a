package sampletest

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"os/exec"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/ebsimager/ebsimager/internal/sampledisk"
	"github.com/ebsimager/ebsimager/internal/testenv"
)

// Partition is one partition of the sample disk as mmls reports it.
type Partition struct {
	Number      int    // 1-based GPT entry number
	StartSector int64  // in 512-byte sectors
	Sectors     int64  // length in 512-byte sectors
	Name        string // the GPT partition name mmls shows as its description
}

// Partitions is the sample disk's partition table as make-sample-disk.sh
// writes it.
var Partitions = []Partition{
	{Number: 1, StartSector: 2048, Sectors: 131072, Name: "evidence-ext4"},
	{Number: 2, StartSector: 133120, Sectors: 131072, Name: "EVIDENCE-NTFS"},
}

// mmlsRow matches an allocated partition row of mmls, such as
// "004:  000       0000002048   0000133119   0000131072   evidence-ext4".
var mmlsRow = regexp.MustCompile(`^\d+:\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s+(.*)$`)

// CheckImage asserts with the Sleuth Kit (mmls, fls, icat) that the image
// at path, raw or E01, holds the sample disk: its partition table and, in
// each file system, exactly the regular files sampledisk.Files lists, with
// their sizes and SHA-256s.
func CheckImage(t testing.TB, path string) {
	t.Helper()
	tools := testenv.RequireTool(t, "mmls", "fls", "icat")
	mmls, fls, icat := tools[0], tools[1], tools[2]

	out := run(t, mmls, path)
	var got []Partition
	for _, line := range strings.Split(string(out), "\n") {
		m := mmlsRow.FindStringSubmatch(strings.TrimSpace(line))
		if m == nil {
			continue
		}
		slot, _ := strconv.Atoi(m[1])
		start, _ := strconv.ParseInt(m[2], 10, 64)
		length, _ := strconv.ParseInt(m[4], 10, 64)
		got = append(got, Partition{Number: slot + 1, StartSector: start, Sectors: length, Name: m[5]})
	}
	if len(got) != len(Partitions) {
		t.Fatalf("mmls %s: %d partitions %+v, want %+v\n%s", path, len(got), got, Partitions, out)
	}
	for i := range got {
		if got[i] != Partitions[i] {
			t.Errorf("mmls %s: partition %+v, want %+v", path, got[i], Partitions[i])
		}
	}

	want := map[int]map[string]sampledisk.File{}
	for _, f := range sampledisk.Files() {
		if want[f.Partition] == nil {
			want[f.Partition] = map[string]sampledisk.File{}
		}
		want[f.Partition][f.Path] = f
	}
	for _, p := range Partitions {
		off := strconv.FormatInt(p.StartSector, 10)
		inodes := regularFiles(run(t, fls, "-r", "-p", "-o", off, path))
		var found []string
		for name := range inodes {
			found = append(found, name)
		}
		sort.Strings(found)
		var listed []string
		for name := range want[p.Number] {
			listed = append(listed, name)
		}
		sort.Strings(listed)
		if strings.Join(found, " ") != strings.Join(listed, " ") {
			t.Errorf("partition %d holds files %q, files.json lists %q", p.Number, found, listed)
		}
		for name, f := range want[p.Number] {
			inode, ok := inodes[name]
			if !ok {
				continue
			}
			data := run(t, icat, "-o", off, path, inode)
			sum := sha256.Sum256(data)
			if int64(len(data)) != f.Size || hex.EncodeToString(sum[:]) != f.SHA256 {
				t.Errorf("partition %d %s: icat gives %d bytes sha256 %x, want %d bytes %s",
					p.Number, name, len(data), sum, f.Size, f.SHA256)
			}
		}
	}
}

// regularFiles parses fls -r -p output into path → inode address for every
// allocated regular file that is not NTFS metadata (names starting with $).
func regularFiles(out []byte) map[string]string {
	files := map[string]string{}
	for _, line := range strings.Split(string(out), "\n") {
		typ, rest, ok := strings.Cut(line, " ")
		if !ok || typ != "r/r" || strings.HasPrefix(rest, "* ") {
			continue
		}
		addr, name, ok := strings.Cut(rest, ":\t")
		if !ok || strings.HasPrefix(name, "$") {
			continue
		}
		files["/"+name] = addr
	}
	return files
}

func run(t testing.TB, name string, args ...string) []byte {
	t.Helper()
	var stderr bytes.Buffer
	cmd := exec.Command(name, args...)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, stderr.Bytes())
	}
	return out
}
