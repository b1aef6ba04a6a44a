package emulator

import (
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"strconv"

	"github.com/ebsimager/ebsimager/internal/block"
)

// Page sizes. AWS documents MaxResults as 100 to 10,000 and answers a
// smaller value with up to 100. It documents no default; public scripts
// that omit MaxResults see pages of 10,000, so that is the default here.
const (
	minResults     = 100
	maxResults     = 10000
	defaultResults = maxResults
)

// scanPerPage bounds the slots one List request looks at, so a sparse
// 64 TiB synthetic snapshot answers each page in milliseconds. Like AWS,
// a page may then hold fewer blocks than asked for, or none, and still
// carry a NextToken. 2^20 slots are 512 GiB of volume.
const scanPerPage = 1 << 20

// resolve finds a snapshot that may be read.
func (s *Server) resolve(id string) (*snapshot, *apiError) {
	if !block.ValidSnapshotID(id) {
		return nil, validation(reasonInvalidSnapshotID, "The snapshot ID '"+id+"' is not valid.")
	}
	snap := s.reg.get(id)
	if snap == nil {
		return nil, notFound(id)
	}
	if reason, ok := s.faults.Load().f.Deny[id]; ok {
		return nil, accessDenied(reason, "You are not authorized to access snapshot "+id+".")
	}
	if snap.made != nil && snap.made.kmsDenied {
		return nil, accessDenied(DenyDependencyAccessDenied, "You are not authorized to access snapshot "+id+".")
	}
	if e := s.unreadable(snap); e != nil {
		return nil, e
	}
	return snap, nil
}

type listParams struct {
	max   int
	start int64
	token string
}

func parseListParams(r *http.Request) (listParams, *apiError) {
	q := r.URL.Query()
	p := listParams{max: defaultResults, token: q.Get("pageToken")}
	if v := q.Get("maxResults"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			return p, validation(reasonInvalidParameter, "maxResults '"+v+"' is not an integer.")
		}
		p.max = min(max(n, minResults), maxResults)
	}
	if v := q.Get("startingBlockIndex"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			return p, validation(reasonInvalidParameter, "startingBlockIndex '"+v+"' is not a non-negative integer.")
		}
		p.start = n
	}
	return p, nil
}

// listGate applies the List quota and injected List faults.
func (s *Server) listGate(op byte, id string) *apiError {
	if !s.lim.allowList(op, s.now()) {
		return throttled(s.o.ThrottleAs, reasonAccountThrottled, "Rate exceeded for List requests.")
	}
	switch s.faults.Load().listFault(s.seed, op, id, s.listSeq.Add(1)) {
	case errInternal:
		return internal("Injected internal error.")
	case RequestThrottled:
		return throttled(s.o.ThrottleAs, reasonAccountThrottled, "Injected throttle.")
	}
	return nil
}

// appendListTail closes the list and appends the fields every List
// response shares.
func appendListTail(b []byte, volumeGiB, expiry int64, next string) []byte {
	b = append(b, `],"BlockSize":`...)
	b = strconv.AppendInt(b, block.Size, 10)
	b = append(b, `,"ExpiryTime":`...)
	b = strconv.AppendInt(b, expiry, 10) // epoch seconds, as the SDK reads TimeStamp
	b = append(b, `,"VolumeSize":`...)
	b = strconv.AppendInt(b, volumeGiB, 10)
	if next != "" {
		b = append(b, `,"NextToken":"`...)
		b = append(b, next...)
		b = append(b, '"')
	}
	return append(b, '}')
}

func writeJSON(w http.ResponseWriter, status int, body []byte) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	w.Write(body) //nolint:errcheck // the client is gone; nothing to do
}

