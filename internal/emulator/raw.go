package emulator

import (
	"errors"
	"fmt"
	"hash/maphash"
	"io"
	"os"
	"slices"
	"syscall"

	"github.com/ebsimager/ebsimager/internal/block"
)

// rawSource serves a disk image file in place with ReadAt. The listed
// indexes and a fingerprint of each listed block are found once, when the
// image is added; the bytes are read on every Get. The file must not
// change while it is served.
type rawSource struct {
	f     *os.File
	size  int64
	slots int64
	index []int64  // listed indexes, ascending
	fps   []uint64 // fingerprint of each listed block, for ListChangedBlocks
}

// fpSeed keys the content fingerprints; they are compared only within one
// process, so a per-process seed does.
var fpSeed = maphash.MakeSeed()

// seekData is SEEK_DATA (Linux, FreeBSD, illumos: whence 3): the next
// offset at or after the given one that is not in a hole.
const seekData = 3

// openRaw opens path and finds its listed blocks.
func openRaw(path string, o RawOptions) (*rawSource, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, 0, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, err
	}
	if !st.Mode().IsRegular() {
		f.Close()
		return nil, 0, fmt.Errorf("%s: not a regular file", path)
	}
	size := st.Size()
	const gib = 1 << 30 // VolumeSize unit
	need := max(1, (size+gib-1)/gib)
	vol := o.VolumeGiB
	switch {
	case vol == 0:
		vol = need
	case vol < need:
		f.Close()
		return nil, 0, fmt.Errorf("%s: volume size %d GiB is smaller than the file (%d bytes, %d GiB)", path, vol, size, need)
	case vol > MaxVolumeGiB:
		f.Close()
		return nil, 0, fmt.Errorf("%s: volume size %d GiB is larger than the 64 TiB EBS maximum", path, vol)
	}
	r := &rawSource{f: f, size: size, slots: block.Slots(vol)}
	if err := r.scan(o.ListZeroBlocks); err != nil {
		f.Close()
		return nil, 0, fmt.Errorf("scanning %s: %w", path, err)
	}
	return r, vol, nil
}

// scan reads the file once, skipping holes where the file system reports
// them, and records the listed blocks and their fingerprints.
func (r *rawSource) scan(listZeros bool) error {
	buf := make([]byte, block.Size)
	zeroFP := maphash.Bytes(fpSeed, buf)
	fileBlocks := (r.size + block.Size - 1) / block.Size
	holes := true // whether SEEK_DATA works here
	for i := int64(0); i < fileBlocks; {
		if holes {
			off, err := r.f.Seek(i*block.Size, seekData)
			switch {
			case err == nil:
				next := off / block.Size
				if listZeros {
					for ; i < next && i < fileBlocks; i++ {
						r.index = append(r.index, i)
						r.fps = append(r.fps, zeroFP)
					}
				}
				i = max(i, next)
				if i >= fileBlocks {
					continue
				}
			case isNoData(err):
				if listZeros {
					for ; i < fileBlocks; i++ {
						r.index = append(r.index, i)
						r.fps = append(r.fps, zeroFP)
					}
				}
				i = fileBlocks
				continue
			default:
				holes = false
			}
		}
		if err := r.read(i, buf); err != nil {
			return err
		}
		if listZeros || !block.IsZero(buf) {
			r.index = append(r.index, i)
			r.fps = append(r.fps, maphash.Bytes(fpSeed, buf))
		}
		i++
	}
	return nil
}

// isNoData reports the ENXIO that SEEK_DATA returns past the last data.
func isNoData(err error) bool { return errors.Is(err, syscall.ENXIO) }

func (r *rawSource) seek(from, to int64) (int64, bool) {
	to = min(to, r.slots)
	k, _ := slices.BinarySearch(r.index, from)
	if k < len(r.index) && r.index[k] < to {
		return r.index[k], true
	}
	return 0, false
}

func (r *rawSource) version(i int64) (version, bool) {
	k, ok := slices.BinarySearch(r.index, i)
	if !ok {
		return version{}, false
	}
	return version{owner: r, n: i, fp: r.fps[k], byFP: true}, true
}

// read reads block i; bytes past the end of the file read as zeros.
func (r *rawSource) read(i int64, p []byte) error {
	n, err := r.f.ReadAt(p, i*block.Size)
	if err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	clear(p[n:])
	return nil
}

func (r *rawSource) Close() error { return r.f.Close() }
