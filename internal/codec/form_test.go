package codec_test

import (
	"strings"
	"testing"

	"github.com/ebsimager/ebsimager/internal/codec"
)

// The fields a manifest entry records map to exactly one form and back.
func TestFormFields(t *testing.T) {
	fields := [][2]string{{"none", "none"}, {"zstd", "none"}, {"gzip", "none"}, {"none", "age"}, {"zstd", "age"}, {"gzip", "age"}}
	for i, f := range allForms {
		c, e := f.Fields()
		if c != fields[i][0] || e != fields[i][1] {
			t.Errorf("%v.Fields() = %q, %q; want %q, %q", f, c, e, fields[i][0], fields[i][1])
		}
		got, err := codec.FormOf(c, e)
		if err != nil || got != f {
			t.Errorf("FormOf(%q, %q) = %v, %v; want %v", c, e, got, err, f)
		}
	}
	if f, err := codec.FormOf("", ""); err != nil || f != codec.Plain {
		t.Errorf("FormOf of empty fields = %v, %v; want the plain form", f, err)
	}
	for _, bad := range [][2]string{{"lz4", "none"}, {"zstd", "xor"}, {"none", "AGE"}, {"Zstd", "none"}} {
		if f, err := codec.FormOf(bad[0], bad[1]); err == nil {
			t.Errorf("FormOf(%q, %q) = %v, want an error", bad[0], bad[1], f)
		} else if !strings.Contains(err.Error(), "unknown") {
			t.Errorf("FormOf(%q, %q): %v", bad[0], bad[1], err)
		}
	}
}
