package diff

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/ebsimager/ebsimager/internal/block"
)

// WriteJSON writes the diff as one indented JSON document.
func WriteJSON(w io.Writer, d *Diff) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(d)
}

// ChangelogHeader is the first line of the original tool's --compare
// output, <snapshot>_changelog.txt.
const ChangelogHeader = "blockindex|offset|length"

// WriteChangelog writes the original tool's changelog: the header line,
// then one blockindex|offset|length line per changed block (every entry
// ListChangedBlocks returned, removed blocks included), offset being
// blockindex × BlockSize and length BlockSize.
func WriteChangelog(w io.Writer, d *Diff) error {
	bw := bufio.NewWriterSize(w, 1<<16)
	bw.WriteString(ChangelogHeader + "\n")
	var line []byte
	for _, r := range d.Runs {
		for i := r.StartBlock; i < r.End(); i++ {
			line = strconv.AppendInt(line[:0], i, 10)
			line = append(line, '|')
			line = strconv.AppendInt(line, i*block.Size, 10)
			line = append(line, '|')
			line = strconv.AppendInt(line, block.Size, 10)
			line = append(line, '\n')
			bw.Write(line)
		}
	}
	return bw.Flush()
}

// WriteText writes the diff for people: the runs, the totals, then the
// partitions and files when they were mapped.
func WriteText(w io.Writer, d *Diff) error {
	bw := bufio.NewWriter(w)
	fmt.Fprintf(bw, "changes from %s to %s (%d GiB volume, %d-byte blocks)\n", d.Base, d.Snapshot, d.VolumeGiB, d.BlockSize)
	if len(d.Runs) > 0 {
		fmt.Fprintf(bw, "%12s %8s %16s %14s  %-8s %s\n", "start_block", "blocks", "offset", "length", "kind", "partitions")
	}
	for _, r := range d.Runs {
		fmt.Fprintf(bw, "%12d %8d %16d %14d  %-8s %s\n", r.StartBlock, r.Blocks, r.Offset, r.Length, r.Kind, ints(r.Partitions))
	}
	t := d.Totals
	fmt.Fprintf(bw, "total: %d blocks (%d bytes) in %d runs: %d added, %d changed, %d removed; %d List calls",
		t.Blocks, t.Bytes, t.Runs, t.Added, t.Changed, t.Removed, d.ListCalls)
	if d.GetCalls > 0 {
		fmt.Fprintf(bw, ", %d Get calls", d.GetCalls)
	}
	fmt.Fprintln(bw)
	if len(d.Partitions) > 0 {
		fmt.Fprintln(bw, "partitions:")
	}
	for _, p := range d.Partitions {
		name := "whole volume"
		if p.Number > 0 {
			name = fmt.Sprintf("partition %d", p.Number)
		}
		if p.Name != "" {
			name += " " + strconv.Quote(p.Name)
		}
		fs := p.FileSystem
		if fs == "" {
			fs = "no known file system"
		}
		fmt.Fprintf(bw, "  %s (%s) at %d, %d bytes: %d changed blocks, %d bytes", name, fs, p.Offset, p.Length, p.Blocks, p.Bytes)
		if p.Mapped {
			fmt.Fprintf(bw, "; %d bytes in free space", p.Unallocated)
		}
		if p.Unmapped > 0 {
			fmt.Fprintf(bw, "; %d bytes not mapped to files", p.Unmapped)
		}
		fmt.Fprintln(bw)
		for _, warn := range p.Warnings {
			fmt.Fprintf(bw, "    warning: %s\n", warn)
		}
	}
	if d.Outside != nil {
		fmt.Fprintf(bw, "  outside every partition: %d changed blocks, %d bytes\n", d.Outside.Blocks, d.Outside.Bytes)
	}
	if len(d.Files) > 0 {
		fmt.Fprintln(bw, "files:")
	}
	for _, f := range d.Files {
		var what []string
		if f.Data {
			what = append(what, fmt.Sprintf("data %d bytes", f.DataBytes))
		}
		if f.Metadata {
			what = append(what, fmt.Sprintf("metadata %d bytes", f.MetadataBytes))
		}
		fmt.Fprintf(bw, "  %-7s %-9s partition %d %s %s (%s)\n", f.Status, f.Kind, f.Partition, f.FileSystem, f.Path, strings.Join(what, ", "))
	}
	for _, warn := range d.Warnings {
		fmt.Fprintf(bw, "warning: %s\n", warn)
	}
	return bw.Flush()
}

func ints(v []int) string {
	if len(v) == 0 {
		return "-"
	}
	s := make([]string, len(v))
	for i, n := range v {
		s[i] = strconv.Itoa(n)
	}
	return strings.Join(s, ",")
}
