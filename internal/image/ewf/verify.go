package ewf

import (
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"hash"
	"runtime"
	"sync"
	"sync/atomic"
)

// VerifyResult holds the hashes of the media read back and whether they
// match the ones the image stores. MD5OK (SHA1OK) is false when the image
// stores no MD5 (SHA-1).
type VerifyResult struct {
	MD5    [16]byte
	SHA1   [20]byte
	SHA256 [32]byte
	MD5OK  bool
	SHA1OK bool
}

// verifyBatch is a run of media read back, on its way to the hashers.
type verifyBatch struct {
	off  int64
	n    int
	data []byte
	err  error
	done chan struct{}
	refs atomic.Int32
}

// Verify reads the whole media, checking every chunk, and hashes it with
// MD5, SHA-1 and SHA-256. progress, if not nil, is called after each run
// of chunks with the bytes read so far. A chunk that cannot be read stops
// it with a *ChunkError; hashes that differ from the stored ones are
// reported in the result, not as an error.
func (r *Reader) Verify(progress func(done, total int64)) (VerifyResult, error) {
	workers := runtime.NumCPU()
	runBytes := max(1, batchBytes/r.chunkSize) * r.chunkSize // about 512 KiB, whole chunks
	// Runs in flight: enough to keep every decoder busy, within 64 MiB
	// even for the largest chunks.
	pool := max(2, min(4*workers, (64<<20)/runBytes))

	free := make(chan *verifyBatch, pool)
	for range pool {
		free <- &verifyBatch{data: make([]byte, runBytes)}
	}
	decode := make(chan *verifyBatch, pool)
	ordered := make(chan *verifyBatch, pool)
	var stop atomic.Bool
	var wg sync.WaitGroup

	// One goroutine hands out runs in order; the decoders read them.
	wg.Go(func() {
		defer close(decode)
		defer close(ordered)
		for off := int64(0); off < r.size && !stop.Load(); off += int64(runBytes) {
			b := <-free
			b.off, b.n, b.err = off, int(min(int64(runBytes), r.size-off)), nil
			b.done = make(chan struct{})
			decode <- b
			ordered <- b
		}
	})
	for range workers {
		wg.Go(func() {
			for b := range decode {
				if !stop.Load() {
					_, b.err = r.ReadAt(b.data[:b.n], b.off)
				}
				close(b.done)
			}
		})
	}
	hashes := [3]hash.Hash{md5.New(), sha1.New(), sha256.New()}
	var hashIn [3]chan *verifyBatch
	var hwg sync.WaitGroup
	release := func(b *verifyBatch) {
		if b.refs.Add(-1) == 0 {
			free <- b
		}
	}
	for i := range hashIn {
		hashIn[i] = make(chan *verifyBatch, pool)
		hwg.Go(func() {
			for b := range hashIn[i] {
				hashes[i].Write(b.data[:b.n])
				release(b)
			}
		})
	}

	var err error
	var done int64
	for b := range ordered {
		<-b.done
		if err == nil && b.err != nil {
			err = b.err
			stop.Store(true)
		}
		if err != nil {
			b.refs.Store(1)
			release(b)
			continue
		}
		done += int64(b.n) // before the hashers may hand b back for reuse
		b.refs.Store(int32(len(hashIn)))
		for _, ch := range hashIn {
			ch <- b
		}
		if progress != nil {
			progress(done, r.size)
		}
	}
	for _, ch := range hashIn {
		close(ch)
	}
	hwg.Wait()
	wg.Wait()
	if err != nil {
		return VerifyResult{}, err
	}
	var res VerifyResult
	copy(res.MD5[:], hashes[0].Sum(nil))
	copy(res.SHA1[:], hashes[1].Sum(nil))
	copy(res.SHA256[:], hashes[2].Sum(nil))
	res.MD5OK = r.hasMD5 && res.MD5 == r.md5
	res.SHA1OK = r.hasSHA1 && res.SHA1 == r.sha1
	return res, nil
}
