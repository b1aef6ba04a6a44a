package preserve

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/ebsimager/ebsimager/internal/report"
)

// Lock modes of EBS Snapshot Lock.
const (
	LockGovernance = "governance"
	LockCompliance = "compliance"
)

// Limits EC2 sets, checked before any call.
const (
	MaxLockDays     = 36500 // LockSnapshot LockDuration: 1 to 36500 days
	MaxCoolOffHours = 72    // LockSnapshot CoolOffPeriod: 1 to 72 hours
	maxTagKey       = 128   // EC2 tag keys: at most 128 characters
	maxTagValue     = 256   // EC2 tag values: at most 256 characters
	maxTags         = 50    // EC2: at most 50 tags on a resource
	maxDescription  = 255   // CreateSnapshot(s) Description: at most 255 characters
	// MaxTargets bounds the targets of one run: one DescribeInstances and
	// one DescribeVolumes ask for them all, and EC2 answers a few hundred
	// ids at once.
	MaxTargets = 100
	// DefaultTimeout bounds --wait: a first snapshot of a large busy
	// volume can take hours, but a responder wants to hear well before.
	DefaultTimeout = 30 * time.Minute
)

// Options say what to preserve and how.
type Options struct {
	// Case fields: tagged on every snapshot and named in its Description
	// (case number, evidence number, examiner) and recorded.
	Case report.Case
	// Tags are more tags (--tag K=V) for every snapshot.
	Tags []report.Tag
	// Tool is the program's version and command line, for the tags and
	// the record.
	Tool report.Tool
	// ExcludeBoot leaves an instance's root volume out; Devices, when
	// set, narrows an instance's volumes to these device names.
	ExcludeBoot bool
	Devices     []string
	// Wait waits until every snapshot is completed, at most Timeout
	// (default DefaultTimeout) from the start of the run, polling after
	// 1s, 2s, 4s, then every PollInterval (default 5s).
	Wait         bool
	Timeout      time.Duration
	PollInterval time.Duration
	// Lock is "", LockGovernance or LockCompliance, for LockDays days
	// (1 to MaxLockDays), with a cooling-off period of CoolOffHours
	// (compliance only; 0 for none).
	Lock         string
	LockDays     int
	CoolOffHours int
	// ShareWith are 12-digit AWS account ids given createVolumePermission.
	ShareWith []string
	// Copy copies each snapshot, encrypted under KMSKey, into CopyRegion
	// (default the configuration's Region); the copy is the one locked
	// and shared.
	Copy       bool
	KMSKey     string
	CopyRegion string
	// Progress, if set, is called as the snapshots advance.
	Progress func(Progress)
	// Checkpoint, if set, is called after every request with the record
	// so far (Outcome OutcomeRunning), to save it: a run killed outright
	// still leaves the record of the snapshots it made. An error stops
	// the run once what the request made is recorded (locks already
	// asked for are still made: they protect the evidence).
	Checkpoint func(*report.Preservation) error
}

// OutcomeRunning is the outcome of a record saved by Checkpoint.
const OutcomeRunning = "running"

// Progress is a view of the snapshots being waited on.
type Progress struct {
	// Stage is "snapshots" (waiting for the originals) or "copies".
	Stage   string
	Pending []Snapshot // those not completed yet
	Done    int        // completed so far
	Total   int
	Elapsed time.Duration
}

var (
	instanceID = regexp.MustCompile(`^i-([0-9a-f]{8}|[0-9a-f]{17})$`)
	volumeID   = regexp.MustCompile(`^vol-([0-9a-f]{8}|[0-9a-f]{17})$`)
	accountID  = regexp.MustCompile(`^[0-9]{12}$`)
	deviceName = regexp.MustCompile(`^/dev/[a-z0-9]{1,32}$`)
	regionName = regexp.MustCompile(`^[a-z]{2}(-[a-z]+)+-[0-9]{1,2}$`)
)

// TagPrefix starts the keys of the tags this package writes.
const TagPrefix = "ebsimager:"

// CheckTargets refuses a target that is neither an instance id (i-…) nor
// a volume id (vol-…), or one given twice.
func CheckTargets(targets []string) error {
	if len(targets) == 0 {
		return invalidf("", "no target: give an instance (i-…) or a volume (vol-…)")
	}
	if len(targets) > MaxTargets {
		return invalidf("", "%d targets: at most %d in one run", len(targets), MaxTargets)
	}
	seen := map[string]bool{}
	for _, t := range targets {
		if !instanceID.MatchString(t) && !volumeID.MatchString(t) {
			return invalidf(t, "invalid target %q: want an instance id (i- and 8 or 17 lowercase hex digits) or a volume id (vol- and 8 or 17)", t)
		}
		if seen[t] {
			return invalidf(t, "target %s given twice", t)
		}
		seen[t] = true
	}
	return nil
}

