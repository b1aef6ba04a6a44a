package triage

import (
	"errors"
	"fmt"
	"io"
	"path"
	"strings"
	"sync"

	"github.com/ebsimager/ebsimager/internal/fsys"
)

// Bounds on the walk of one file system, so that a hostile one (or a
// pattern such as /**) cannot exhaust time or memory.
const (
	// MaxEntries bounds the directory entries the rules may read.
	MaxEntries = 1 << 24
	// MaxMatches bounds the files the rules may select.
	MaxMatches = 1 << 20
	// maxCachedEntries bounds the directory entries kept between rules.
	maxCachedEntries = 1 << 20
)

// ErrBound is wrapped when a walk stops at MaxEntries or MaxMatches.
var ErrBound = errors.New("walk bound reached")

// A Match is a file, or a named stream of one, that rules selected.
type Match struct {
	Path   string // the names from the root, as on disk, joined by /
	Stream string // the named data stream, "" for the default one
	// Names are the names from the root: a damaged directory may give a
	// name holding a /, which Path cannot tell apart.
	Names []string
	ID    fsys.ID
	Stat  fsys.Stat
	// Rules are the indexes of the rules that matched it, in the order
	// of the rules given to Resolve.
	Rules []int
}

// Name returns the path as cat takes it: with ":stream" when a named
// stream was selected.
func (m *Match) Name() string {
	if m.Stream == "" {
		return m.Path
	}
	return m.Path + ":" + m.Stream
}

// WalkError is a part of the tree a rule could not read.
type WalkError struct {
	Rule int
	Path string
	Err  error
}

// Resolution is what rules selected on one file system.
type Resolution struct {
	Matches []*Match
	// Found counts the files each rule matched (by the rule's index).
	Found []int
	// Errors are the directories and files that could not be read.
	Errors []WalkError
	// Entries counts the directory entries read.
	Entries int
}

// Resolve walks fs's metadata for the files rules select. It reads only
// the directories the rules lead into: a rule /var/log/** reads /, /var,
// /var/log and what is under it, nothing else. A directory reached twice
// by one rule's ** is walked once (a cycle cannot loop), and the walk
// stops at MaxEntries entries or MaxMatches matches with an error
// wrapping ErrBound. An unreadable directory or file is recorded in
// Errors and the walk goes on.
func Resolve(fs fsys.FS, rules []Rule) (*Resolution, error) {
	rv := &resolver{fs: fs, fold: fsys.CaseInsensitive(fs), dirs: map[fsys.ID][]fsys.DirEntry{},
		byKey: map[string]*Match{}, res: &Resolution{Found: make([]int, len(rules))}}
	var homes [][]string
	for i, r := range rules {
		prefixes := [][]string{nil}
		if r.Home {
			if homes == nil {
				homes = HomeDirs(fs)
			}
			prefixes = homes
		}
		for _, prefix := range prefixes {
			names := append(append([]string(nil), prefix...), r.Names...)
			if names[len(names)-1] == "**" {
				names = append(names, "*")
			}
			if rv.fold {
				for k, n := range names {
					names[k] = strings.ToLower(n)
				}
			}
			rv.rule, rv.names, rv.seen = i, names, map[walkKey]bool{}
			rv.stream = r.Stream
			if err := rv.walk(fs.Root(), nil, 0, 0); err != nil {
				return rv.res, err
			}
		}
	}
	return rv.res, nil
}

// maxHomes bounds the home directories taken from /etc/passwd.
const maxHomes = 10000

// HomeDirs returns the home directories ~/ rules apply in, as name
// patterns from the root: /root, every directory in /home (home/*), and
// every home directory /etc/passwd names, as it names it (its names
// escaped, so that they match only themselves). An /etc/passwd that is
// absent, unreadable or larger than MaxProfileBytes adds nothing.
func HomeDirs(fs fsys.FS) [][]string {
	out := [][]string{{"root"}, {"home", "*"}}
	seen := map[string]bool{"/root": true}
	id, err := fsys.Lookup(fs, "/etc/passwd")
	if err != nil {
		return out
	}
	f, err := fs.Open(id, "")
	if err != nil || f.Size() > MaxProfileBytes {
		return out
	}
	data, err := readBounded(io.NewSectionReader(f, 0, f.Size()), MaxProfileBytes)
	if err != nil {
		return out
	}
	for _, line := range strings.Split(string(data), "\n") {
		fields := strings.Split(line, ":")
		if len(fields) < 7 || !strings.HasPrefix(fields[5], "/") || len(out) >= maxHomes {
			continue
		}
		home := path.Clean(fields[5])
		if seen[home] || strings.ContainsRune(home, 0) {
			continue
		}
		seen[home] = true
		var names []string
		for _, n := range strings.Split(strings.TrimPrefix(home, "/"), "/") {
			if n != "" {
				names = append(names, escapeGlob(n))
			}
		}
		if len(names) == 2 && names[0] == "home" || len(names) > maxPatternNames {
			continue // /home/* covers it
		}
		out = append(out, names)
	}
	return out
}

