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
	// Account, when set, is the account's quota that this snapshot
	// shares with every other fetch stack holding it: each attempt waits
	// for the account's turn, fairly by Name (the snapshot id). nil is no
	// account limit.
	Account *Account
	Name    string
}

// NewFetcher returns the fetch stack every reader of snap's blocks uses,
// built here and nowhere else. From the outside in: retries under
// snap.Policy, counted in snap.Stats, with refused block tokens refreshed
// by re-listing snap; o.MaxRate's spacing; the turn of o.Account; a slot
// of o.Limiter's window and its pacer's turn; and a verified
// GetSnapshotBlock (snap.Fetch).
//
// The order matters. The limits sit inside Retry so that every attempt,
// retries included, waits for its turns, and a throttled attempt tells
// the limiter before the backoff. The account's turn comes before the
// window's slot: an attempt waiting for the other snapshots' turns holds
// no slot, so the window and the round trip it measures see only this
// snapshot's requests, and the pacer sees attempts no faster than the
// account lets them come, so it does not climb while they wait
// elsewhere. MaxRate comes before the account, so that the account sees
// a capped snapshot's attempts only when they may go and gives its turns
// to the others meanwhile. A turn taken before the pacer's is spent a
// little early when the snapshot's own quota holds it back; its attempts
// then pile up at its own pacer, stop asking the account, and leave the
// account's turns to the others. The price of this order: an attempt
// whose account turn came may still wait for a slot, and while the
// window is what holds a snapshot back (slow start) such attempts leave
// together when slots free up, a clump a bucket's depth absorbs. The
// other order would hold slots, as many as the window has, idle while
// the other snapshots take their turns.
//
// What a throttle teaches whom: with an Account, a throttle on the
// account's quota (ACCOUNT_THROTTLED) is not this snapshot's doing. The
// window and pacer neither count it as a success nor learn from it (the
// successes between two such throttles are this snapshot's share of the
// account, not its quota, and a pacer that took them for its quota would
// stay there after the other snapshots finish); the account's turns
// already space every attempt, and Retry backs off. A throttle on the
// snapshot's quota (RESOURCE_LEVEL_THROTTLE), or one that names no
// reason (ThrottlingException), teaches the snapshot's limiter as
// before. Without an Account the limiter learns from every throttle: it
// is then the only thing that can slow down.
func NewFetcher(snap *Snapshot, o FetchOptions) Fetcher {
	var f Fetcher = snap
	if o.Limiter != nil {
		f = &limited{next: f, l: o.Limiter, notAccount: o.Account != nil}
	}
	if o.Account != nil {
		f = Share(f, o.Account, o.Name)
	}
	f = RateLimit(f, o.MaxRate)
	return Retry(f, snap.Policy, snap.Stats, &Relister{Snap: snap})
}
