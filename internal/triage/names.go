package triage

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
	"unicode/utf8"
)

// How a path on disk becomes a path under DIR/files/pN:
//
// Each name is kept as it is, except for bytes that are unsafe or
// ambiguous in a file name, which are written %XX (two upper-case hex
// digits): a control character (below 0x20, and 0x7f), a byte that is
// not part of valid UTF-8, and %, /, \ and :. The names . and .. become
// %2E and %2E%2E; a name starting with .tmp- (the prefix of temporary
// files being written) starts with %2Etmp- instead. A named stream is
// written NAME%3ASTREAM: $UsnJrnl:$J is $UsnJrnl%3A$J. A name longer than
// 255 bytes once encoded keeps its first 200 and ends with %~ and 16 hex
// digits of the SHA-256 of the whole name. When two files would still
// get the same local path (two entries of one name in a damaged
// directory), the second gets %~2 at its end, the third %~3, and so on.
// Nothing but the percent sign starts an escape, so every local path is
// a relative path of plain names: nothing leaves DIR, and files.csv
// gives the original path beside the local one.

// maxNameBytes is the longest name Linux file systems take.
const maxNameBytes = 255

// localName encodes one name from disk.
func localName(name string) string {
	switch name {
	case ".":
		return "%2E"
	case "..":
		return "%2E%2E"
	case "":
		return "%"
	}
	var b strings.Builder
	if strings.HasPrefix(name, ".tmp-") {
		b.WriteString("%2E")
		name = name[1:]
	}
	for i := 0; i < len(name); {
		r, size := utf8.DecodeRuneInString(name[i:])
		c := name[i]
		switch {
		case r == utf8.RuneError && size == 1, c < 0x20, c == 0x7f, c == '%', c == '/', c == '\\', c == ':':
			fmt.Fprintf(&b, "%%%02X", c)
			i++
		default:
			b.WriteString(name[i : i+size])
			i += size
		}
	}
	s := b.String()
	if len(s) <= maxNameBytes {
		return s
	}
	cut := 200
	for k := cut - 2; k < cut; k++ { // never cut an escape in two
		if s[k] == '%' {
			cut = k
		}
	}
	for cut > 0 && !utf8.RuneStart(s[cut]) { // nor a character
		cut--
	}
	sum := sha256.Sum256([]byte(name))
	return s[:cut] + "%~" + hex.EncodeToString(sum[:8])
}

// localPath encodes a path from disk, as its names from the root, and a
// stream into a relative path of encoded names.
func localPath(names []string, stream string) string {
	parts := make([]string, len(names))
	for k, n := range names {
		if k == len(names)-1 && stream != "" {
			n += ":" + stream
		}
		parts[k] = localName(n)
	}
	return strings.Join(parts, "/")
}