func (s *Server) listBlocks(c *call, w http.ResponseWriter, r *http.Request, id string) {
	snap, e := s.resolve(id)
	if e != nil {
		c.fail(e)
		return
	}
	if e := s.listGate(opListBlocks, id); e != nil {
		c.fail(e)
		return
	}
	p, e := parseListParams(r)
	if e != nil {
		c.fail(e)
		return
	}
	now := s.now()
	pos, gen := p.start, uint32(0)
	if p.token != "" {
		st, ok := s.seal.openPageToken(p.token, opListBlocks, "", id, now)
		if !ok {
			c.fail(validation(reasonInvalidPageToken, "The pagination token is not valid or has expired."))
			return
		}
		pos, gen = st.pos, st.gen2
	} else {
		gen = snap.gen.Add(1)
	}
	expiry := now.Add(s.o.BlockTokenTTL).Unix()
	slots := snap.slots()
	limit := min(slots, pos+scanPerPage)

	b := make([]byte, 0, 128+min(p.max, 1024)*80)
	b = append(b, `{"Blocks":[`...)
	n := 0
	for n < p.max {
		i, ok := snap.src.seek(pos, limit)
		if !ok {
			pos = max(pos, limit)
			break
		}
		if n > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"BlockIndex":`...)
		b = strconv.AppendInt(b, i, 10)
		b = append(b, `,"BlockToken":"`...)
		b = append(b, s.seal.blockToken(id, i, expiry, gen)...)
		b = append(b, `"}`...)
		n++
		pos = i + 1
	}
	next := ""
	if pos < slots {
		resume := int64(-1)
		if n < p.max {
			resume = pos // stopped at the scan bound
		} else {
			hi := min(slots, pos+scanPerPage)
			if _, ok := snap.src.seek(pos, hi); ok {
				resume = pos
			} else if hi < slots {
				resume = hi
			}
		}
		if resume >= 0 {
			next = s.seal.pageToken(pageState{op: opListBlocks, pos: resume, expiry: now.Add(s.o.PageTokenTTL).Unix(), gen2: gen}, "", id)
		}
	}
	c.done(OutcomeOK)
	writeJSON(w, http.StatusOK, appendListTail(b, snap.volumeGiB, expiry, next))
}

// change is one ListChangedBlocks entry.
type change struct {
	index         int64
	first, second bool // which snapshots list it
}

// differ finds changes between first (nil for "none") and second.
type differ struct {
	s             *Server
	first, second *snapshot
	bufA, bufB    *[]byte // for content comparison, taken on first use
}

func (d *differ) release() {
	if d.bufA != nil {
		d.s.bufs.Put(d.bufA)
		d.s.bufs.Put(d.bufB)
	}
}

// next returns the first change in [from, to).
func (d *differ) next(from, to int64) (change, bool, error) {
	for from < to {
		b, okB := d.second.src.seek(from, to)
		if d.first == nil {
			return change{index: b, second: true}, okB, nil
		}
		a, okA := d.first.src.seek(from, to)
		switch {
		case !okA && !okB:
			return change{}, false, nil
		case okA && (!okB || a < b):
			return change{index: a, first: true}, true, nil
		case okB && (!okA || b < a):
			return change{index: b, second: true}, true, nil
		}
		if d.bufA == nil {
			d.bufA = d.s.bufs.Get().(*[]byte)
			d.bufB = d.s.bufs.Get().(*[]byte)
		}
		same, err := sameBlock(d.first, d.second, a, *d.bufA, *d.bufB)
		if err != nil {
			return change{}, false, err
		}
		if !same {
			return change{index: a, first: true, second: true}, true, nil
		}
		from = a + 1
	}
	return change{}, false, nil
}

