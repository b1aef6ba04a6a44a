package fsys

import (
	"errors"
	"fmt"
	iofs "io/fs"
	"path"
	"strings"
)

// MaxDepth bounds the directories a path or a walk may descend through.
const MaxDepth = 4096

// CaseInsensitive reports whether names in fsys compare without case, as
// Windows compares them (NTFS, FAT, exFAT).
func CaseInsensitive(f FS) bool {
	switch f.Type() {
	case "ntfs", "vfat", "exfat":
		return true
	}
	return false
}

// Lookup resolves an absolute path to a file's ID. It follows no
// symbolic link: a link named by the path is returned as itself, and a
// link met on the way is ErrNotDir. On NTFS, FAT and exFAT a name that
// has no exact match matches without case.
func Lookup(f FS, p string) (ID, error) {
	if !strings.HasPrefix(p, "/") {
		return 0, fmt.Errorf("%q: %w (paths start with /)", p, ErrNotFound)
	}
	id := f.Root()
	clean := path.Clean(p)
	if clean == "/" {
		return id, nil
	}
	parts := strings.Split(clean[1:], "/")
	if len(parts) > MaxDepth {
		return 0, fmt.Errorf("%q: deeper than %d directories: %w", p, MaxDepth, ErrNotFound)
	}
	fold := CaseInsensitive(f)
	for i, name := range parts {
		entries, err := f.ReadDir(id)
		if err != nil {
			return 0, fmt.Errorf("%s: %w", "/"+strings.Join(parts[:i], "/"), err)
		}
		e, ok := find(entries, name, fold)
		if !ok {
			return 0, fmt.Errorf("%s: %w", "/"+strings.Join(parts[:i+1], "/"), ErrNotFound)
		}
		id = e.ID
	}
	return id, nil
}

func find(entries []DirEntry, name string, fold bool) (DirEntry, bool) {
	for _, e := range entries {
		if e.Name == name {
			return e, true
		}
	}
	if fold {
		for _, e := range entries {
			if strings.EqualFold(e.Name, name) {
				return e, true
			}
		}
	}
	return DirEntry{}, false
}

// SkipDir, returned by a WalkFunc for a directory, skips its contents.
var SkipDir = iofs.SkipDir

// WalkFunc is called for every entry under the walk's root, with its
// path (the root's path joined with the names on the way). Returning
// SkipDir for a directory skips it; any other error ends the walk.
type WalkFunc func(p string, e DirEntry) error

// Walk visits the tree under the directory dir, whose path is p, depth
// first in on-disk order. A directory met twice (a cycle, or a directory
// linked from two places) is an error wrapping ErrCorrupt: a damaged
// file system cannot make a walk loop.
func Walk(f FS, dir ID, p string, fn WalkFunc) error {
	w := walker{f: f, fn: fn, seen: map[ID]string{dir: p}}
	return w.dir(dir, p, 0)
}

type walker struct {
	f    FS
	fn   WalkFunc
	seen map[ID]string
}

func (w *walker) dir(id ID, p string, depth int) error {
	if depth >= MaxDepth {
		return fmt.Errorf("%s: deeper than %d directories: %w", p, MaxDepth, ErrCorrupt)
	}
	entries, err := w.f.ReadDir(id)
	if err != nil {
		return fmt.Errorf("%s: %w", p, err)
	}
	for _, e := range entries {
		cp := path.Join(p, e.Name)
		err := w.fn(cp, e)
		isDir := e.Type == TypeDir
		if e.Type == TypeUnknown {
			if st, serr := w.f.Stat(e.ID); serr == nil {
				isDir = st.Type == TypeDir
			}
		}
		if errors.Is(err, SkipDir) {
			continue
		}
		if err != nil {
			return err
		}
		if !isDir {
			continue
		}
		if first, ok := w.seen[e.ID]; ok {
			return fmt.Errorf("%s: directory %d is also %s (a cycle or a second link): %w", cp, e.ID, first, ErrCorrupt)
		}
		w.seen[e.ID] = cp
		if err := w.dir(e.ID, cp, depth+1); err != nil {
			return err
		}
	}
	return nil
}
