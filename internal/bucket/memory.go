package bucket

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
	"maps"
	"math"
	"slices"
	"strings"
	"sync"

	"github.com/ebsimager/ebsimager/internal/block"
)

// Memory is a Bucket in memory, for tests: it checks each body's SHA-256
// as S3 does. Fail, when set, is asked before each request (the
// operation's name and key) and its error returned instead, to play
// failures.
type Memory struct {
	Fail func(op, key string) error

	mu      sync.Mutex
	objects map[string]memObject
	puts    int
}

type memObject struct {
	data []byte
	meta map[string]string
}

func (m *Memory) fail(op, key string) error {
	if m.Fail != nil {
		return m.Fail(op, key)
	}
	return nil
}

// PutNew implements Bucket.
func (m *Memory) PutNew(_ context.Context, key string, body []byte, sum block.Sum, metadata map[string]string) error {
	if err := m.fail("PutNew", key); err != nil {
		return err
	}
	if block.Sum(sha256.Sum256(body)) != sum {
		return fmt.Errorf("%s: %w", key, ErrBadDigest)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.objects == nil {
		m.objects = map[string]memObject{}
	}
	if _, ok := m.objects[key]; ok {
		return fmt.Errorf("%s: %w", key, ErrExists)
	}
	m.objects[key] = memObject{data: slices.Clone(body), meta: maps.Clone(metadata)}
	m.puts++
	return nil
}

// Create implements Bucket: the object is held in memory until Close
// puts it, as PutNew would.
func (m *Memory) Create(_ context.Context, key string, metadata map[string]string) (Writer, error) {
	if err := m.fail("Create", key); err != nil {
		return nil, err
	}
	return &memWriter{m: m, key: key, meta: maps.Clone(metadata), sum: sha256.New()}, nil
}

type memWriter struct {
	m    *Memory
	key  string
	meta map[string]string
	buf  []byte
	sum  hash.Hash
	done bool
}

func (w *memWriter) Write(p []byte) (int, error) {
	if w.done {
		return 0, errors.New("writing a closed object")
	}
	if err := w.m.fail("Write", w.key); err != nil {
		return 0, err
	}
	w.buf = append(w.buf, p...)
	w.sum.Write(p)
	return len(p), nil
}

func (w *memWriter) Close() (int64, block.Sum, error) {
	if w.done {
		return 0, block.Sum{}, errors.New("closing a closed object")
	}
	w.done = true
	var sum block.Sum
	copy(sum[:], w.sum.Sum(nil))
	if err := w.m.PutNew(context.Background(), w.key, w.buf, sum, w.meta); err != nil {
		return 0, block.Sum{}, err
	}
	return int64(len(w.buf)), sum, nil
}

func (w *memWriter) Abort() error {
	w.done, w.buf = true, nil
	return nil
}

// Head implements Bucket.
func (m *Memory) Head(_ context.Context, key string) (Object, error) {
	if err := m.fail("Head", key); err != nil {
		return Object{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	o, ok := m.objects[key]
	if !ok {
		return Object{}, fmt.Errorf("%s: %w", key, ErrNotFound)
	}
	return Object{Size: int64(len(o.data)), SHA256: sha256.Sum256(o.data), HasSHA256: true, Metadata: maps.Clone(o.meta)}, nil
}

// Get implements Bucket.
func (m *Memory) Get(_ context.Context, key string, max int64) ([]byte, error) {
	if err := m.fail("Get", key); err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	o, ok := m.objects[key]
	if !ok {
		return nil, fmt.Errorf("%s: %w", key, ErrNotFound)
	}
	if int64(len(o.data)) > max {
		return nil, fmt.Errorf("%s holds more than %d bytes: refused", key, max)
	}
	return slices.Clone(o.data), nil
}

// GetRange implements Bucket.
func (m *Memory) GetRange(_ context.Context, key string, off, length int64) ([]byte, error) {
	if err := m.fail("GetRange", key); err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	o, ok := m.objects[key]
	if !ok {
		return nil, fmt.Errorf("%s: %w", key, ErrNotFound)
	}
	if off < 0 || length <= 0 || off+length > int64(len(o.data)) {
		return nil, fmt.Errorf("%s: range %d+%d of %d bytes: %w", key, off, length, len(o.data), io.ErrUnexpectedEOF)
	}
	return slices.Clone(o.data[off : off+length]), nil
}

// List implements Bucket.
func (m *Memory) List(_ context.Context, prefix string, max int) ([]Listed, error) {
	if err := m.fail("List", prefix); err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []Listed
	for _, k := range slices.Sorted(maps.Keys(m.objects)) {
		if strings.HasPrefix(k, prefix) {
			if len(out) == max {
				return nil, fmt.Errorf("listing %s: more than %d keys", prefix, max)
			}
			out = append(out, Listed{Key: k, Size: int64(len(m.objects[k].data))})
		}
	}
	return out, nil
}

// ListLevel implements Bucket.
func (m *Memory) ListLevel(ctx context.Context, prefix string, max int) ([]Listed, []string, error) {
	all, err := m.List(ctx, prefix, math.MaxInt)
	if err != nil {
		return nil, nil, err
	}
	var (
		keys []Listed
		dirs []string
	)
	for _, k := range all {
		rest := k.Key[len(prefix):]
		if i := strings.IndexByte(rest, '/'); i >= 0 {
			d := prefix + rest[:i+1]
			if len(dirs) > 0 && dirs[len(dirs)-1] == d {
				continue
			}
			dirs = append(dirs, d)
		} else {
			keys = append(keys, k)
		}
		if len(keys)+len(dirs) > max {
			return nil, nil, fmt.Errorf("listing %s: more than %d keys", prefix, max)
		}
	}
	return keys, dirs, nil
}

// String implements Bucket.
func (m *Memory) String() string { return "memory://" }

// Set writes data under key, over anything there: a test's tampering.
func (m *Memory) Set(key string, data []byte) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.objects == nil {
		m.objects = map[string]memObject{}
	}
	m.objects[key] = memObject{data: slices.Clone(data), meta: m.objects[key].meta}
}

// Delete removes key: a test's crash that lost an object.
func (m *Memory) Delete(key string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.objects, key)
}

// Puts returns how many objects PutNew wrote.
func (m *Memory) Puts() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.puts
}
