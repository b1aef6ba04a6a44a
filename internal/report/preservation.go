package report

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"time"

	"github.com/ebsimager/ebsimager/internal/atomicfile"
)

// PreservationFormat names this version of the preservation record's
// schema (preservation.json, written by `ebsimager snapshot`).
const PreservationFormat = "ebsimager-preservation/1"

// File names Preservation.Save writes.
const (
	PreservationJSONName = "preservation.json"
	PreservationTextName = "preservation.txt"
)

// Preservation is the chain-of-custody record of the preservation step:
// who asked AWS for which snapshots, every call made and what it
// returned, and the snapshots that exist because of it (with their
// locks, shares and copies).
type Preservation struct {
	Format string `json:"format"`
	Run    Run    `json:"run"`
	Case   Case   `json:"case"`
	// Region and Endpoint are where the EC2 calls went (the copy Region's
	// calls name their own Region).
	Region         string          `json:"region"`
	Endpoint       string          `json:"endpoint"`
	CallerIdentity *CallerIdentity `json:"caller_identity,omitempty"`
	Targets        []string        `json:"targets"`
	Options        PreservedWith   `json:"options"`
	// Snapshots are the snapshots made (or, with use-latest, chosen), in
	// target order, as they were when the record was saved.
	Snapshots []PreservedSnapshot `json:"snapshots"`
	// Calls are every AWS request made, in order.
	Calls []APICall `json:"calls"`
	// Outcome is "ok" or "failed"; Error says why.
	Outcome string   `json:"outcome"`
	Error   string   `json:"error,omitempty"`
	Notes   []string `json:"notes"`
}

// PreservedWith are the options of the preservation step (never a
// secret: there is none among them).
type PreservedWith struct {
	// Mode is "snapshot" (snapshots made) or "use-latest" (the newest
	// completed snapshot of each volume chosen).
	Mode           string   `json:"mode"`
	ExcludeBoot    bool     `json:"exclude_boot"`
	Devices        []string `json:"devices"`
	Wait           bool     `json:"wait"`
	TimeoutSeconds float64  `json:"timeout_seconds"`
	Tags           []Tag    `json:"tags"`
	// Lock is "", "governance" or "compliance".
	Lock         string   `json:"lock,omitempty"`
	LockDays     int      `json:"lock_days,omitempty"`
	CoolOffHours int      `json:"cool_off_hours,omitempty"`
	ShareWith    []string `json:"share_with"`
	Copy         bool     `json:"copy"`
	KMSKey       string   `json:"kms_key,omitempty"`
	CopyRegion   string   `json:"copy_region,omitempty"`
}

// PreservedSnapshot is one snapshot of the preservation step.
type PreservedSnapshot struct {
	// InstanceID and Device are empty for a volume attached to no
	// instance.
	InstanceID string    `json:"instance_id,omitempty"`
	Device     string    `json:"device,omitempty"`
	VolumeID   string    `json:"volume_id"`
	SnapshotID string    `json:"snapshot_id"`
	Region     string    `json:"region"`
	State      string    `json:"state"`
	Progress   string    `json:"progress"`
	StartTime  time.Time `json:"start_time,omitzero"`
	Encrypted  bool      `json:"encrypted"`
	KMSKeyID   string    `json:"kms_key_id,omitempty"`
	Tags       []Tag     `json:"tags"`
	// Lock is the lock LockSnapshot returned; nil when not locked (or
	// locked on the copy instead).
	Lock *SnapshotLock `json:"lock,omitempty"`
	// Shares are the accounts DescribeSnapshotAttribute lists as allowed
	// to create volumes from the snapshot, after sharing.
	Shares []string       `json:"shares"`
	Copies []SnapshotCopy `json:"copies"`
	// Acquire is the snapshot to acquire: the copy when one was made in
	// the same Region, else this one.
	Acquire string `json:"acquire"`
}

// SnapshotCopy is a copy of a preserved snapshot (CopySnapshot).
type SnapshotCopy struct {
	SnapshotID string        `json:"snapshot_id"`
	Region     string        `json:"region"`
	KMSKeyID   string        `json:"kms_key_id"`
	State      string        `json:"state"`
	Progress   string        `json:"progress"`
	Lock       *SnapshotLock `json:"lock,omitempty"`
	Shares     []string      `json:"shares"`
}