// Check refuses options EC2 would refuse, or that contradict each other,
// before any call is made.
func (o *Options) Check() error {
	for _, f := range []struct{ name, v string }{
		{"case number", o.Case.CaseNumber}, {"evidence number", o.Case.EvidenceNumber}, {"examiner", o.Case.Examiner},
	} {
		if err := checkTagValue(f.name, f.v); err != nil {
			return err
		}
	}
	seen := map[string]bool{}
	for _, t := range o.Tags {
		if err := CheckTag(t); err != nil {
			return err
		}
		if seen[t.Key] {
			return invalidf("", "tag %q given twice", t.Key)
		}
		seen[t.Key] = true
	}
	if n := len(o.Tags) + 9; n > maxTags { // at most nine of the tool's own
		return invalidf("", "%d tags: EC2 allows %d on a snapshot and ebsimager writes up to 9 of its own", n-9, maxTags)
	}
	for _, d := range o.Devices {
		if !deviceName.MatchString(d) {
			return invalidf("", "invalid device %q: want a device name such as /dev/xvdf or /dev/sda1", d)
		}
	}
	if o.Timeout < 0 || o.PollInterval < 0 {
		return invalidf("", "the timeout and the poll interval must not be negative")
	}
	if err := o.checkLock(); err != nil {
		return err
	}
	for _, a := range o.ShareWith {
		if !accountID.MatchString(a) {
			return invalidf("", "invalid account %q to share with: want 12 digits", a)
		}
	}
	if !o.Wait && (o.Lock != "" || len(o.ShareWith) > 0 || o.Copy) {
		return invalidf("", "locking, sharing and copying need completed snapshots: drop --no-wait")
	}
	if o.Copy != (o.KMSKey != "") {
		return invalidf("", "--copy and --kms-key go together: the copy is encrypted under the customer managed key given")
	}
	if o.KMSKey != "" && AWSManagedKey(o.KMSKey) {
		return invalidf("", "--kms-key %s is an AWS managed key: a snapshot encrypted under it cannot be shared; give a customer managed key", o.KMSKey)
	}
	if o.KMSKey != "" && (len(o.KMSKey) > 2048 || strings.ContainsAny(o.KMSKey, " \t\n")) {
		return invalidf("", "invalid --kms-key %q: want a key id, key ARN, alias name or alias ARN", o.KMSKey)
	}
	if o.CopyRegion != "" && !o.Copy {
		return invalidf("", "--copy-region applies to --copy")
	}
	if o.CopyRegion != "" && !regionName.MatchString(o.CopyRegion) {
		return invalidf("", "invalid --copy-region %q: want a Region name such as eu-west-1", o.CopyRegion)
	}
	return nil
}

func (o *Options) checkLock() error {
	switch o.Lock {
	case "":
		if o.LockDays != 0 || o.CoolOffHours != 0 {
			return invalidf("", "--lock-duration and --cool-off apply to --lock")
		}
		return nil
	case LockGovernance, LockCompliance:
	default:
		return invalidf("", "invalid lock mode %q: want governance or compliance", o.Lock)
	}
	if o.LockDays < 1 || o.LockDays > MaxLockDays {
		return invalidf("", "--lock needs --lock-duration of 1 to %d days (got %d)", MaxLockDays, o.LockDays)
	}
	if o.CoolOffHours != 0 && o.Lock != LockCompliance {
		return invalidf("", "--cool-off applies to a compliance lock only")
	}
	if o.CoolOffHours < 0 || o.CoolOffHours > MaxCoolOffHours {
		return invalidf("", "--cool-off must be 1 to %d hours (got %d)", MaxCoolOffHours, o.CoolOffHours)
	}
	return nil
}

// CheckTag refuses a tag EC2 would refuse, or one in the tool's own
// namespace.
func CheckTag(t report.Tag) error {
	switch {
	case t.Key == "":
		return invalidf("", "a tag needs a key (K=V)")
	case len(t.Key) > maxTagKey:
		return invalidf("", "tag key %.20q… is %d characters: EC2 allows %d", t.Key, len(t.Key), maxTagKey)
	case strings.HasPrefix(strings.ToLower(t.Key), "aws:"):
		return invalidf("", "tag key %q: the aws: prefix is reserved for AWS", t.Key)
	case strings.HasPrefix(t.Key, TagPrefix):
		return invalidf("", "tag key %q: the %s prefix is ebsimager's own", t.Key, TagPrefix)
	}
	return checkTagValue("tag "+t.Key, t.Value)
}

func checkTagValue(what, v string) error {
	if len(v) > maxTagValue {
		return invalidf("", "%s is %d characters: an EC2 tag value holds at most %d", what, len(v), maxTagValue)
	}
	return nil
}

// ParseTag reads K=V.
func ParseTag(s string) (report.Tag, error) {
	k, v, ok := strings.Cut(s, "=")
	if !ok {
		return report.Tag{}, invalidf("", "invalid tag %q: want KEY=VALUE", s)
	}
	t := report.Tag{Key: k, Value: v}
	return t, CheckTag(t)
}

