package ebs

// FetchOptions chooses the layers of the fetch stack that NewFetcher
// builds. The zero value is verified fetches with retries only, for a
// caller that fetches one block at a time.
type FetchOptions struct {
	// Limiter bounds the requests in flight and shrinks on throttling
	// (see Limiter); nil leaves the concurrency limit out. The caller
	// keeps it to report its limit and in-flight count.
	Limiter *Limiter
	// MaxRate caps attempts per second; 0 (or less) is no cap.
	MaxRate float64
}

// NewFetcher returns the fetch stack every reader of snap's blocks uses,
// built here and nowhere else: each attempt is a verified
// GetSnapshotBlock (snap.Fetch), admitted by o.Limiter, then spaced by
// o.MaxRate; around them, retries under snap.Policy, counted in
// snap.Stats, with refused block tokens refreshed by re-listing snap.
//
// The order matters: the limits sit inside Retry so that every attempt,
// retries included, waits for a slot and is paced, and a throttled
// attempt tells the limiter before the backoff.
func NewFetcher(snap *Snapshot, o FetchOptions) Fetcher {
	var f Fetcher = snap
	if o.Limiter != nil {
		f = Limit(f, o.Limiter)
	}
	f = RateLimit(f, o.MaxRate)
	return Retry(f, snap.Policy, snap.Stats, &Relister{Snap: snap})
}
