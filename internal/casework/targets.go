package casework

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"strings"

	"github.com/ebsimager/ebsimager/internal/block"
)

// Bounds on a --targets file: it comes from outside, so it is read no
// further than this. A case of a thousand volumes is far beyond any
// instance (EC2 attaches at most a few dozen volumes).
const (
	MaxTargetsFileBytes = 1 << 20 // 1 MiB
	MaxTargets          = 1000
	maxLineBytes        = 1024
)

// Kind is what a target names.
type Kind int

const (
	KindSnapshot Kind = iota
	KindVolume
	KindInstance
)

// TargetError is a target that is not an instance, volume or snapshot
// id. Line is its line in a --targets file (0 on the command line).
type TargetError struct {
	File string
	Line int
	Text string
	Why  string
}

func (e *TargetError) Error() string {
	switch {
	case e.Line > 0:
		return fmt.Sprintf("%s line %d: %s", e.File, e.Line, e.Why)
	case e.File != "":
		return fmt.Sprintf("%s: %s", e.File, e.Why)
	}
	return fmt.Sprintf("invalid target %q: %s", e.Text, e.Why)
}

const wantID = "want i-, vol- or snap- followed by 8 or 17 lowercase hex digits"

// KindOf checks id and says what it names.
func KindOf(id string) (Kind, error) {
	switch {
	case strings.HasPrefix(id, "snap-"):
		if !block.ValidSnapshotID(id) {
			return 0, &TargetError{Text: id, Why: wantID}
		}
		return KindSnapshot, nil
	case strings.HasPrefix(id, "vol-") && hexID(id[len("vol-"):]):
		return KindVolume, nil
	case strings.HasPrefix(id, "i-") && hexID(id[len("i-"):]):
		return KindInstance, nil
	}
	return 0, &TargetError{Text: id, Why: wantID}
}

// hexID reports whether s is an EC2 id's hex part: 8 digits (old ids) or
// 17 (every id since 2016).
func hexID(s string) bool {
	if len(s) != 8 && len(s) != 17 {
		return false
	}
	for _, c := range []byte(s) {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// ReadTargets reads a --targets file named name from r: one id a line;
// blank lines and lines starting with # are skipped, and so is anything
// after a # on a line. A file larger than MaxTargetsFileBytes, a line
// longer than 1 KiB, more than MaxTargets ids, a malformed id (named by
// its line number) or the same id twice is refused.
func ReadTargets(name string, r io.Reader) ([]string, error) {
	data, err := io.ReadAll(io.LimitReader(r, MaxTargetsFileBytes+1))
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", name, err)
	}
	if len(data) > MaxTargetsFileBytes {
		return nil, &TargetError{File: name, Why: fmt.Sprintf("larger than %d bytes", MaxTargetsFileBytes)}
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, maxLineBytes), maxLineBytes)
	var ids []string
	line := 0
	for sc.Scan() {
		line++
		text, _, _ := strings.Cut(sc.Text(), "#")
		text = strings.TrimSpace(text)
		if text == "" {
			continue
		}
		if len(ids) == MaxTargets {
			return nil, &TargetError{File: name, Line: line, Why: fmt.Sprintf("more than %d targets", MaxTargets)}
		}
		if _, err := KindOf(text); err != nil {
			return nil, &TargetError{File: name, Line: line, Text: text, Why: fmt.Sprintf("%q: %s", text, wantID)}
		}
		ids = append(ids, text)
	}
	if err := sc.Err(); err != nil {
		return nil, &TargetError{File: name, Line: line + 1, Why: fmt.Sprintf("line longer than %d bytes", maxLineBytes)}
	}
	if len(ids) == 0 {
		return nil, &TargetError{File: name, Why: "names no target"}
	}
	return ids, CheckTargets(ids)
}

// CheckTargets checks every id and refuses one named twice.
func CheckTargets(ids []string) error {
	if len(ids) > MaxTargets {
		return &TargetError{Why: fmt.Sprintf("more than %d targets", MaxTargets)}
	}
	seen := make(map[string]bool, len(ids))
	for _, id := range ids {
		if _, err := KindOf(id); err != nil {
			return err
		}
		if seen[id] {
			return &TargetError{Text: id, Why: "named twice"}
		}
		seen[id] = true
	}
	return nil
}