// escapeGlob escapes the characters path.Match gives a meaning to.
func escapeGlob(name string) string {
	var b strings.Builder
	for _, c := range name {
		if strings.ContainsRune(`*?[]\`, c) {
			b.WriteByte('\\')
		}
		b.WriteRune(c)
	}
	return b.String()
}

type walkKey struct {
	dir fsys.ID
	k   int
}

type resolver struct {
	fs     fsys.FS
	fold   bool
	dirs   map[fsys.ID][]fsys.DirEntry
	cached int
	byKey  map[string]*Match
	res    *Resolution

	ahead ahead

	rule   int
	names  []string
	stream string
	seen   map[walkKey]bool
}

// walk matches names[k:] under directory dir, whose names from the root
// are at.
func (rv *resolver) walk(dir fsys.ID, at []string, k, depth int) error {
	p := "/" + strings.Join(at, "/")
	if depth > fsys.MaxDepth {
		rv.fail(p, fmt.Errorf("deeper than %d directories: %w", fsys.MaxDepth, fsys.ErrCorrupt))
		return nil
	}
	if rv.seen[walkKey{dir, k}] {
		return nil
	}
	rv.seen[walkKey{dir, k}] = true
	entries, err := rv.readDir(dir)
	if err != nil {
		if errors.Is(err, ErrBound) {
			return err
		}
		rv.fail(p, err)
		return nil
	}
	name, last := rv.names[k], k == len(rv.names)-1
	if name == "**" {
		if err := rv.walk(dir, at, k+1, depth); err != nil {
			return err
		}
		var subdirs []fsys.DirEntry
		for _, e := range entries {
			if rv.isDir(e) {
				subdirs = append(subdirs, e)
			}
		}
		return rv.each(subdirs, false, func(e fsys.DirEntry) error {
			return rv.walk(e.ID, with(at, e.Name), k, depth+1)
		})
	}
	var next []fsys.DirEntry
	for _, e := range entries {
		if rv.matchName(name, e.Name) && (last || rv.isDir(e)) {
			next = append(next, e)
		}
	}
	return rv.each(next, last, func(e fsys.DirEntry) error {
		if last {
			return rv.emit(e, with(at, e.Name))
		}
		return rv.walk(e.ID, with(at, e.Name), k+1, depth+1)
	})
}

// warmChunk is how many directories (or inodes) the walk reads ahead at
// once, warmWorkers at a time: on a live snapshot each is a round trip,
// so the directories a pattern fans out into (every home in /home) are
// read in parallel, and the walk, still in order, finds them ready.
const (
	warmChunk   = 64
	warmWorkers = 16
)

// each calls fn for every entry in order, reading the entries'
// directories (or, for stat, their inodes) ahead of it, a chunk at a
// time.
func (rv *resolver) each(entries []fsys.DirEntry, stat bool, fn func(fsys.DirEntry) error) error {
	for from := 0; from < len(entries); from += warmChunk {
		chunk := entries[from:min(len(entries), from+warmChunk)]
		rv.warm(chunk, stat)
		for _, e := range chunk {
			if err := fn(e); err != nil {
				return err
			}
		}
	}
	return nil
}

// warm reads the directories of entries (or their inodes) in parallel,
// for readDir and stat to take.
func (rv *resolver) warm(entries []fsys.DirEntry, stat bool) {
	if len(entries) < 2 {
		return
	}
	var wg sync.WaitGroup
	sem := make(chan struct{}, warmWorkers)
	for _, e := range entries {
		if !stat {
			if _, ok := rv.dirs[e.ID]; ok {
				continue
			}
		}
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if stat {
				st, err := rv.fs.Stat(e.ID)
				rv.ahead.putStat(e.ID, st, err)
				return
			}
			entries, err := rv.fs.ReadDir(e.ID)
			rv.ahead.putDir(e.ID, entries, err)
		}()
	}
	wg.Wait()
}

// ahead holds what warm read, until the walk takes it.
type ahead struct {
	mu    sync.Mutex
	dirs  map[fsys.ID]dirRead
	stats map[fsys.ID]statRead
}

type dirRead struct {
	entries []fsys.DirEntry
	err     error
}

type statRead struct {
	st  fsys.Stat
	err error
}

func (a *ahead) putDir(id fsys.ID, entries []fsys.DirEntry, err error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.dirs == nil {
		a.dirs = map[fsys.ID]dirRead{}
	}
	a.dirs[id] = dirRead{entries, err}
}

func (a *ahead) putStat(id fsys.ID, st fsys.Stat, err error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.stats == nil {
		a.stats = map[fsys.ID]statRead{}
	}
	a.stats[id] = statRead{st, err}
}

// takeDir returns and forgets what warm read of directory id.
func (a *ahead) takeDir(id fsys.ID) (dirRead, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	d, ok := a.dirs[id]
	delete(a.dirs, id)
	return d, ok
}

func (a *ahead) takeStat(id fsys.ID) (statRead, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	s, ok := a.stats[id]
	delete(a.stats, id)
	return s, ok
}

// stat returns a file's inode, as warm read it or now.
func (rv *resolver) stat(id fsys.ID) (fsys.Stat, error) {
	if s, ok := rv.ahead.takeStat(id); ok {
		return s.st, s.err
	}
	return rv.fs.Stat(id)
}

func (rv *resolver) matchName(pattern, name string) bool {
	if rv.fold {
		name = strings.ToLower(name)
	}
	ok, _ := path.Match(pattern, name) // patterns were checked when parsed
	return ok
}

func (rv *resolver) isDir(e fsys.DirEntry) bool {
	if e.Type != fsys.TypeUnknown {
		return e.Type == fsys.TypeDir
	}
	st, err := rv.fs.Stat(e.ID)
	return err == nil && st.Type == fsys.TypeDir
}

// with returns names with name after them, in a new slice.
func with(names []string, name string) []string {
	return append(names[:len(names):len(names)], name)
}

// emit records the file e, whose names from the root are names, as
// matched by the current rule.
func (rv *resolver) emit(e fsys.DirEntry, names []string) error {
	p := "/" + strings.Join(names, "/")
	st, err := rv.stat(e.ID)
	if err != nil {
		rv.fail(p, err)
		return nil
	}
	stream := ""
	if rv.stream != "" {
		if st.Type != fsys.TypeRegular && st.Type != fsys.TypeDir {
			return nil
		}
		s, ok := rv.findStream(st)
		if !ok {
			return nil
		}
		stream = s
	}
	key := strings.Join(names, "\x00") + "\x00\x00" + stream
	m, ok := rv.byKey[key]
	if !ok {
		if len(rv.res.Matches) >= MaxMatches {
			return fmt.Errorf("more than %d files matched: %w", MaxMatches, ErrBound)
		}
		m = &Match{Path: p, Names: names, Stream: stream, ID: e.ID, Stat: st}
		rv.byKey[key] = m
		rv.res.Matches = append(rv.res.Matches, m)
	}
	if n := len(m.Rules); n == 0 || m.Rules[n-1] != rv.rule {
		m.Rules = append(m.Rules, rv.rule)
		rv.res.Found[rv.rule]++
	}
	return nil
}

// findStream returns the stored name of the file's stream the rule
// names.
func (rv *resolver) findStream(st fsys.Stat) (string, bool) {
	for _, s := range st.Streams {
		if s == rv.stream || rv.fold && strings.EqualFold(s, rv.stream) {
			return s, true
		}
	}
	return "", false
}

// readDir reads a directory's entries, counting them against MaxEntries
// and keeping them for the next rules within maxCachedEntries.
func (rv *resolver) readDir(dir fsys.ID) ([]fsys.DirEntry, error) {
	if entries, ok := rv.dirs[dir]; ok {
		return entries, nil
	}
	var (
		entries []fsys.DirEntry
		err     error
	)
	if d, ok := rv.ahead.takeDir(dir); ok {
		entries, err = d.entries, d.err
	} else {
		entries, err = rv.fs.ReadDir(dir)
	}
	if err != nil {
		return nil, err
	}
	rv.res.Entries += len(entries)
	if rv.res.Entries > MaxEntries {
		return nil, fmt.Errorf("more than %d directory entries read: %w", MaxEntries, ErrBound)
	}
	if rv.cached+len(entries) <= maxCachedEntries {
		rv.dirs[dir] = entries
		rv.cached += len(entries)
	}
	return entries, nil
}

func (rv *resolver) fail(p string, err error) {
	if len(rv.res.Errors) < MaxMatches {
		rv.res.Errors = append(rv.res.Errors, WalkError{Rule: rv.rule, Path: p, Err: err})
	}
}
