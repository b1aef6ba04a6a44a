package emulator

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
)

// Operation names, as counters and logs use them.
const (
	OpListSnapshotBlocks = "ListSnapshotBlocks"
	OpGetSnapshotBlock   = "GetSnapshotBlock"
	OpListChangedBlocks  = "ListChangedBlocks"
	OpStartSnapshot      = "StartSnapshot"
	OpPutSnapshotBlock   = "PutSnapshotBlock"
	OpCompleteSnapshot   = "CompleteSnapshot"
	OpUnknown            = "Unknown"
)

// Outcomes that are not error types. An error response is counted under
// "Type/REASON" (for example "ValidationException/INVALID_BLOCK_TOKEN"),
// or "Type" when the error has no reason.
const (
	OutcomeOK          = "ok"
	OutcomeDropped     = "dropped"      // connection closed mid-body
	OutcomeTruncated   = "truncated"    // short body
	OutcomeBadChecksum = "bad-checksum" // wrong x-amz-Checksum
	OutcomeBadLength   = "bad-length"   // wrong x-amz-Data-Length
	OutcomeCorrupted   = "corrupted"    // a flipped body byte
)

// Counters is a copy of a Server's request counts.
type Counters struct {
	// Requests maps an operation to its outcomes and their counts.
	Requests map[string]map[string]int64
	// BytesServed counts GetSnapshotBlock body bytes written.
	BytesServed int64
}

// Count returns the requests of op with this outcome. An error type
// without a reason ("ValidationException") sums all its reasons.
func (c Counters) Count(op, outcome string) int64 {
	var n int64
	for o, v := range c.Requests[op] {
		if o == outcome || (!strings.Contains(outcome, "/") && strings.HasPrefix(o, outcome+"/")) {
			n += v
		}
	}
	return n
}

// Total returns all requests of op.
func (c Counters) Total(op string) int64 {
	var n int64
	for _, v := range c.Requests[op] {
		n += v
	}
	return n
}

// String renders the counts, one operation a line, for a shutdown report.
func (c Counters) String() string {
	var b strings.Builder
	ops := make([]string, 0, len(c.Requests))
	for op := range c.Requests {
		ops = append(ops, op)
	}
	slices.Sort(ops)
	for _, op := range ops {
		outs := make([]string, 0, len(c.Requests[op]))
		for o := range c.Requests[op] {
			outs = append(outs, o)
		}
		slices.Sort(outs)
		fmt.Fprintf(&b, "%s: %d", op, c.Total(op))
		for i, o := range outs {
			sep := ", "
			if i == 0 {
				sep = " ("
			}
			fmt.Fprintf(&b, "%s%s %d", sep, o, c.Requests[op][o])
		}
		if len(outs) > 0 {
			b.WriteString(")")
		}
		b.WriteString("\n")
	}
	const mib = 1 << 20
	fmt.Fprintf(&b, "bytes served: %d (%.1f MiB)\n", c.BytesServed, float64(c.BytesServed)/mib)
	return b.String()
}

type opOutcome struct{ op, outcome string }

// blockStat counts the Gets of one block. attempts drives fault decisions
// and survives ResetCounters; gets is what BlockGets reports.
type blockStat struct {
	attempts int64
	gets     int64
}

type counters struct {
	mu     sync.Mutex
	reqs   map[opOutcome]int64
	bytes  atomic.Int64
	blocks map[blockKey]*blockStat
}

func (c *counters) add(op, outcome string) {
	c.mu.Lock()
	c.reqs[opOutcome{op, outcome}]++
	c.mu.Unlock()
}

// attempt records one Get of a block and returns how many came before it.
func (c *counters) attempt(k blockKey) int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	st := c.blocks[k]
	if st == nil {
		st = &blockStat{}
		c.blocks[k] = st
	}
	n := st.attempts
	st.attempts++
	st.gets++
	return n
}

func (c *counters) snapshot() Counters {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := Counters{Requests: make(map[string]map[string]int64), BytesServed: c.bytes.Load()}
	for k, v := range c.reqs {
		m := out.Requests[k.op]
		if m == nil {
			m = make(map[string]int64)
			out.Requests[k.op] = m
		}
		m[k.outcome] = v
	}
	return out
}

func (c *counters) reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.reqs = make(map[opOutcome]int64)
	c.bytes.Store(0)
	for _, st := range c.blocks {
		st.gets = 0
	}
}

func (c *counters) gets(k blockKey) int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	if st := c.blocks[k]; st != nil {
		return st.gets
	}
	return 0
}
