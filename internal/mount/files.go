package mount

import (
	"fmt"

	"github.com/ebsimager/ebsimager/internal/inspect"
)

// DiskName is the file that holds the whole volume.
const DiskName = "disk.raw"

// File is one file of the mount: Len bytes of the volume from Off.
type File struct {
	Name     string
	Off, Len int64
}

// Files lists the files of a volume of size bytes whose partition table
// is l (nil: none): disk.raw, then pN.raw for each partition, in the
// table's order. The extended container of an MBR is left out: its
// logical partitions are listed themselves. A partition that reaches past
// the end of the volume is cut at its end, one that starts at or past it
// is left out, and of two partitions with the same number only the first
// is kept (the numbers come from the disk).
func Files(size int64, l *inspect.Layout) []File {
	files := []File{{Name: DiskName, Len: max(0, size)}}
	if l == nil {
		return files
	}
	seen := map[int]bool{}
	for _, p := range l.Partitions {
		if p.Role == "extended" || seen[p.Number] || p.Offset < 0 || p.Offset >= size || p.Length <= 0 {
			continue
		}
		seen[p.Number] = true
		files = append(files, File{Name: fmt.Sprintf("p%d.raw", p.Number), Off: p.Offset, Len: min(p.Length, size-p.Offset)})
	}
	return files
}
