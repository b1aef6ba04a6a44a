package triage

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
)

// A Profile is a list of rules: what to collect, or list, from a file
// system.
//
// # The profile format
//
// A profile is a UTF-8 text file with one rule a line. Blank lines and
// lines starting with # are ignored. A rule is a path, then options,
// separated by spaces or tabs:
//
//	/etc/passwd
//	/var/log/**
//	~/.*history
//	"/ProgramData/Microsoft/Windows/Start Menu/Programs/StartUp/**"
//	/var/log/** max=64MiB
//	/tmp/** list
//	/home/*/.ssh/id_* private
//	/$Extend/$UsnJrnl:$J
//
// The path is absolute, with / between names, on every file system
// (NTFS and FAT too); a path starting ~/ applies in every user's home
// directory: /root, every directory in /home, and every home directory
// /etc/passwd names (a service account's /var/lib/postgresql too). A path holding a space, a tab, a " or a # is
// written in double quotes, in which \" is a quote and \\ a backslash.
// In each name, * matches any run of characters, ? one character and
// [...] a class, as in path.Match; \ escapes the next character. A name
// that is exactly ** matches any number of directories, none included,
// so /var/log/** is every file under /var/log at any depth. The last
// name may end with :STREAM to name an NTFS data stream ($J of
// $UsnJrnl); a colon that is part of the name is written \:. On NTFS,
// FAT and exFAT names match without case.
//
// A rule selects files: regular files, and the named stream when it
// names one. A symbolic link it matches is recorded in listing.csv with
// its target, never followed; directories are walked, never collected.
//
// Options:
//
//	max=SIZE  a file larger than SIZE (bytes, or with KiB, MiB, GiB, KB,
//	          MB, GB) is not collected; the record names it
//	list      the files are listed in listing.csv (name, type, size,
//	          owner, times), not collected
//	private   the files are collected only with --private-keys, whatever
//	          other rule matches them: without it they are withheld, and
//	          the record names them
//
// A file several rules match is collected once: it is listed only if
// every rule that matches it lists, and it is limited only if every rule
// that collects it has a max= (the largest one applies).
type Profile struct {
	Name string // "linux", "windows", or the file's base name
	// Origin is "built-in" or the file the profile was read from; SHA256
	// is the hex SHA-256 of its text.
	Origin string
	SHA256 string
	Rules  []Rule
}

// A Rule is one line of a profile.
type Rule struct {
	// Pattern is the path pattern as written (after a .tkape target is
	// translated), with the stream.
	Pattern string
	// Names are its names, Stream the data stream ("" for the default).
	// For a Home rule they follow a home directory's.
	Names []string
	// Home marks a rule written ~/…: it applies in every home directory
	// (see HomeDirs).
	Home   bool
	Stream string
	// MaxSize is the largest file collected; 0 means no limit.
	MaxSize int64
	List    bool
	Private bool
	// Line is the line of the profile the rule is on.
	Line int
}

// String names the rule as the record shows it: the pattern and options.
func (r Rule) String() string {
	s := r.Pattern
	if r.MaxSize > 0 {
		s += " max=" + strconv.FormatInt(r.MaxSize, 10)
	}
	if r.List {
		s += " list"
	}
	if r.Private {
		s += " private"
	}
	return s
}

// Limits on a profile from outside.
const (
	// MaxProfileBytes bounds a profile file.
	MaxProfileBytes = 1 << 20
	// MaxRules bounds the rules of one profile.
	MaxRules = 10000
	// maxPatternNames bounds the names of one pattern.
	maxPatternNames = 256
)

//go:embed profiles/*.txt
var builtins embed.FS

// BuiltinNames are the profiles built in.
var BuiltinNames = []string{"linux", "windows"}

// Builtin returns the built-in profile name.
func Builtin(name string) (*Profile, error) {
	data, err := builtins.ReadFile("profiles/" + name + ".txt")
	if err != nil {
		return nil, fmt.Errorf("profile %q: no such built-in profile (want %s, or a file)", name, strings.Join(BuiltinNames, " or "))
	}
	p, err := Parse(name, data)
	if err != nil {
		return nil, err
	}
	p.Origin = "built-in"
	return p, nil
}

// Load returns the profile arg names: a built-in one by name, or a file,
// a profile or (by its .tkape suffix) a KAPE target file.
func Load(arg string) (*Profile, error) {
	if !strings.ContainsAny(arg, `/\.`) {
		return Builtin(arg)
	}
	f, err := os.Open(arg)
	if err != nil {
		return nil, fmt.Errorf("reading profile: %w", err)
	}
	defer f.Close()
	data, err := readBounded(f, MaxProfileBytes)
	if err != nil {
		return nil, fmt.Errorf("reading profile %s: %w", arg, err)
	}
	name := filepath.Base(arg)
	var p *Profile
	if strings.EqualFold(filepath.Ext(arg), ".tkape") {
		p, err = ParseTkape(name, data)
	} else {
		p, err = Parse(name, data)
	}
	if err != nil {
		return nil, err
	}
	p.Origin = arg
	return p, nil
}