// ParseDays reads a lock duration: whole days, written 30d, 30 or 720h.
func ParseDays(s string) (int, error) {
	n, err := parseUnits(s, "days", 24)
	if err != nil {
		return 0, invalidf("", "invalid duration %q: want whole days such as 30d or 720h", s)
	}
	return n, nil
}

// ParseHours reads a cooling-off period: whole hours, written 24h, 24 or
// 1d.
func ParseHours(s string) (int, error) {
	n, err := parseUnits(s, "hours", 1)
	if err != nil {
		return 0, invalidf("", "invalid duration %q: want whole hours such as 24h or 1d", s)
	}
	return n, nil
}

// parseUnits reads a whole number of units of unitHours hours each: N
// (units), Nd (days), or a Go duration such as 720h.
func parseUnits(s, unit string, unitHours int) (int, error) {
	var hours int64
	switch {
	case strings.HasSuffix(s, "d") && !strings.HasSuffix(s, "ms"):
		n, err := strconv.ParseInt(strings.TrimSuffix(s, "d"), 10, 32)
		if err != nil {
			return 0, err
		}
		hours = n * 24
	case strings.TrimLeft(s, "0123456789") == "" && s != "":
		n, err := strconv.ParseInt(s, 10, 32)
		if err != nil {
			return 0, err
		}
		hours = n * int64(unitHours)
	default:
		d, err := time.ParseDuration(s)
		if err != nil {
			return 0, err
		}
		if d%time.Hour != 0 {
			return 0, fmt.Errorf("not whole hours")
		}
		hours = int64(d / time.Hour)
	}
	if hours < 0 || hours%int64(unitHours) != 0 || hours/int64(unitHours) > 1<<30 {
		return 0, fmt.Errorf("not whole %s", unit)
	}
	return int(hours / int64(unitHours)), nil
}

// AWSManagedKey reports whether a KMS key reference visibly names an AWS
// managed key (alias/aws/ebs, or its alias ARN): snapshots encrypted
// under one cannot be shared. A key ARN does not show who manages the
// key; EC2's refusal says it then.
func AWSManagedKey(key string) bool {
	return strings.HasPrefix(key, "alias/aws/") || strings.Contains(key, ":alias/aws/")
}

// tags are the tags of every snapshot of one target (device and volume
// are added per snapshot).
func (o *Options) tags(created time.Time, instance string) []report.Tag {
	var t []report.Tag
	add := func(k, v string) {
		if v != "" {
			t = append(t, report.Tag{Key: TagPrefix + k, Value: v})
		}
	}
	add("case-number", o.Case.CaseNumber)
	add("evidence-number", o.Case.EvidenceNumber)
	add("examiner", o.Case.Examiner)
	add("tool", strings.TrimSpace("ebsimager "+o.Tool.Version))
	add("created", created.UTC().Format(time.RFC3339))
	add("instance", instance)
	return append(t, o.Tags...)
}

// deviceTags are the tags that name one snapshot's device and volume.
func deviceTags(device, volume string) []report.Tag {
	t := []report.Tag{{Key: TagPrefix + "volume", Value: volume}}
	if device != "" {
		t = append([]report.Tag{{Key: TagPrefix + "device", Value: device}}, t...)
	}
	return t
}

// description names the case and what was snapshotted, within EC2's 255
// characters.
func (o *Options) description(what string) string {
	c := "no case number"
	if o.Case.CaseNumber != "" {
		c = "case " + o.Case.CaseNumber
	}
	if o.Case.EvidenceNumber != "" {
		c += ", evidence " + o.Case.EvidenceNumber
	}
	d := fmt.Sprintf("ebsimager preservation, %s: %s", c, what)
	if len(d) > maxDescription {
		cut := maxDescription - 3
		for cut > 0 && !utf8.RuneStart(d[cut]) {
			cut--
		}
		d = d[:cut] + "..."
	}
	return d
}

// record is what the options look like in the record.
func (o *Options) record(mode, region string, timeout time.Duration) report.PreservedWith {
	copyRegion := ""
	if o.Copy {
		copyRegion = o.copyRegion(region)
	}
	return report.PreservedWith{
		Mode: mode, ExcludeBoot: o.ExcludeBoot, Devices: slices.Clone(o.Devices), Wait: o.Wait,
		TimeoutSeconds: timeout.Seconds(), Tags: slices.Clone(o.Tags),
		Lock: o.Lock, LockDays: o.LockDays, CoolOffHours: o.CoolOffHours,
		ShareWith: slices.Clone(o.ShareWith), Copy: o.Copy, KMSKey: o.KMSKey, CopyRegion: copyRegion,
	}
}

func (o *Options) copyRegion(region string) string {
	if o.CopyRegion != "" {
		return o.CopyRegion
	}
	return region
}
