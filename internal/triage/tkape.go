package triage

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
)

// ParseTkape reads a KAPE target file (.tkape) as a profile. It reads the
// subset of YAML such files are written in (key: value lines, and a
// Targets list of items each started by "-") and, of each target, only
// what says which files to take:
//
//   - Path: a Windows directory, "C:\Windows\System32\config\". The
//     drive ("C:", or %SystemDrive%) is dropped: the rule applies to
//     every partition. %user% and %users% match any name, as *.
//   - FileMask: the names to take in it, with * and ?; none means *.
//     A mask "regex:…" is refused.
//   - Recursive: true takes them in every directory under Path too.
//
// The descriptive keys (Description, Author, Version, Id,
// RecreateDirectories at the top; Name, Category, Comment, and the
// IsDirectory and AlwaysAddToQueue flags, which change nothing here, in
// a target) are read and ignored. Anything else is refused with its
// line: a target that names other .tkape files (a compound target),
// MinSize, MaxSize, SaveAsFileName, block scalars, other keys.
func ParseTkape(name string, data []byte) (*Profile, error) {
	if len(data) > MaxProfileBytes {
		return nil, fmt.Errorf("target file %s: larger than %d bytes", name, MaxProfileBytes)
	}
	sum := sha256.Sum256(data)
	p := &Profile{Name: name, SHA256: hex.EncodeToString(sum[:])}
	var (
		inTargets bool
		cur       *tkTarget
		targets   []*tkTarget
		dashAt    int
	)
	sc := bufio.NewScanner(bytes.NewReader(bytes.TrimPrefix(data, []byte("\xef\xbb\xbf"))))
	sc.Buffer(make([]byte, 0, 4096), MaxProfileBytes)
	for n := 1; sc.Scan(); n++ {
		raw := strings.TrimRight(sc.Text(), " \t\r")
		text := strings.TrimLeft(raw, " \t")
		if text == "" || strings.HasPrefix(text, "#") {
			continue
		}
		if strings.HasPrefix(raw, "\t") {
			return nil, fmt.Errorf("target file %s, line %d: a tab indents the line (YAML indents with spaces)", name, n)
		}
		indent := len(raw) - len(text)
		if indent == 0 {
			cur, inTargets = nil, false
			key, val, err := tkKeyValue(text)
			if err != nil {
				return nil, fmt.Errorf("target file %s, line %d: %w", name, n, err)
			}
			switch key {
			case "Targets":
				if val != "" {
					return nil, fmt.Errorf("target file %s, line %d: Targets holds a list, not %q", name, n, val)
				}
				inTargets = true
			case "Description", "Author", "Version", "Id", "RecreateDirectories":
			default:
				return nil, fmt.Errorf("target file %s, line %d: key %q is not supported (this reader takes the Targets list and the descriptive keys)", name, n, key)
			}
			continue
		}
		if !inTargets {
			return nil, fmt.Errorf("target file %s, line %d: an indented line outside the Targets list", name, n)
		}
		if text == "-" || strings.HasPrefix(text, "- ") {
			if len(targets) >= MaxRules {
				return nil, fmt.Errorf("target file %s: more than %d targets", name, MaxRules)
			}
			cur = &tkTarget{line: n}
			targets = append(targets, cur)
			dashAt = indent
			text = strings.TrimSpace(strings.TrimPrefix(text, "-"))
			if text == "" {
				continue
			}
		} else if cur == nil || indent <= dashAt {
			return nil, fmt.Errorf("target file %s, line %d: a key outside any target (each target starts with -)", name, n)
		}
		key, val, err := tkKeyValue(text)
		if err == nil {
			err = cur.set(key, val)
		}
		if err != nil {
			return nil, fmt.Errorf("target file %s, line %d: %w", name, n, err)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("target file %s: %w", name, err)
	}
	for _, t := range targets {
		r, err := t.rule()
		if err != nil {
			return nil, fmt.Errorf("target file %s, target at line %d: %w", name, t.line, err)
		}
		r.Line = t.line
		p.Rules = append(p.Rules, r)
	}
	if len(p.Rules) == 0 {
		return nil, fmt.Errorf("target file %s: no targets", name)
	}
	return p, nil
}

type tkTarget struct {
	line               int
	path, mask         string
	hasPath, recursive bool
	seen               map[string]bool
}

func (t *tkTarget) set(key, val string) error {
	if t.seen == nil {
		t.seen = map[string]bool{}
	}
	if t.seen[key] {
		return fmt.Errorf("key %s given twice in one target", key)
	}
	t.seen[key] = true
	switch key {
	case "Path":
		t.path, t.hasPath = val, true
	case "FileMask":
		t.mask = val
	case "Recursive":
		b, err := tkBool(val)
		if err != nil {
			return fmt.Errorf("Recursive: %w", err)
		}
		t.recursive = b
	case "IsDirectory", "AlwaysAddToQueue":
		if _, err := tkBool(val); err != nil {
			return fmt.Errorf("%s: %w", key, err)
		}
	case "Name", "Category", "Comment":
	default:
		return fmt.Errorf("key %q is not supported (this reader takes Path, FileMask and Recursive)", key)
	}
	return nil
}

// rule translates the target into a profile rule.
func (t *tkTarget) rule() (Rule, error) {
	if !t.hasPath || t.path == "" {
		return Rule{}, fmt.Errorf("no Path")
	}
	if strings.HasSuffix(strings.ToLower(t.path), ".tkape") {
		return Rule{}, fmt.Errorf("Path %q names another target file: compound targets are not supported (give each target file with its own --profile)", t.path)
	}
	if strings.HasPrefix(strings.ToLower(t.mask), "regex:") {
		return Rule{}, fmt.Errorf("FileMask %q: regular expressions are not supported", t.mask)
	}
	if strings.ContainsAny(t.mask, `\/`) {
		return Rule{}, fmt.Errorf("FileMask %q: want a name, without \\ or /", t.mask)
	}
	p := strings.ReplaceAll(t.path, `\`, "/")
	switch {
	case len(p) >= 2 && p[1] == ':' && isLetter(p[0]):
		p = p[2:]
	case strings.HasPrefix(strings.ToLower(p), "%systemdrive%"):
		p = p[len("%systemdrive%"):]
	}
	var names []string
	for _, n := range strings.Split(p, "/") {
		switch strings.ToLower(n) {
		case "", ".":
			continue
		case "%user%", "%users%":
			n = "*"
		}
		if strings.Contains(n, "%") {
			return Rule{}, fmt.Errorf("Path %q: variable in %q: only %%user%%, %%users%% and %%SystemDrive%% are supported", t.path, n)
		}
		names = append(names, n)
	}
	if t.recursive {
		names = append(names, "**")
	}
	mask := t.mask
	if mask == "" {
		mask = "*"
	}
	return newRule("/" + strings.Join(append(names, mask), "/"))
}

func isLetter(c byte) bool { return c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' }

// tkKeyValue splits "Key: value", unquoting the value.
func tkKeyValue(text string) (key, val string, err error) {
	key, val, ok := strings.Cut(text, ":")
	if !ok || key == "" || strings.ContainsAny(key, " \t\"'") {
		return "", "", fmt.Errorf("want Key: value, not %q", text)
	}
	val = strings.TrimSpace(val)
	switch {
	case strings.HasPrefix(val, "'"):
		end := strings.LastIndex(val, "'")
		if end == 0 {
			return "", "", fmt.Errorf("%s: no closing quote", key)
		}
		if rest := strings.TrimSpace(val[end+1:]); rest != "" && !strings.HasPrefix(rest, "#") {
			return "", "", fmt.Errorf("%s: text after the closing quote", key)
		}
		val = strings.ReplaceAll(val[1:end], "''", "'")
	case strings.HasPrefix(val, `"`):
		var b strings.Builder
		closed := false
		i := 1
		for ; i < len(val) && !closed; i++ {
			switch c := val[i]; c {
			case '"':
				closed = true
			case '\\':
				if i+1 >= len(val) || (val[i+1] != '"' && val[i+1] != '\\') {
					return "", "", fmt.Errorf(`%s: only \" and \\ escapes are supported`, key)
				}
				i++
				b.WriteByte(val[i])
			default:
				b.WriteByte(c)
			}
		}
		if !closed {
			return "", "", fmt.Errorf("%s: no closing quote", key)
		}
		if rest := strings.TrimSpace(val[i:]); rest != "" && !strings.HasPrefix(rest, "#") {
			return "", "", fmt.Errorf("%s: text after the closing quote", key)
		}
		val = b.String()
	case strings.HasPrefix(val, "|") || strings.HasPrefix(val, ">"):
		return "", "", fmt.Errorf("%s: block scalars are not supported", key)
	case strings.HasPrefix(val, "[") || strings.HasPrefix(val, "{") || strings.HasPrefix(val, "&") || strings.HasPrefix(val, "*") && key != "FileMask":
		return "", "", fmt.Errorf("%s: flow collections, anchors and aliases are not supported", key)
	default:
		if i := strings.Index(val, " #"); i >= 0 {
			val = strings.TrimSpace(val[:i])
		}
	}
	return key, val, nil
}

func tkBool(s string) (bool, error) {
	switch strings.ToLower(s) {
	case "true", "yes":
		return true, nil
	case "false", "no", "":
		return false, nil
	}
	return false, fmt.Errorf("%q: want true or false", s)
}
