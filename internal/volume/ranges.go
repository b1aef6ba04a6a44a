package volume

// appendRange adds r, which starts at or after the end of every range in
// rs, merging it with the last one when they touch.
func appendRange(rs []Range, r Range) []Range {
	if r.Len <= 0 {
		return rs
	}
	if k := len(rs); k > 0 && rs[k-1].End() >= r.Off {
		rs[k-1].Len = max(rs[k-1].End(), r.End()) - rs[k-1].Off
		return rs
	}
	return append(rs, r)
}

// subtract returns the parts of a (ascending, merged) outside every range
// of b (ascending).
func subtract(a, b []Range) []Range {
	var out []Range
	j := 0
	for _, r := range a {
		off, end := r.Off, r.End()
		for j < len(b) && b[j].End() <= off {
			j++
		}
		for k := j; k < len(b) && b[k].Off < end; k++ {
			if b[k].Off > off {
				out = appendRange(out, Range{off, b[k].Off - off})
			}
			off = max(off, b[k].End())
		}
		if off < end {
			out = appendRange(out, Range{off, end - off})
		}
	}
	return out
}

// union merges two ascending lists of ranges.
func union(a, b []Range) []Range {
	out := make([]Range, 0, len(a)+len(b))
	i, j := 0, 0
	for i < len(a) || j < len(b) {
		if j == len(b) || (i < len(a) && a[i].Off <= b[j].Off) {
			out = appendRange(out, a[i])
			i++
		} else {
			out = appendRange(out, b[j])
			j++
		}
	}
	return out
}

// clip cuts ranges at size.
func clip(rs []Range, size int64) []Range {
	out := rs[:0:0]
	for _, r := range rs {
		if r.Off >= size {
			break
		}
		out = appendRange(out, Range{r.Off, min(r.End(), size) - r.Off})
	}
	return out
}
