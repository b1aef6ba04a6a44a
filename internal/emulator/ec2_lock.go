package emulator

import (
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// snapLock is a snapshot's EBS Snapshot Lock.
type snapLock struct {
	mode      string    // governance or compliance
	created   time.Time // lockCreatedOn: the first lock
	started   time.Time // lockDurationStartTime: the last LockSnapshot
	expires   time.Time // lockExpiresOn
	duration  int       // days, 0 when set by ExpirationDate
	coolOff   int       // hours, compliance only
	coolUntil time.Time // coolOffPeriodExpiresOn
}

// Lock modes and states, as EC2 names them.
const (
	lockGovernance        = "governance"
	lockCompliance        = "compliance"
	lockComplianceCooloff = "compliance-cooloff"
	lockExpired           = "expired"
)

// LockSnapshot bounds, from the EC2 API reference.
const (
	minLockDays    = 1
	maxLockDays    = 36500
	minCoolOffHour = 1
	maxCoolOffHour = 72
)

// state returns the lock's state at now.
func (l *snapLock) state(now time.Time) string {
	switch {
	case !now.Before(l.expires):
		return lockExpired
	case l.mode == lockCompliance && now.Before(l.coolUntil):
		return lockComplianceCooloff
	}
	return l.mode
}

// lockInfo is the shape LockSnapshot answers and DescribeLockedSnapshots
// lists.
type lockInfo struct {
	OwnerID        string `xml:"ownerId,omitempty"`
	SnapshotID     string `xml:"snapshotId"`
	LockState      string `xml:"lockState"`
	LockDuration   int    `xml:"lockDuration,omitempty"`
	CoolOffPeriod  int    `xml:"coolOffPeriod,omitempty"`
	CoolOffExpires string `xml:"coolOffPeriodExpiresOn,omitempty"`
	LockCreatedOn  string `xml:"lockCreatedOn"`
	LockStart      string `xml:"lockDurationStartTime"`
	LockExpiresOn  string `xml:"lockExpiresOn"`
}

func (l *snapLock) info(id string, now time.Time) lockInfo {
	it := lockInfo{SnapshotID: id, LockState: l.state(now), LockDuration: l.duration,
		LockCreatedOn: l.created.UTC().Format(ec2Time), LockStart: l.started.UTC().Format(ec2Time),
		LockExpiresOn: l.expires.UTC().Format(ec2Time)}
	if l.mode == lockCompliance && l.coolOff > 0 {
		it.CoolOffPeriod = l.coolOff
		it.CoolOffExpires = l.coolUntil.UTC().Format(ec2Time)
	}
	return it
}

type lockSnapshotResponse struct {
	RequestID string `xml:"requestId"`
	lockInfo
}

type describeLockedSnapshotsResponse struct {
	RequestID string     `xml:"requestId"`
	Snapshots []lockInfo `xml:"snapshotSet>item"`
	NextToken string     `xml:"nextToken,omitempty"`
}

// intParam reads a whole-number parameter within [lo, hi].
func (p params) intParam(key string, lo, hi int) (int, *queryError) {
	v := p.get(key)
	n, err := strconv.Atoi(v)
	if err != nil || n < lo || n > hi {
		return 0, invalidValue(v, key, fmt.Sprintf("Expecting a value between %d and %d.", lo, hi))
	}
	return n, nil
}

func (s *Server) lockSnapshot(form url.Values, reqID, _ string) ([]byte, *queryError) {
	p, qe := readParams(form, "SnapshotId", "LockMode", "CoolOffPeriod", "LockDuration", "ExpirationDate", "DryRun")
	if qe != nil {
		return nil, qe
	}
	if qe := p.require("SnapshotId", "LockMode"); qe != nil {
		return nil, qe
	}
	mode := p.get("LockMode")
	if mode != lockGovernance && mode != lockCompliance {
		return nil, invalidValue(mode, "LockMode", "Expected: 'governance' or 'compliance'.")
	}
	now := s.now()
	want := snapLock{mode: mode, started: now}
	switch {
	case p.has("LockDuration") && p.has("ExpirationDate"):
		return nil, &queryError{http.StatusBadRequest, "InvalidParameterCombination",
			"The parameters LockDuration and ExpirationDate cannot be used together."}
	case p.has("LockDuration"):
		d, qe := p.intParam("LockDuration", minLockDays, maxLockDays)
		if qe != nil {
			return nil, qe
		}
		want.duration, want.expires = d, now.Add(time.Duration(d)*24*time.Hour)
	case p.has("ExpirationDate"):
		v := p.get("ExpirationDate")
		t, err := time.Parse(time.RFC3339, v)
		if err != nil {
			return nil, invalidValue(v, "ExpirationDate", "Expected an ISO 8601 timestamp.")
		}
		if !t.After(now.Add(24*time.Hour)) || t.After(now.Add(maxLockDays*24*time.Hour)) {
			return nil, invalidValue(v, "ExpirationDate", "The expiration date must be at least 1 day and at most 100 years in the future.")
		}
		want.expires = t.UTC()
	default:
		return nil, &queryError{http.StatusBadRequest, "MissingParameter",
			"The request must contain either the parameter LockDuration or the parameter ExpirationDate"}
	}
	if p.has("CoolOffPeriod") {
		if mode != lockCompliance {
			return nil, &queryError{http.StatusBadRequest, "InvalidParameterCombination",
				"The parameter CoolOffPeriod can be used only with the compliance lock mode."}
		}
		h, qe := p.intParam("CoolOffPeriod", minCoolOffHour, maxCoolOffHour)
		if qe != nil {
			return nil, qe
		}
		want.coolOff, want.coolUntil = h, now.Add(time.Duration(h)*time.Hour)
	}
	snap, qe := s.permitSnapshot(OpLockSnapshot, p, "SnapshotId")
	if qe != nil {
		return nil, qe
	}
	// EC2 locks snapshots that are pending or completed.
	if st, _ := s.status(snap); st == stateError {
		return nil, incorrectState(st)
	}
	s.ec2mu.Lock()
	defer s.ec2mu.Unlock()
	if old := snap.lock; old != nil {
		switch old.state(now) {
		case lockCompliance:
			// A compliance lock past its cool-off can only be lengthened.
			if mode != lockCompliance || want.expires.Before(old.expires) {
				return nil, &queryError{http.StatusBadRequest, "IncorrectState", fmt.Sprintf(
					"The snapshot '%s' is locked in compliance mode: its lock duration can only be increased.", snap.id)}
			}
			want.coolOff, want.coolUntil = old.coolOff, old.coolUntil
			fallthrough
		case lockGovernance, lockComplianceCooloff:
			want.created = old.created
		}
	}
	if want.created.IsZero() {
		want.created = now
	}
	l := want
	snap.lock = &l
	return answer(OpLockSnapshot, lockSnapshotResponse{RequestID: reqID, lockInfo: l.info(snap.id, now)}), nil
}

// incorrectState is EC2's error for an action on a snapshot in a state
// that does not allow it, in the words EC2 uses.
func incorrectState(state string) *queryError {
	return &queryError{http.StatusBadRequest, "IncorrectState", "Snapshot is in invalid state - " + state}
}

func (s *Server) describeLockedSnapshots(form url.Values, reqID, _ string) ([]byte, *queryError) {
	a, qe := s.readList(form, OpDescribeLockedSnapshots, lockedIDs, func(n string) bool { return n == "lock-state" })
	if qe != nil {
		return nil, qe
	}
	var snaps []*snapshot
	for _, id := range a.ids {
		snap, qe := s.ec2Snapshot(id)
		if qe != nil {
			return nil, qe
		}
		snaps = append(snaps, snap)
	}
	if len(a.ids) == 0 {
		snaps = s.reg.sorted()
	}
	now, owner := s.now(), s.identity().Account
	var kept []lockInfo
	s.ec2mu.Lock()
	for _, snap := range snaps {
		if snap.lock == nil {
			continue
		}
		it := snap.lock.info(snap.id, now)
		it.OwnerID = owner
		if keepAll(a.filters, func(_, pat string) bool { return wildcard(pat, it.LockState) }) {
			kept = append(kept, it)
		}
	}
	s.ec2mu.Unlock()
	resp := describeLockedSnapshotsResponse{RequestID: reqID}
	resp.Snapshots, resp.NextToken = pageOf(kept, func(it lockInfo) string { return it.SnapshotID }, a.max, a.after)
	return answer(OpDescribeLockedSnapshots, resp), nil
}

type returnResponse struct {
	RequestID string `xml:"requestId"`
	Return    bool   `xml:"return"`
}

// returnTrue is the answer of actions that only say they succeeded.
func returnTrue(action, reqID string) []byte {
	return answer(action, returnResponse{RequestID: reqID, Return: true})
}

// deleteSnapshot deletes a snapshot that is not locked.
func (s *Server) deleteSnapshot(form url.Values, reqID, _ string) ([]byte, *queryError) {
	p, qe := readParams(form, "SnapshotId", "DryRun")
	if qe != nil {
		return nil, qe
	}
	if !p.has("SnapshotId") {
		return nil, missing("SnapshotId")
	}
	snap, qe := s.permitSnapshot(OpDeleteSnapshot, p, "SnapshotId")
	if qe != nil {
		return nil, qe
	}
	s.ec2mu.Lock()
	defer s.ec2mu.Unlock()
	if l := snap.lock; l != nil {
		if st := l.state(s.now()); st != lockExpired {
			return nil, &queryError{http.StatusBadRequest, "SnapshotLocked", fmt.Sprintf(
				"The snapshot '%s' is locked in %s mode until %s and cannot be deleted.", snap.id, st, l.expires.UTC().Format(ec2Time))}
		}
	}
	// A volume's next snapshot still descends from it, as in EC2, where
	// deleting a snapshot keeps the blocks its children need.
	s.reg.mu.Lock()
	delete(s.reg.snaps, snap.id)
	s.reg.mu.Unlock()
	return returnTrue(OpDeleteSnapshot, reqID), nil
}