// Parse reads a profile in the format above.
func Parse(name string, data []byte) (*Profile, error) {
	if len(data) > MaxProfileBytes {
		return nil, fmt.Errorf("profile %s: larger than %d bytes", name, MaxProfileBytes)
	}
	sum := sha256.Sum256(data)
	p := &Profile{Name: name, SHA256: hex.EncodeToString(sum[:])}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 4096), MaxProfileBytes)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		r, err := parseRule(line)
		if err != nil {
			return nil, fmt.Errorf("profile %s, line %d: %w", name, n, err)
		}
		r.Line = n
		if len(p.Rules) >= MaxRules {
			return nil, fmt.Errorf("profile %s: more than %d rules", name, MaxRules)
		}
		p.Rules = append(p.Rules, r)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("profile %s: %w", name, err)
	}
	if len(p.Rules) == 0 {
		return nil, fmt.Errorf("profile %s: no rules", name)
	}
	return p, nil
}

func parseRule(line string) (Rule, error) {
	pat, rest, err := cutPath(line)
	if err != nil {
		return Rule{}, err
	}
	r, err := newRule(pat)
	if err != nil {
		return Rule{}, err
	}
	for _, opt := range strings.Fields(rest) {
		if strings.HasPrefix(opt, "#") {
			break // a comment ends the line
		}
		switch {
		case opt == "list":
			r.List = true
		case opt == "private":
			r.Private = true
		case strings.HasPrefix(opt, "max="):
			n, err := parseSize(strings.TrimPrefix(opt, "max="))
			if err != nil {
				return Rule{}, err
			}
			r.MaxSize = n
		default:
			return Rule{}, fmt.Errorf("option %q: want max=SIZE, list or private", opt)
		}
	}
	return r, nil
}

// cutPath splits a line into its path, quoted or not, and the rest.
func cutPath(line string) (pat, rest string, err error) {
	if !strings.HasPrefix(line, `"`) {
		if i := strings.IndexAny(line, " \t"); i >= 0 {
			return line[:i], line[i:], nil
		}
		return line, "", nil
	}
	var b strings.Builder
	for i := 1; i < len(line); i++ {
		switch c := line[i]; c {
		case '"':
			rest = line[i+1:]
			if rest != "" && rest[0] != ' ' && rest[0] != '\t' {
				return "", "", fmt.Errorf("text right after the closing quote: %q", rest)
			}
			return b.String(), rest, nil
		case '\\':
			if i+1 < len(line) && (line[i+1] == '"' || line[i+1] == '\\') {
				i++
				b.WriteByte(line[i])
				continue
			}
			b.WriteByte(c)
		default:
			b.WriteByte(c)
		}
	}
	return "", "", fmt.Errorf("no closing quote")
}

// newRule checks a path pattern and splits it into names and a stream.
func newRule(pat string) (Rule, error) {
	home := strings.HasPrefix(pat, "~/")
	if !strings.HasPrefix(pat, "/") && !home {
		return Rule{}, fmt.Errorf("path %q: want an absolute path, starting with / (or ~/ in every home directory)", pat)
	}
	if strings.ContainsRune(pat, 0) {
		return Rule{}, fmt.Errorf("path %q: holds a NUL", pat)
	}
	r := Rule{Pattern: pat, Home: home}
	body := strings.TrimPrefix(pat[1:], "/")
	if i := lastUnescaped(body, ':'); i >= 0 && i > strings.LastIndexByte(body, '/') {
		body, r.Stream = body[:i], body[i+1:]
		if r.Stream == "" || strings.ContainsAny(r.Stream, `/*?[\`) {
			return Rule{}, fmt.Errorf("path %q: stream %q: want a plain name", pat, r.Stream)
		}
	}
	for _, n := range strings.Split(body, "/") {
		switch n {
		case "", ".":
			continue
		case "..":
			return Rule{}, fmt.Errorf("path %q: .. is not allowed", pat)
		}
		if _, err := path.Match(n, ""); err != nil {
			return Rule{}, fmt.Errorf("path %q: name %q: %w", pat, n, err)
		}
		r.Names = append(r.Names, strings.ReplaceAll(n, `\:`, ":"))
	}
	if len(r.Names) == 0 {
		return Rule{}, fmt.Errorf("path %q: names no file", pat)
	}
	if len(r.Names) > maxPatternNames {
		return Rule{}, fmt.Errorf("path %q: more than %d names", pat, maxPatternNames)
	}
	if r.Names[len(r.Names)-1] == "**" && r.Stream != "" {
		return Rule{}, fmt.Errorf("path %q: a stream needs a file name before it", pat)
	}
	return r, nil
}

// lastUnescaped returns the index of the last c in s not escaped by \.
func lastUnescaped(s string, c byte) int {
	at := -1
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '\\':
			i++
		case c:
			at = i
		}
	}
	return at
}

// parseSize reads a size: bytes, or a number with a unit.
func parseSize(s string) (int64, error) {
	units := []struct {
		suffix string
		mult   int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40}, {"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12}, {"B", 1}}
	num, mult := s, int64(1)
	for _, u := range units {
		if strings.HasSuffix(s, u.suffix) {
			num, mult = strings.TrimSuffix(s, u.suffix), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n <= 0 || n > (1<<62)/mult {
		return 0, fmt.Errorf("size %q: want a positive whole number of bytes, with an optional unit (KiB, MiB, GiB, TiB, KB, MB, GB, TB)", s)
	}
	return n * mult, nil
}

// readBounded reads r to the end, refusing more than limit bytes.
func readBounded(r io.Reader, limit int64) ([]byte, error) {
	data, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("larger than %d bytes", limit)
	}
	return data, nil
}