func (s *Server) listChanged(c *call, w http.ResponseWriter, r *http.Request, secondID string) {
	second, e := s.resolve(secondID)
	if e != nil {
		c.fail(e)
		return
	}
	firstID := r.URL.Query().Get("firstSnapshotId")
	var first *snapshot
	if firstID != "" {
		if first, e = s.resolve(firstID); e != nil {
			c.fail(e)
			return
		}
		if !related(first, second) {
			c.fail(validation(reasonUnrelated, "The snapshots '"+firstID+"' and '"+secondID+"' are not related."))
			return
		}
	}
	if e := s.listGate(opListChanged, secondID); e != nil {
		c.fail(e)
		return
	}
	p, e := parseListParams(r)
	if e != nil {
		c.fail(e)
		return
	}
	now := s.now()
	pos := p.start
	var gen1, gen2 uint32
	if p.token != "" {
		st, ok := s.seal.openPageToken(p.token, opListChanged, firstID, secondID, now)
		if !ok {
			c.fail(validation(reasonInvalidPageToken, "The pagination token is not valid or has expired."))
			return
		}
		pos, gen1, gen2 = st.pos, st.gen1, st.gen2
	} else {
		gen2 = second.gen.Add(1)
		if first != nil && first != second {
			gen1 = first.gen.Add(1)
		} else if first != nil {
			gen1 = gen2
		}
	}
	expiry := now.Add(s.o.BlockTokenTTL).Unix()
	slots := second.slots()
	if first != nil {
		slots = max(slots, first.slots())
	}
	limit := min(slots, pos+scanPerPage)

	d := &differ{s: s, first: first, second: second}
	defer d.release()
	b := make([]byte, 0, 128+min(p.max, 1024)*140)
	b = append(b, `{"ChangedBlocks":[`...)
	n := 0
	for n < p.max {
		ch, ok, err := d.next(pos, limit)
		if err != nil {
			c.fail(internal("Comparing blocks: " + err.Error()))
			return
		}
		if !ok {
			pos = max(pos, limit)
			break
		}
		if n > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"BlockIndex":`...)
		b = strconv.AppendInt(b, ch.index, 10)
		if ch.first {
			b = append(b, `,"FirstBlockToken":"`...)
			b = append(b, s.seal.blockToken(firstID, ch.index, expiry, gen1)...)
			b = append(b, '"')
		}
		if ch.second {
			b = append(b, `,"SecondBlockToken":"`...)
			b = append(b, s.seal.blockToken(secondID, ch.index, expiry, gen2)...)
			b = append(b, '"')
		}
		b = append(b, '}')
		n++
		pos = ch.index + 1
	}
	next := ""
	if pos < slots {
		resume := int64(-1)
		if n < p.max {
			resume = pos
		} else {
			hi := min(slots, pos+scanPerPage)
			_, ok, err := d.next(pos, hi)
			if err != nil {
				c.fail(internal("Comparing blocks: " + err.Error()))
				return
			}
			if ok {
				resume = pos
			} else if hi < slots {
				resume = hi
			}
		}
		if resume >= 0 {
			next = s.seal.pageToken(pageState{op: opListChanged, pos: resume, expiry: now.Add(s.o.PageTokenTTL).Unix(),
				gen1: gen1, gen2: gen2}, firstID, secondID)
		}
	}
	c.done(OutcomeOK)
	writeJSON(w, http.StatusOK, appendListTail(b, second.volumeGiB, expiry, next))
}

