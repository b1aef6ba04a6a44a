package ondisk

import "testing"

func TestReads(t *testing.T) {
	b := []byte{0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09}
	if U8(b, 8) != 0x09 || U16(b, 1) != 0x0302 || U32(b, 0) != 0x04030201 || U64(b, 1) != 0x0908070605040302 {
		t.Fatal("little-endian reads")
	}
	if BE16(b, 0) != 0x0102 || BE32(b, 1) != 0x02030405 || BE64(b, 0) != 0x0102030405060708 {
		t.Fatal("big-endian reads")
	}
	for _, off := range []int{-1, 9, 8} {
		if U16(b, off) != 0 || U32(b, off) != 0 || U64(b, off) != 0 || BE64(b, off) != 0 {
			t.Fatalf("read at %d out of range did not give 0", off)
		}
	}
	if U8(b, -1) != 0 || U8(b, 9) != 0 || U16(nil, 0) != 0 {
		t.Fatal("out-of-range byte reads")
	}
}
