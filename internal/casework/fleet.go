package casework

import (
	"fmt"
	"strconv"
	"strings"
)

// The environment variables a job engine sets in each worker of an
// indexed job: its index, 0-based.
const (
	EnvJobCompletionIndex = "JOB_COMPLETION_INDEX"      // Kubernetes Indexed Job
	EnvBatchArrayIndex    = "AWS_BATCH_JOB_ARRAY_INDEX" // AWS Batch array job
)

// IndexFlag names the --index flag as a source of the index.
const IndexFlag = "--index"

// WorkerIndex returns the index of a worker of an indexed job and where
// it came from: flag when flagSet, else JOB_COMPLETION_INDEX, else
// AWS_BATCH_JOB_ARRAY_INDEX (the first that is set and not empty);
// ok is false when none is. A value that is not a plain decimal number
// is refused, naming where it came from.
func WorkerIndex(flag int, flagSet bool, getenv func(string) string) (index int, from string, ok bool, err error) {
	if flagSet {
		if flag < 0 {
			return 0, IndexFlag, true, &TargetError{Why: fmt.Sprintf("%s %d: an index is 0 or more", IndexFlag, flag)}
		}
		return flag, IndexFlag, true, nil
	}
	for _, name := range []string{EnvJobCompletionIndex, EnvBatchArrayIndex} {
		v := getenv(name)
		if v == "" {
			continue
		}
		i, err := parseIndex(v)
		if err != nil {
			return 0, name, true, &TargetError{Why: fmt.Sprintf("%s=%q: %v", name, v, err)}
		}
		return i, name, true, nil
	}
	return 0, "", false, nil
}

// parseIndex reads a worker index: decimal digits only (no sign, no
// space), at most MaxTargets-1 in value once leading zeros are dropped.
func parseIndex(v string) (int, error) {
	if len(v) > 12 {
		return 0, fmt.Errorf("not an index (at most %d)", MaxTargets-1)
	}
	for _, c := range []byte(v) {
		if c < '0' || c > '9' {
			return 0, fmt.Errorf("not an index: want decimal digits")
		}
	}
	return strconv.Atoi(v)
}

// Pick returns target index of targets, the ids read from the --targets
// file name in their order (comments and blank lines not counted). An
// index beyond them is a *TargetError naming how many there are.
func Pick(name string, targets []string, index int) (string, error) {
	if index < 0 || index >= len(targets) {
		return "", &TargetError{File: name, Why: fmt.Sprintf("index %d is beyond its %d targets (indexes 0 to %d)", index, len(targets), len(targets)-1)}
	}
	return targets[index], nil
}

// The placeholders of an --out template.
const (
	PlaceTarget   = "{target}"   // the target id as listed: snap-…, vol-… or i-…
	PlaceSnapshot = "{snapshot}" // the snapshot id; only when every target is a snapshot
	PlaceIndex    = "{index}"    // the worker's index, in decimal
)

// TemplateError is an --out template that is refused.
type TemplateError struct {
	Template string
	Why      string
}

func (e *TemplateError) Error() string { return fmt.Sprintf("--out %q: %s", e.Template, e.Why) }

// IsTemplate reports whether out is meant as a template: it holds a
// brace.
func IsTemplate(out string) bool { return strings.ContainsAny(out, "{}") }

// CheckTemplate checks an --out template of an indexed worker: it holds
// only the placeholders {target}, {snapshot} and {index}, at least one
// of them (else every worker would write the same place), and, once
// expanded, stays a clean path or URL: no "." or ".." component and no
// empty one except a leading or trailing "/" (and the "//" of s3://).
// {snapshot} is refused unless every target is a snapshot. The values
// put in are ids and numbers, which hold no "/" or ".".
func CheckTemplate(t string, targets []string) error {
	rest := t
	used := 0
	for {
		open := strings.IndexAny(rest, "{}")
		if open < 0 {
			break
		}
		if rest[open] == '}' {
			return &TemplateError{t, `a "}" without its "{"`}
		}
		end := strings.IndexByte(rest[open:], '}')
		if end < 0 {
			return &TemplateError{t, `a "{" without its "}"`}
		}
		name := rest[open : open+end+1]
		switch name {
		case PlaceTarget, PlaceIndex:
		case PlaceSnapshot:
			for _, id := range targets {
				if k, _ := KindOf(id); k != KindSnapshot {
					return &TemplateError{t, fmt.Sprintf("{snapshot} is known before the acquisition only when every target is a snapshot, and %s is not one; use {target} (an instance's or a volume's snapshots go in one directory each under it)", id)}
				}
			}
		default:
			return &TemplateError{t, fmt.Sprintf("unknown placeholder %s: want {target}, {snapshot} or {index}", name)}
		}
		used++
		rest = rest[open+end+1:]
	}
	if used == 0 {
		return &TemplateError{t, "an indexed worker's --out needs {target}, {snapshot} or {index}: without one, every worker writes the same place"}
	}
	return checkClean(t)
}

// checkClean refuses a path or URL with a "." or ".." component, or an
// empty one anywhere but at its start or end.
func checkClean(t string) error {
	p := t
	if scheme, rest, ok := strings.Cut(t, "://"); ok {
		if scheme != "s3" {
			return &TemplateError{t, fmt.Sprintf("%s:// is not a place evidence can go: want a directory or s3://bucket/prefix/", scheme)}
		}
		p = rest
	}
	if strings.ContainsAny(t, "\\\x00\n\r") {
		return &TemplateError{t, "holds a backslash or a control character"}
	}
	parts := strings.Split(p, "/")
	for i, part := range parts {
		switch {
		case part == "." || part == "..":
			return &TemplateError{t, fmt.Sprintf("holds a %q component: an expanded --out must stay where it is written", part)}
		case part == "" && i != 0 && i != len(parts)-1:
			return &TemplateError{t, "holds an empty component (//)"}
		}
	}
	return nil
}

// Expand puts the worker's values into an --out template checked by
// CheckTemplate. snapshot is empty unless the target is a snapshot.
func Expand(t, target, snapshot string, index int) string {
	return strings.NewReplacer(PlaceTarget, target, PlaceSnapshot, snapshot, PlaceIndex, strconv.Itoa(index)).Replace(t)
}