func (s *Server) getBlock(c *call, w http.ResponseWriter, r *http.Request, id, idx string) {
	snap, e := s.resolve(id)
	if e != nil {
		c.fail(e)
		return
	}
	index, err := strconv.ParseInt(idx, 10, 64)
	if err != nil || index < 0 || index >= snap.slots() {
		c.fail(validation(reasonInvalidBlock, "The block index '"+idx+"' is not valid for snapshot "+id+"."))
		return
	}
	fs := s.faults.Load()
	var attempt int64
	if s.o.TrackBlocks || fs.active {
		attempt = s.ctr.attempt(blockKey{id, index})
	}
	if reason, ok := s.lim.allowGet(id, s.now()); !ok {
		c.fail(throttled(s.o.ThrottleAs, reason, "Rate exceeded for GetSnapshotBlock."))
		return
	}
	tok := r.URL.Query().Get("blockToken")
	expiry, gen, ok := s.seal.openBlockToken(tok, id, index)
	if !ok || s.now().Unix() >= expiry || (s.o.InvalidateOnRelist && gen != snap.gen.Load()) {
		c.fail(validation(reasonInvalidBlockToken, "The block token is not valid or has expired."))
		return
	}
	if _, listed := snap.src.version(index); !listed {
		c.fail(validation(reasonInvalidBlockToken, "The block token is not valid or has expired."))
		return
	}

	fault, detail := fs.getFault(s.seed, id, index, attempt)
	switch fault {
	case errInternal:
		c.fail(internal("Injected internal error."))
		return
	case errUnavailable:
		c.fail(unavailable())
		return
	case faultThrottle:
		c.fail(throttled(s.o.ThrottleAs, reasonAccountThrottled, "Injected throttle."))
		return
	case RequestThrottled, Throttling:
		c.fail(throttled(fault, reasonAccountThrottled, "Injected throttle."))
		return
	case errAccessDenied:
		c.fail(accessDenied(reasonUnauthorizedAccount, "Injected access denial."))
		return
	case errNotFound:
		c.fail(notFound(id))
		return
	case errValidation:
		c.fail(validation(reasonInvalidBlockToken, "Injected: the block token is not valid or has expired."))
		return
	case errQuota:
		// EBS models ServiceQuotaExceededException as HTTP 402.
		c.fail(&apiError{status: http.StatusPaymentRequired, typ: errQuota, reason: reasonQuotaExceeded,
			message: "Injected: a dependency's service quota is exceeded."})
		return
	}

	bp := s.bufs.Get().(*[]byte)
	defer s.bufs.Put(bp)
	buf := *bp
	if err := snap.src.read(index, buf); err != nil {
		c.fail(internal("Reading block: " + err.Error()))
		return
	}
	sum := sha256.Sum256(buf)
	body, length, outcome := buf, int64(block.Size), OutcomeOK
	switch fault {
	case FaultBadChecksum:
		sum[detail%sha256.Size] ^= 1 << ((detail >> 8) % 8)
		outcome = OutcomeBadChecksum
	case FaultBadLength:
		length = block.Size - 1 // shorter than the body
		if detail%2 == 1 {
			length = block.Size + 1 // longer than the body and than any block
		}
		outcome = OutcomeBadLength
	case FaultCorrupt:
		buf[detail%block.Size] ^= 1 << ((detail >> 32) % 8)
		outcome = OutcomeCorrupted
	case FaultTruncate:
		body = buf[:block.Size/2]
		outcome = OutcomeTruncated
	}
	h := w.Header()
	h.Set("Content-Type", "application/octet-stream")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	h.Set("X-Amz-Data-Length", strconv.FormatInt(length, 10))
	h.Set("X-Amz-Checksum", base64.StdEncoding.EncodeToString(sum[:]))
	h.Set("X-Amz-Checksum-Algorithm", "SHA256")
	if fault == FaultDrop {
		s.drop(c, w, buf)
		return
	}
	// Count before the body goes out: a client that has its answer finds
	// it counted.
	c.done(outcome)
	s.ctr.bytes.Add(int64(len(body)))
	w.WriteHeader(http.StatusOK)
	if n, _ := w.Write(body); n < len(body) {
		s.ctr.bytes.Add(int64(n - len(body)))
	}
}

// drop sends the headers and half of the body, then closes the
// connection.
func (s *Server) drop(c *call, w http.ResponseWriter, buf []byte) {
	half := buf[:block.Size/2]
	c.done(OutcomeDropped)
	s.ctr.bytes.Add(int64(len(half)))
	w.WriteHeader(http.StatusOK)
	w.Write(half) //nolint:errcheck // the connection is closed next anyway
	if f, ok := w.(http.Flusher); ok {
		f.Flush()
	}
	if hj, ok := w.(http.Hijacker); ok {
		if conn, _, err := hj.Hijack(); err == nil {
			conn.Close()
			return
		}
	}
	// No hijacking (HTTP/2, a recorder): abort the handler, which makes
	// the server reset the stream.
	panic(http.ErrAbortHandler)
}
