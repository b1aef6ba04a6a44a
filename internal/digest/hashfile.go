package digest

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/ebsimager/ebsimager/internal/atomicfile"
)

// An Entry is one line of a checksum file in the format GNU coreutils
// md5sum, sha1sum and sha256sum print and check with -c.
type Entry struct {
	// Sum is the digest in lowercase hex.
	Sum string
	// Name is the file the checker opens, relative to the directory it runs
	// in; "-" makes it hash standard input, which is how a split image's
	// whole-image hash is checked: cat FILE.0* | md5sum -c FILE.md5.
	Name string
	// Comment, when not empty, makes the entry a "# Comment" line, which
	// coreutils skips; Sum and Name are then ignored.
	Comment string
}

// FileName returns the checksum file that holds the alg digest of the
// image at base: base.md5, base.sha1 or base.sha256.
func FileName(base, alg string) string { return base + "." + alg }

// Marshal returns entries in coreutils checksum format: "<hex>  <name>",
// one per line. A name holding a backslash, newline or carriage return
// is escaped the way coreutils 9 does it: the line starts with a
// backslash and those bytes become \\, \n and \r.
func Marshal(entries ...Entry) ([]byte, error) {
	var b bytes.Buffer
	for i, e := range entries {
		if e.Comment != "" {
			if strings.ContainsAny(e.Comment, "\r\n") {
				return nil, fmt.Errorf("checksum entry %d: comment holds a line break", i)
			}
			b.WriteString("# " + e.Comment + "\n")
			continue
		}
		if !isHex(e.Sum) {
			return nil, fmt.Errorf("checksum entry %d: digest %q is not lowercase hex", i, e.Sum)
		}
		if e.Name == "" {
			return nil, fmt.Errorf("checksum entry %d: empty file name", i)
		}
		name := e.Name
		if strings.ContainsAny(name, "\\\n\r") {
			b.WriteByte('\\')
			name = nameEscaper.Replace(name)
		}
		b.WriteString(e.Sum + "  " + name + "\n")
	}
	return b.Bytes(), nil
}

var (
	nameEscaper   = strings.NewReplacer(`\`, `\\`, "\n", `\n`, "\r", `\r`)
	nameUnescaper = strings.NewReplacer(`\\`, `\`, `\n`, "\n", `\r`, "\r")
)

func isHex(s string) bool {
	if s == "" || len(s)%2 != 0 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// WriteHashFile writes entries to path in coreutils checksum format. The
// file is written under a temporary name in the same directory, synced,
// created 0600 and renamed into place, so path never holds half a file.
func WriteHashFile(path string, entries ...Entry) error {
	data, err := Marshal(entries...)
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := atomicfile.WriteBytes(path, data); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}

// syncDir makes a rename in dir durable.

// maxLine bounds one checksum line: a 64-digit digest, two separators and
// a file name of at most PATH_MAX (4096 on Linux) bytes, escaped to at
// most twice that.
const maxLine = 2*4096 + 128

// Parse reads a checksum file as written by Marshal or by coreutils:
// "<hex>  <name>" or "<hex> *<name>" (binary mode), with an optional
// leading backslash for escaped names. Lines starting with # become
// comment entries (empty ones are dropped); blank lines and a trailing
// carriage return are ignored. Upper-case digests are folded to lower case.
func Parse(r io.Reader) ([]Entry, error) {
	var entries []Entry
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), maxLine)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSuffix(sc.Text(), "\r")
		if strings.TrimSpace(line) == "" {
			continue
		}
		if strings.HasPrefix(line, "#") {
			if c := strings.TrimPrefix(line[1:], " "); c != "" {
				entries = append(entries, Entry{Comment: c})
			}
			continue
		}
		e, err := parseLine(line)
		if err != nil {
			return nil, fmt.Errorf("checksum line %d: %w", n, err)
		}
		entries = append(entries, e)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading checksum file: %w", err)
	}
	return entries, nil
}

func parseLine(line string) (Entry, error) {
	escaped := strings.HasPrefix(line, `\`)
	if escaped {
		line = line[1:]
	}
	sum, rest, ok := strings.Cut(line, " ")
	if !ok {
		return Entry{}, errors.New("want <hex>  <name>")
	}
	sum = strings.ToLower(sum)
	if !isHex(sum) {
		return Entry{}, fmt.Errorf("digest %q is not hex", sum)
	}
	if rest == "" || (rest[0] != ' ' && rest[0] != '*') {
		return Entry{}, errors.New("want two spaces or \" *\" after the digest")
	}
	name := rest[1:]
	if escaped {
		if !validEscapes(name) {
			return Entry{}, fmt.Errorf("bad escape in file name %q", name)
		}
		name = nameUnescaper.Replace(name)
	}
	if name == "" {
		return Entry{}, errors.New("empty file name")
	}
	return Entry{Sum: sum, Name: name}, nil
}

// validEscapes reports whether every backslash in s starts one of the
// escapes coreutils writes.
func validEscapes(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] != '\\' {
			continue
		}
		if i+1 == len(s) || !strings.ContainsRune(`\nr`, rune(s[i+1])) {
			return false
		}
		i++
	}
	return true
}
