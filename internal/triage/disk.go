package triage

import (
	"fmt"
	"io"
	"strings"

	"github.com/ebsimager/ebsimager/internal/fsys"
	"github.com/ebsimager/ebsimager/internal/fsys/disk"
	"github.com/ebsimager/ebsimager/internal/volume"
)

// DiskParts is Options.Partitions with package disk: every partition, LVM
// logical volume or bare file system of the volume that holds a file
// system, or an encrypted volume (recorded as such, never guessed at).
// A partition is named pN after its number, as inspect shows it; a
// bare file system "fs"; an LV "lv-VG-LV".
func DiskParts(r io.ReaderAt, size int64) ([]Part, error) {
	d, err := disk.New(r, size)
	if err != nil {
		return nil, err
	}
	var out []Part
	for _, p := range d.Parts {
		if !p.HoldsFileSystem() && p.Encryption == "" {
			continue
		}
		tp := Part{Name: partName(p), Offset: p.Offset, Size: p.Length}
		if len(p.Segments) > 0 {
			tp.Map = segmentMap(p.Segments)
		}
		tp.FS, tp.Err = d.OpenPart(p)
		if tp.Err != nil {
			tp.FS = nil
			tp.Err = fmt.Errorf("%s (%s): %w", p.Display(), p.Type, tp.Err)
		}
		out = append(out, tp)
	}
	return out, nil
}

func partName(p *disk.Part) string {
	switch p.Kind {
	case disk.KindPartition:
		return "p" + p.Name
	case disk.KindLV:
		return "lv-" + strings.ReplaceAll(p.Name, "/", "-")
	}
	return "fs"
}

// segmentMap places an LV's bytes on the volume through its segments.
func segmentMap(segs []disk.Segment) func(off, n int64) []volume.Range {
	return func(off, n int64) []volume.Range {
		var out []volume.Range
		for _, s := range segs {
			from, to := max(off, s.Logical), min(off+n, s.Logical+s.Length)
			if from < to {
				out = append(out, volume.Range{Off: s.Physical + from - s.Logical, Len: to - from})
			}
		}
		return out
	}
}

// Bodyfile is Options.Bodyfile with fsys.WriteBodyfile: the bodyfile of
// the whole file system, names without a prefix ("/etc/passwd").
func Bodyfile(w io.Writer, p Part) error {
	return fsys.WriteBodyfile(w, p.FS, "")
}
