package ewf

import (
	"fmt"

	"github.com/ebsimager/ebsimager/internal/block"
)

// WriteBlock writes the EBS block at index: blocks must come in ascending
// order, and the bytes between two of them are zeros (unlisted blocks).
// An all-zero block is written as zeros without being compressed.
func (w *Writer) WriteBlock(index int64, p []byte) error {
	off := index * block.Size
	if off < w.written {
		return fmt.Errorf("block %d out of order: media already written to byte %d", index, w.written)
	}
	if err := w.WriteZeros(off - w.written); err != nil {
		return err
	}
	if block.IsZero(p) {
		return w.WriteZeros(int64(len(p)))
	}
	_, err := w.Write(p)
	return err
}

// CloseBlocks writes zeros to the end of the media, as for unlisted
// blocks after the last one written, and closes the image.
func (w *Writer) CloseBlocks() (Result, error) {
	if rem := w.size - w.written; rem > 0 && !w.closed {
		if err := w.WriteZeros(rem); err != nil {
			return Result{}, err
		}
	}
	return w.Close()
}