// SnapshotLock is LockSnapshot's answer.
type SnapshotLock struct {
	// Mode is what was asked; State what EC2 answered (governance,
	// compliance-cooloff, compliance, expired).
	Mode             string    `json:"mode"`
	State            string    `json:"state"`
	DurationDays     int       `json:"duration_days"`
	CoolOffHours     int       `json:"cool_off_hours,omitempty"`
	LockedAt         time.Time `json:"locked_at,omitzero"`
	CoolOffExpiresOn time.Time `json:"cool_off_expires_on,omitzero"`
	ExpiresOn        time.Time `json:"expires_on,omitzero"`
}

// APICall is one AWS request of the preservation step: Call (api,
// outcome, code, error, attempts) with where, when and what it returned.
type APICall struct {
	Call
	Region string `json:"region"`
	// RequestID is the last attempt's AWS request id (the response's, or
	// the error's); empty when no answer came.
	RequestID       string    `json:"request_id,omitempty"`
	StartedAt       time.Time `json:"started_at"`
	DurationSeconds float64   `json:"duration_seconds"`
	// Request names what was asked (ids, options); Returned sums up the
	// answer (ids, states), both bounded in length.
	Request  string `json:"request,omitempty"`
	Returned string `json:"returned,omitempty"`
}

// NewPreservation starts the record of a preservation run by t from
// started.
func NewPreservation(t Tool, started time.Time) *Preservation {
	return &Preservation{Format: PreservationFormat, Run: NewRun(t.Version, t.CommandLine, started)}
}

func (r *Preservation) derive() {
	r.Format = PreservationFormat
	nonNil(&r.Run.CommandLine, &r.Targets, &r.Notes, &r.Options.Devices, &r.Options.ShareWith)
	if r.Options.Tags == nil {
		r.Options.Tags = []Tag{}
	}
	if r.Snapshots == nil {
		r.Snapshots = []PreservedSnapshot{}
	}
	for i := range r.Snapshots {
		s := &r.Snapshots[i]
		nonNil(&s.Shares)
		if s.Tags == nil {
			s.Tags = []Tag{}
		}
		if s.Copies == nil {
			s.Copies = []SnapshotCopy{}
		}
		for j := range s.Copies {
			nonNil(&s.Copies[j].Shares)
		}
	}
	if r.Calls == nil {
		r.Calls = []APICall{}
	}
	r.Run.StartedAt, r.Run.FinishedAt = r.Run.StartedAt.UTC(), r.Run.FinishedAt.UTC()
}

func nonNil(lists ...*[]string) {
	for _, p := range lists {
		if *p == nil {
			*p = []string{}
		}
	}
}

// JSON returns preservation.json.
func (r *Preservation) JSON() ([]byte, error) {
	r.derive()
	return indented(r, "preservation record")
}

// Save writes preservation.txt and preservation.json into dir, each
// atomically, preservation.json last.
func (r *Preservation) Save(dir string) error {
	js, err := r.JSON()
	if err != nil {
		return err
	}
	var txt bytes.Buffer
	if err := r.Text(&txt); err != nil {
		return err
	}
	for _, f := range []struct {
		name string
		data []byte
	}{{PreservationTextName, txt.Bytes()}, {PreservationJSONName, js}} {
		if err := atomicfile.WriteBytes(filepath.Join(dir, f.name), f.data); err != nil {
			return fmt.Errorf("saving preservation record: %w", err)
		}
	}
	return nil
}

