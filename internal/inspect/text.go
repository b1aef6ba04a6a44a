package inspect

import (
	"bytes"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
)

// Text writes l in a compact form like mmls: one line per partition in
// sectors, each followed by an indented line naming its file system, then
// any warnings. Write errors are not reported: render into a buffer to
// check them.
func (l *Layout) Text(w io.Writer) {
	switch l.Table {
	case TableGPT:
		fmt.Fprintf(w, "GPT disk, %d bytes, %d-byte sectors, disk GUID %s\n", l.Size, l.SectorSize, l.DiskID)
		if g := l.GPT; g != nil {
			fmt.Fprintf(w, "Entries from the %s header; primary %s, backup at LBA %d %s\n",
				g.Header, validWord(g.PrimaryValid), g.BackupLBA, validWord(g.BackupValid))
		}
	case TableMBR:
		fmt.Fprintf(w, "MBR disk, %d bytes, %d-byte sectors, disk signature %s\n", l.Size, l.SectorSize, l.DiskID)
	default:
		fmt.Fprintf(w, "No partition table, %d bytes\n", l.Size)
		if l.FileSystem != nil {
			fmt.Fprintf(w, "File system: %s\n", l.FileSystem.summary())
		}
	}
	if len(l.Partitions) > 0 {
		var table bytes.Buffer
		tw := tabwriter.NewWriter(&table, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "No.\tStart\tEnd\tLength\tType\tName")
		for _, p := range l.Partitions {
			typ := p.TypeName
			if p.Scheme == TableMBR {
				typ = fmt.Sprintf("%s (%s)", p.TypeName, p.Type)
				if p.Role != "primary" {
					typ += " " + p.Role
				}
			}
			name := p.Name
			if len(p.Flags) > 0 {
				name = strings.TrimSpace(name + " [" + strings.Join(p.Flags, ",") + "]")
			}
			fmt.Fprintf(tw, "%3d\t%010d\t%010d\t%010d\t%s\t%s\n", p.Number, p.StartSector, p.EndSector, p.Sectors, typ, name)
		}
		tw.Flush()
		for _, line := range strings.SplitAfter(table.String(), "\n") {
			io.WriteString(w, strings.TrimRight(line, " \n"))
			if strings.HasSuffix(line, "\n") {
				io.WriteString(w, "\n")
			}
		}
		for _, p := range l.Partitions {
			if p.FileSystem != nil {
				fmt.Fprintf(w, "%3d: %s\n", p.Number, p.FileSystem.summary())
			}
			for _, warn := range p.Warnings {
				fmt.Fprintf(w, "%3d: warning: %s\n", p.Number, warn)
			}
			if p.FileSystem != nil {
				for _, warn := range p.FileSystem.Warnings {
					fmt.Fprintf(w, "%3d: warning: %s\n", p.Number, warn)
				}
			}
		}
	}
	if l.FileSystem != nil {
		for _, warn := range l.FileSystem.Warnings {
			fmt.Fprintf(w, "warning: %s\n", warn)
		}
	}
	for _, warn := range l.Warnings {
		fmt.Fprintf(w, "warning: %s\n", warn)
	}
}

func validWord(ok bool) string {
	if ok {
		return "valid"
	}
	return "invalid"
}

// summary is the one-line description of a file system.
func (fs *FileSystem) summary() string {
	parts := []string{fs.Type}
	if fs.Label != "" {
		parts = append(parts, fmt.Sprintf("label %q", fs.Label))
	}
	if fs.UUID != "" {
		parts = append(parts, "uuid "+fs.UUID)
	}
	if fs.Serial != "" {
		parts = append(parts, "serial "+fs.Serial)
	}
	if fs.BlockSize != 0 {
		parts = append(parts, fmt.Sprintf("block %d", fs.BlockSize))
	}
	if fs.ClusterSize != 0 {
		parts = append(parts, fmt.Sprintf("cluster %d", fs.ClusterSize))
	}
	if fs.Size != 0 {
		parts = append(parts, fmt.Sprintf("size %d", fs.Size))
	}
	if e := fs.Ext; e != nil {
		parts = append(parts, e.State)
		if e.LastMountedOn != "" {
			parts = append(parts, "last mounted on "+e.LastMountedOn)
		}
		if !e.LastMount.IsZero() {
			parts = append(parts, "last mount "+e.LastMount.Format("2006-01-02T15:04:05Z"))
		}
		if !e.LastWrite.IsZero() {
			parts = append(parts, "last write "+e.LastWrite.Format("2006-01-02T15:04:05Z"))
		}
	}
	if n := fs.NTFS; n != nil {
		if n.Version != "" {
			parts = append(parts, "version "+n.Version)
		}
		parts = append(parts, fmt.Sprintf("MFT at cluster %d", n.MFTCluster))
	}
	if l := fs.LUKS; l != nil && l.Cipher != "" {
		parts = append(parts, "cipher "+l.Cipher)
	}
	return strings.Join(parts, ", ")
}
