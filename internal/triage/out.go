package triage

import (
	"crypto/sha256"
	"encoding/csv"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/ebsimager/ebsimager/internal/atomicfile"
)

// Names of the files a triage writes in its output directory, beside
// files/ and the record.
const (
	FilesCSV   = "files.csv"
	ListingCSV = "listing.csv"
	SumsName   = "SHA256SUMS"
)

// FilesHeader is files.csv's first line: one row per collected file.
// path is as on disk (":stream" for a named stream); file is where it
// was written, relative to the output directory; inode is the inode or
// MFT record number and addr Sleuth Kit's address of it; the times are
// RFC 3339 in UTC, empty when the file system keeps none; blocks are the
// 512 KiB blocks of the volume the file's bytes were read from ("8-11;40";
// empty for a file held in its inode or MFT record); rule is the profile
// and line that selected it.
var FilesHeader = []string{"partition", "path", "file", "inode", "addr", "size", "md5", "sha1", "sha256",
	"atime", "mtime", "ctime", "crtime", "blocks", "rule"}

// ListingHeader is listing.csv's first line: one row per entry of a
// list-only rule, and per symbolic link or special file a rule matched.
var ListingHeader = []string{"partition", "path", "type", "inode", "size", "mode", "uid", "gid",
	"atime", "mtime", "ctime", "crtime", "target", "rule"}

// layout hands out the local paths of collected files, never the same
// one twice.
type layout struct {
	dir  string
	used map[string]bool // local paths given, of files and directories
}

func newLayout(dir string) *layout { return &layout{dir: dir, used: map[string]bool{}} }

// reserve returns the path (relative to the output directory, with /)
// a file of partition part gets, and makes its directories.
func (l *layout) reserve(part string, names []string, stream string) (string, error) {
	rel := "files/" + part + "/" + localPath(names, stream)
	parts := strings.Split(rel, "/")
	for k := 2; k < len(parts)-1; k++ { // a directory on the way must not be a file given
		dir := strings.Join(parts[:k+1], "/")
		if l.used[dir] && !l.used[dir+"/"] {
			return "", fmt.Errorf("its directory %s is a file collected before (a damaged directory?)", dir)
		}
	}
	base := rel
	for n := 2; l.used[rel]; n++ {
		rel = base + "%~" + strconv.Itoa(n)
	}
	l.used[rel] = true
	for k := 2; k < len(parts)-1; k++ {
		dir := strings.Join(parts[:k+1], "/")
		l.used[dir], l.used[dir+"/"] = true, true
	}
	if err := os.MkdirAll(filepath.Join(l.dir, filepath.FromSlash(filepath.Dir(rel))), 0o700); err != nil {
		return "", err
	}
	return rel, nil
}

// hashingWrite writes a file of the output directory atomically and
// returns its SHA-256.
func (c *collector) hashingWrite(name string, fn func(io.Writer) error) (string, error) {
	h := sha256.New()
	err := atomicfile.Write(filepath.Join(c.o.Out, name), func(w io.Writer) error {
		return fn(io.MultiWriter(w, h))
	})
	if err != nil {
		return "", fmt.Errorf("writing %s: %w", name, err)
	}
	sum := hex.EncodeToString(h.Sum(nil))
	c.rec.Outputs[name] = sum
	return sum, nil
}

// writeLists writes files.csv and listing.csv.
func (c *collector) writeLists() error {
	if c.rec.Outputs == nil {
		c.rec.Outputs = map[string]string{}
	}
	sum, err := c.hashingWrite(FilesCSV, func(w io.Writer) error {
		cw := csv.NewWriter(w)
		cw.Write(FilesHeader)
		for _, r := range c.rows {
			cw.Write([]string{r.part, r.path, r.file, strconv.FormatUint(uint64(r.id), 10), r.st.Addr, strconv.FormatInt(r.size, 10),
				r.md5, r.sha1, r.sha256, csvTime(r.st.Atime), csvTime(r.st.Mtime), csvTime(r.st.Ctime), csvTime(r.st.Crtime), r.blocks, r.rule})
		}
		cw.Flush()
		return cw.Error()
	})
	if err != nil {
		return err
	}
	c.sums = append(c.sums, sumLine{sum: sum, file: FilesCSV})
	c.rec.Listed = len(c.listing)
	sum, err = c.hashingWrite(ListingCSV, func(w io.Writer) error {
		cw := csv.NewWriter(w)
		cw.Write(ListingHeader)
		for _, r := range c.listing {
			st := r.m.Stat
			cw.Write([]string{r.part, r.m.Name(), st.Type.String(), strconv.FormatUint(uint64(r.m.ID), 10), strconv.FormatInt(st.Size, 10),
				fmt.Sprintf("%04o", st.Mode), strconv.FormatUint(uint64(st.UID), 10), strconv.FormatUint(uint64(st.GID), 10),
				csvTime(st.Atime), csvTime(st.Mtime), csvTime(st.Ctime), csvTime(st.Crtime), r.target, r.rule})
		}
		cw.Flush()
		return cw.Error()
	})
	if err != nil {
		return err
	}
	c.sums = append(c.sums, sumLine{sum: sum, file: ListingCSV})
	return nil
}

// bodyfile writes the bodyfile of partition p, bodyfile-pN.txt.
func (c *collector) bodyfile(p Part) {
	if c.o.Bodyfile == nil || p.FS == nil {
		return
	}
	name := "bodyfile-" + partDir(p) + ".txt"
	sum, err := c.hashingWrite(name, func(w io.Writer) error { return c.o.Bodyfile(w, p) })
	if err != nil {
		c.fail(partDir(p), "(bodyfile)", err)
		return
	}
	c.sums = append(c.sums, sumLine{sum: sum, file: name})
	for k := range c.rec.Partitions {
		if c.rec.Partitions[k].Name == partDir(p) {
			c.rec.Partitions[k].Bodyfile = name
		}
	}
}

// writeSums writes SHA256SUMS: every file written but the record and
// itself, in coreutils format (sha256sum -c checks it from the output
// directory). Local paths hold no newline or backslash, so no line needs
// coreutils' escaping.
func (c *collector) writeSums() error {
	_, err := c.hashingWrite(SumsName, func(w io.Writer) error {
		for _, s := range c.sums {
			if _, err := fmt.Fprintf(w, "%s  %s\n", s.sum, s.file); err != nil {
				return err
			}
		}
		return nil
	})
	return err
}

func csvTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339Nano)
}