// Text writes preservation.txt.
func (r *Preservation) Text(w io.Writer) error {
	r.derive()
	bw := bufio.NewWriter(w)
	t := &textWriter{w: bw}
	t.line("ebsimager preservation record (%s)", r.Format)
	t.blank()
	t.section("Run")
	t.run(r.Run)
	t.field("Outcome", r.Outcome)
	if r.Error != "" {
		t.field("Error", r.Error)
	}
	t.rule()
	t.section("Case")
	t.field("Case number", orNone(r.Case.CaseNumber))
	t.field("Evidence number", orNone(r.Case.EvidenceNumber))
	t.field("Examiner", orNone(r.Case.Examiner))
	t.field("Description", orNone(r.Case.Description))
	t.field("Notes", orNone(r.Case.Notes))
	t.rule()
	t.section("AWS")
	t.field("Region", r.Region)
	t.field("Endpoint", r.Endpoint)
	if id := r.CallerIdentity; id != nil {
		t.field("Caller", fmt.Sprintf("%s (account %s, user id %s)", id.ARN, id.Account, id.UserID))
	} else {
		t.field("Caller", "(GetCallerIdentity gave no answer: see the calls)")
	}
	t.field("Targets", strings.Join(r.Targets, " "))
	t.field("Options", optionsText(r.Options))
	t.rule()
	t.section(fmt.Sprintf("Snapshots (%d)", len(r.Snapshots)))
	for _, s := range r.Snapshots {
		t.line("%s of %s", s.SnapshotID, volumeText(s))
		t.field("State", fmt.Sprintf("%s %s", s.State, s.Progress))
		t.field("Started", timeText(s.StartTime))
		t.field("Encrypted", encryptionText(s.Encrypted, s.KMSKeyID))
		t.field("Lock", lockText(s.Lock))
		t.field("Shared with", listText(s.Shares))
		for _, c := range s.Copies {
			t.field("Copy", fmt.Sprintf("%s in %s under %s: %s %s", c.SnapshotID, c.Region, c.KMSKeyID, c.State, c.Progress))
			t.field("  lock", lockText(c.Lock))
			t.field("  shared with", listText(c.Shares))
		}
		t.field("Acquire", s.Acquire)
		for _, tag := range s.Tags {
			t.field("Tag", tag.Key+" = "+tag.Value)
		}
	}
	t.rule()
	t.section(fmt.Sprintf("Calls (%d)", len(r.Calls)))
	for i, c := range r.Calls {
		t.line("%d. %s %s in %s, %s, request id %s", i+1, timeText(c.StartedAt), c.API, c.Region,
			durationText(c.DurationSeconds), orNone(c.RequestID))
		t.field("Asked", orNone(c.Request))
		t.field("Outcome", callText(&c.Call))
		if c.Returned != "" {
			t.field("Returned", c.Returned)
		}
	}
	if len(r.Notes) > 0 {
		t.rule()
		t.section("Notes")
		for _, n := range r.Notes {
			t.wrapped("  - ", "    ", n)
		}
	}
	return bw.Flush()
}

func volumeText(s PreservedSnapshot) string {
	v := s.VolumeID
	if s.InstanceID != "" {
		v += fmt.Sprintf(" (%s %s)", s.InstanceID, s.Device)
	}
	return v + " in " + s.Region
}

func optionsText(o PreservedWith) string {
	parts := []string{o.Mode}
	if o.ExcludeBoot {
		parts = append(parts, "exclude boot volume")
	}
	if len(o.Devices) > 0 {
		parts = append(parts, "devices "+strings.Join(o.Devices, " "))
	}
	if o.Mode == "snapshot" {
		if o.Wait {
			parts = append(parts, "wait up to "+durationText(o.TimeoutSeconds))
		} else {
			parts = append(parts, "no wait")
		}
	}
	for _, t := range o.Tags {
		parts = append(parts, "tag "+t.Key+"="+t.Value)
	}
	if o.Lock != "" {
		l := fmt.Sprintf("lock %s %d days", o.Lock, o.LockDays)
		if o.CoolOffHours > 0 {
			l += fmt.Sprintf(" (cool-off %d hours)", o.CoolOffHours)
		}
		parts = append(parts, l)
	}
	if len(o.ShareWith) > 0 {
		parts = append(parts, "share with "+strings.Join(o.ShareWith, " "))
	}
	if o.Copy {
		parts = append(parts, "copy to "+o.CopyRegion+" under "+o.KMSKey)
	}
	return strings.Join(parts, "; ")
}

func encryptionText(encrypted bool, key string) string {
	if !encrypted {
		return "no"
	}
	return "yes, KMS key " + orNone(key)
}

func lockText(l *SnapshotLock) string {
	if l == nil {
		return "(none)"
	}
	s := fmt.Sprintf("%s (asked %s, %d days", l.State, l.Mode, l.DurationDays)
	if l.CoolOffHours > 0 {
		s += fmt.Sprintf(", cool-off %d hours until %s", l.CoolOffHours, timeText(l.CoolOffExpiresOn))
	}
	return s + "), expires " + timeText(l.ExpiresOn)
}

func listText(l []string) string {
	if len(l) == 0 {
		return "(none)"
	}
	return strings.Join(l, " ")
}
