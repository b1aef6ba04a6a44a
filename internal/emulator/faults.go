package emulator

// faultState is a Faults ready for the request path.
type faultState struct {
	f      Faults
	fail   map[blockKey]string
	cum    [7]float64 // cumulative GetSnapshotBlock fractions, in getKinds order
	active bool       // some GetSnapshotBlock fraction is above zero
}

// faultThrottle is a drawn throttle, shaped by Options.ThrottleAs.
const faultThrottle = "throttle"

type blockKey struct {
	snap  string
	index int64
}

// getKinds is the order in which the Get fractions share [0, 1).
var getKinds = [7]string{errInternal, faultThrottle, FaultDrop, FaultTruncate, FaultBadChecksum, FaultBadLength, FaultCorrupt}

func newFaultState(f Faults) *faultState {
	fs := &faultState{f: f, fail: make(map[blockKey]string, len(f.FailBlocks))}
	for _, b := range f.FailBlocks {
		fs.fail[blockKey{b.Snapshot, b.Index}] = b.Error
	}
	fr := [7]float64{f.ServerError, f.Throttle, f.Drop, f.Truncate, f.BadChecksum, f.BadLength, f.Corrupt}
	sum := 0.0
	for k, v := range fr {
		sum += max(0, v)
		fs.cum[k] = sum
	}
	fs.active = sum > 0
	return fs
}

// getFault decides the fault for one GetSnapshotBlock: the block's fixed
// fault, or one drawn from a hash of (seed, snapshot, index, attempt), or
// "" for none. Errors come back as a kind name; faultThrottle stands for
// whichever throttling error ThrottleAs picks.
func (fs *faultState) getFault(seed uint64, snap string, index, attempt int64) (kind string, detail uint64) {
	key := hash4(domFault, strHash(snap), uint64(index), uint64(attempt))
	detail = hash4(domFaultDetail, seed, key, 0)
	if k, ok := fs.fail[blockKey{snap, index}]; ok {
		return k, detail
	}
	if !fs.active {
		return "", detail
	}
	u := unit(hash4(domFault, seed, key, 0))
	for k, c := range fs.cum {
		if u < c {
			kind = getKinds[k]
			if kind == errInternal && detail%4 == 0 { // one 5xx in four is a 503
				kind = errUnavailable
			}
			return kind, detail
		}
	}
	return "", detail
}

// listFault decides the fault for one List request from a hash of (seed,
// operation, snapshot, the server's count of List requests).
func (fs *faultState) listFault(seed uint64, op byte, snap string, n uint64) string {
	if fs.f.ListServerError <= 0 && fs.f.ListThrottle <= 0 {
		return ""
	}
	u := unit(hash4(domListFault, seed, strHash(snap)^uint64(op), n))
	switch {
	case u < fs.f.ListServerError:
		return errInternal
	case u < fs.f.ListServerError+fs.f.ListThrottle:
		return RequestThrottled
	}
	return ""
}
