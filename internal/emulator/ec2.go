package emulator

import (
	"encoding/base64"
	"encoding/xml"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ebsimager/ebsimager/internal/block"
)

// SnapshotMeta is what EC2 DescribeSnapshots reports about a snapshot
// beyond what the EBS direct APIs know. A zero field takes its default.
type SnapshotMeta struct {
	// VolumeID defaults to "vol-0" and 16 hex digits hashed from the
	// snapshot id.
	VolumeID string
	// OwnerID defaults to the caller's account (Identity.Account).
	OwnerID string
	// StartTime defaults to DefaultStartTime, or for a snapshot made with
	// StartSnapshot to when it was started.
	StartTime time.Time
	// Encrypted is implied by KMSKeyID. Snapshots made with StartSnapshot
	// default to what it was asked.
	Encrypted bool
	// KMSKeyID is the ARN of the snapshot's KMS key.
	KMSKeyID    string
	Description string
	Tags        []Tag
	// StorageTier is "standard" (the default) or "archive".
	StorageTier string
	// Public makes the snapshot's createVolumePermission include the
	// group "all".
	Public bool
	// OutpostARN marks a local snapshot on an Outpost.
	OutpostARN string
	// State is "completed" (the default), "pending" or "error".
	State string
}

// Tag is one snapshot tag.
type Tag struct {
	Key   string
	Value string
}

// DefaultStartTime is the StartTime of snapshots not made with
// StartSnapshot that have none set: a fixed instant, so reports are
// repeatable.
var DefaultStartTime = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)

// ParseSnapshotMeta reads "snap-ID:FIELD=VALUE" into m, for the emulate
// command. FIELD is volume-id, owner, start-time (RFC 3339), encrypted
// (true or false), kms-key, description, tag:KEY (repeatable),
// storage-tier (standard or archive), public (true or false), outpost-arn
// or state (completed, pending or error).
func ParseSnapshotMeta(spec string, m map[string]SnapshotMeta) error {
	id, rest, ok := strings.Cut(spec, ":")
	field, value, ok2 := strings.Cut(rest, "=")
	if !ok || !ok2 {
		return fmt.Errorf("snapshot metadata %q: want snap-ID:FIELD=VALUE", spec)
	}
	if err := block.CheckSnapshotID(id); err != nil {
		return fmt.Errorf("snapshot metadata %q: %w", spec, err)
	}
	sm := m[id]
	switch {
	case field == "volume-id":
		sm.VolumeID = value
	case field == "owner":
		sm.OwnerID = value
	case field == "start-time":
		t, err := time.Parse(time.RFC3339, value)
		if err != nil {
			return fmt.Errorf("snapshot metadata %q: start-time: want RFC 3339, like 2024-05-01T12:00:00Z", spec)
		}
		sm.StartTime = t.UTC()
	case field == "encrypted":
		b, ok := parseBool(value)
		if !ok {
			return fmt.Errorf("snapshot metadata %q: encrypted: want true or false", spec)
		}
		sm.Encrypted = b
	case field == "kms-key":
		sm.KMSKeyID = value
	case field == "description":
		sm.Description = value
	case strings.HasPrefix(field, "tag:") && len(field) > len("tag:"):
		sm.Tags = append(sm.Tags, Tag{Key: strings.TrimPrefix(field, "tag:"), Value: value})
	case field == "storage-tier":
		if value != tierStandard && value != tierArchive {
			return fmt.Errorf("snapshot metadata %q: storage-tier: want standard or archive", spec)
		}
		sm.StorageTier = value
	case field == "public":
		b, ok := parseBool(value)
		if !ok {
			return fmt.Errorf("snapshot metadata %q: public: want true or false", spec)
		}
		sm.Public = b
	case field == "outpost-arn":
		if !strings.HasPrefix(value, "arn:") {
			return fmt.Errorf("snapshot metadata %q: outpost-arn: want an ARN, like arn:aws:outposts:us-east-1:111122223333:outpost/op-0123456789abcdef0", spec)
		}
		sm.OutpostARN = value
	case field == "state":
		if value != stateCompleted && value != statePending && value != stateError {
			return fmt.Errorf("snapshot metadata %q: state: want completed, pending or error", spec)
		}
		sm.State = value
	default:
		return fmt.Errorf("snapshot metadata %q: unknown field %q (want volume-id, owner, start-time, encrypted, kms-key, description, tag:KEY, storage-tier, public, outpost-arn or state)", spec, field)
	}
	m[id] = sm
	return nil
}

// ec2Snapshot is one snapshotSet item, with the element names of the EC2
// API (version 2016-11-15).
type ec2Snapshot struct {
	SnapshotID  string     `xml:"snapshotId"`
	VolumeID    string     `xml:"volumeId"`
	Status      string     `xml:"status"`
	StartTime   string     `xml:"startTime"`
	Progress    string     `xml:"progress"`
	OwnerID     string     `xml:"ownerId"`
	VolumeSize  int64      `xml:"volumeSize"`
	Description string     `xml:"description"`
	Encrypted   bool       `xml:"encrypted"`
	KMSKeyID    string     `xml:"kmsKeyId,omitempty"`
	Tags        *ec2TagSet `xml:"tagSet,omitempty"` // absent when there are none
	StorageTier string     `xml:"storageTier"`
	OutpostARN  string     `xml:"outpostArn,omitempty"`
}

type ec2TagSet struct {
	Items []ec2Tag `xml:"item"`
}

// addTag appends a tag, creating the set.
func (it *ec2Snapshot) addTag(key, value string) {
	if it.Tags == nil {
		it.Tags = &ec2TagSet{}
	}
	it.Tags.Items = append(it.Tags.Items, ec2Tag{Key: key, Value: value})
}

// setTag sets a tag, replacing the value of one with the same key.
func (it *ec2Snapshot) setTag(key, value string) {
	if it.Tags != nil {
		for i := range it.Tags.Items {
			if it.Tags.Items[i].Key == key {
				it.Tags.Items[i].Value = value
				return
			}
		}
	}
	it.addTag(key, value)
}

// tags returns the snapshot's tags.
func (it ec2Snapshot) tags() []ec2Tag {
	if it.Tags == nil {
		return nil
	}
	return it.Tags.Items
}

type ec2Tag struct {
	Key   string `xml:"key"`
	Value string `xml:"value"`
}

// answer renders v, an EC2 action's answer (its requestId and what it
// says), inside the element named for the action in the namespace of
// the EC2 API version 2016-11-15:
// <DescribeSnapshotsResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">.
func answer(action string, v any) []byte {
	return marshalXML(ec2Answer{action, v})
}

// ec2Answer names the element of an answer for its action.
type ec2Answer struct {
	action string
	v      any
}

// MarshalXML renders a.v as the element named for a.action.
func (a ec2Answer) MarshalXML(e *xml.Encoder, _ xml.StartElement) error {
	return e.EncodeElement(a.v, xml.StartElement{Name: xml.Name{Space: "http://ec2.amazonaws.com/doc/2016-11-15/", Local: a.action + "Response"}})
}

type describeSnapshotsResponse struct {
	RequestID string        `xml:"requestId"`
	Snapshots []ec2Snapshot `xml:"snapshotSet>item"`
	NextToken string        `xml:"nextToken,omitempty"`
}

// ec2Time is the timestamp form EC2 responses use.
const ec2Time = "2006-01-02T15:04:05.000Z"

// DescribeSnapshots MaxResults bounds, from the EC2 API reference.
const (
	minDescribeResults = 5
	maxDescribeResults = 1000
)

// describeParams are the DescribeSnapshots parameters, parsed.
type describeParams struct {
	ids          []string
	owners       []string
	restorableBy []string
	filters      []ec2Filter
	max          int // 0: all
	after        string
	dryRun       bool
}

type ec2Filter struct {
	name   string
	values []string
}

func (s *Server) describeSnapshots(form url.Values, reqID string) ([]byte, *queryError) {
	p, qe := parseDescribe(form)
	if qe != nil {
		return nil, qe
	}
	id := s.identity()
	if qe := s.authorize(OpDescribeSnapshots); qe != nil {
		return nil, qe
	}
	if s.o.DenyDescribeSnapshots {
		return nil, &queryError{http.StatusForbidden, "UnauthorizedOperation", fmt.Sprintf(
			"You are not authorized to perform this operation. User: %s is not authorized to perform: "+
				"ec2:DescribeSnapshots because no identity-based policy allows the ec2:DescribeSnapshots action", id.ARN)}
	}
	if p.dryRun {
		return nil, &queryError{http.StatusPreconditionFailed, "DryRunOperation",
			"Request would have succeeded, but DryRun flag is set."}
	}
	var items []ec2Snapshot
	if len(p.ids) > 0 {
		var missing []string
		for _, sid := range p.ids {
			if !block.ValidSnapshotID(sid) {
				return nil, &queryError{http.StatusBadRequest, "InvalidSnapshotID.Malformed",
					fmt.Sprintf("Invalid id: %q (expecting \"snap-...\")", sid)}
			}
			snap := s.reg.get(sid)
			if snap == nil {
				missing = append(missing, sid)
				continue
			}
			items = append(items, s.describe(snap))
		}
		if len(missing) > 0 {
			return nil, &queryError{http.StatusBadRequest, "InvalidSnapshot.NotFound",
				"The snapshot '" + strings.Join(missing, ", ") + "' does not exist."}
		}
	} else {
		for _, snap := range s.reg.sorted() {
			items = append(items, s.describe(snap))
		}
	}
	items = slices.DeleteFunc(items, func(it ec2Snapshot) bool { return !p.keep(it, id.Account) })
	resp := describeSnapshotsResponse{RequestID: reqID}
	resp.Snapshots, resp.NextToken = pageOf(items, func(it ec2Snapshot) string { return it.SnapshotID }, p.max, p.after)
	return answer(OpDescribeSnapshots, resp), nil
}

// describe renders a snapshot's metadata, defaults filled in.
func (s *Server) describe(snap *snapshot) ec2Snapshot {
	m := s.o.SnapshotMeta[snap.id]
	status, progress := s.status(snap)
	it := ec2Snapshot{
		SnapshotID:  snap.id,
		VolumeID:    m.VolumeID,
		Status:      status,
		Progress:    strconv.Itoa(progress) + "%",
		OwnerID:     m.OwnerID,
		VolumeSize:  snap.volumeGiB,
		Description: m.Description,
		Encrypted:   m.Encrypted || m.KMSKeyID != "",
		KMSKeyID:    m.KMSKeyID,
		StorageTier: tierStandard,
		OutpostARN:  m.OutpostARN,
	}
	if m.StorageTier != "" {
		it.StorageTier = m.StorageTier
	}
	start := m.StartTime
	if snap.written != nil { // made with StartSnapshot: what it was asked
		if start.IsZero() {
			start = snap.started
		}
		if it.Description == "" {
			it.Description = snap.description
		}
		if it.KMSKeyID == "" {
			it.KMSKeyID = snap.kmsKeyArn
		}
		it.Encrypted = it.Encrypted || snap.encrypted
		for _, t := range snap.tags {
			it.addTag(t.Key, t.Value)
		}
	}
	if mk := snap.made; mk != nil { // made through EC2: what it was made from
		if start.IsZero() {
			start = snap.started
		}
		if it.VolumeID == "" {
			it.VolumeID = mk.volumeID
		}
		if it.Description == "" {
			it.Description = mk.description
		}
		if it.KMSKeyID == "" {
			it.KMSKeyID = mk.kmsKey
		}
		it.Encrypted = it.Encrypted || mk.encrypted
		if m.StorageTier == "" && mk.tier != "" {
			it.StorageTier = mk.tier
		}
	}
	if start.IsZero() {
		start = DefaultStartTime
	}
	it.StartTime = start.UTC().Format(ec2Time)
	if it.VolumeID == "" {
		it.VolumeID = fmt.Sprintf("vol-0%016x", hash4(domVolumeID, strHash(snap.id), 0, 0)) // AWS ids: vol- and 17 hex digits
	}
	if it.OwnerID == "" {
		it.OwnerID = s.identity().Account
	}
	for _, t := range m.Tags {
		it.addTag(t.Key, t.Value)
	}
	s.ec2mu.Lock()
	for _, t := range snap.ec2Tags {
		it.setTag(t.Key, t.Value)
	}
	s.ec2mu.Unlock()
	return it
}

func parseDescribe(form url.Values) (describeParams, *queryError) {
	var p describeParams
	bad := func(code, msg string) (describeParams, *queryError) {
		return describeParams{}, &queryError{http.StatusBadRequest, code, msg}
	}
	type indexed struct {
		n     int
		value string
	}
	var ids, owners, restorable []indexed
	filters := map[int]*ec2Filter{}
	for key, vals := range form {
		v := vals[0]
		head, tail, _ := strings.Cut(key, ".")
		n, err := strconv.Atoi(strings.SplitN(tail, ".", 2)[0])
		listKey := err == nil && n >= 1
		switch {
		case key == "Action" || key == "Version":
		case key == "DryRun":
			b, ok := parseBool(v)
			if !ok {
				return bad("InvalidParameterValue", "Value ("+v+") for parameter DryRun is invalid. Expected: 'true' or 'false'.")
			}
			p.dryRun = b
		case key == "MaxResults":
			m, err := strconv.Atoi(v)
			if err != nil || m < minDescribeResults || m > maxDescribeResults {
				return bad("InvalidParameterValue", fmt.Sprintf(
					"Value ( %s ) for parameter maxResults is invalid. Expecting a value between %d and %d.", v, minDescribeResults, maxDescribeResults))
			}
			p.max = m
		case key == "NextToken":
			after, err := base64.RawURLEncoding.DecodeString(v)
			if err != nil || !block.ValidSnapshotID(string(after)) {
				return bad("InvalidParameterValue", "The token '"+v+"' is invalid.")
			}
			p.after = string(after)
		case head == "SnapshotId" && listKey && !strings.Contains(tail, "."):
			ids = append(ids, indexed{n, v})
		case head == "Owner" && listKey && !strings.Contains(tail, "."):
			owners = append(owners, indexed{n, v})
		case head == "RestorableBy" && listKey && !strings.Contains(tail, "."):
			restorable = append(restorable, indexed{n, v})
		case head == "Filter" && listKey:
			f := filters[n]
			if f == nil {
				f = &ec2Filter{}
				filters[n] = f
			}
			rest := strings.TrimPrefix(tail, strconv.Itoa(n))
			switch {
			case rest == ".Name":
				f.name = v
			case strings.HasPrefix(rest, ".Value."):
				if m, err := strconv.Atoi(strings.TrimPrefix(rest, ".Value.")); err == nil && m >= 1 {
					f.values = append(f.values, v)
					break
				}
				return bad("UnknownParameter", "The parameter "+key+" is not recognized")
			default:
				return bad("UnknownParameter", "The parameter "+key+" is not recognized")
			}
		default:
			return bad("UnknownParameter", "The parameter "+key+" is not recognized")
		}
	}
	sorted := func(l []indexed) []string {
		slices.SortFunc(l, func(a, b indexed) int { return a.n - b.n })
		out := make([]string, len(l))
		for i, x := range l {
			out[i] = x.value
		}
		return out
	}
	p.ids, p.owners, p.restorableBy = sorted(ids), sorted(owners), sorted(restorable)
	if len(p.ids) > 0 && p.max > 0 {
		return bad("InvalidParameterCombination", "The parameter snapshotIdSet cannot be used with the parameter maxResults")
	}
	if len(p.ids) > 0 && p.after != "" {
		return bad("InvalidParameterCombination", "The parameter snapshotIdSet cannot be used with the parameter nextToken")
	}
	nums := make([]int, 0, len(filters))
	for n := range filters {
		nums = append(nums, n)
	}
	slices.Sort(nums)
	for _, n := range nums {
		f := filters[n]
		if !knownFilter(f.name) {
			return bad("InvalidParameterValue", "The filter '"+f.name+"' is invalid")
		}
		p.filters = append(p.filters, *f)
	}
	return p, nil
}

// knownFilter reports whether DescribeSnapshots here understands a filter
// name: a subset of the EC2 API reference's list.
func knownFilter(name string) bool {
	switch name {
	case "snapshot-id", "volume-id", "status", "owner-id", "encrypted", "description",
		"volume-size", "kms-key-id", "tag-key", "storage-tier":
		return true
	}
	return strings.HasPrefix(name, "tag:") && len(name) > len("tag:")
}

// keep reports whether it passes the owner, restorable-by and filter
// parameters. Every snapshot here belongs to the caller's account, which
// may restore it; sharing with other accounts is not modelled.
func (p describeParams) keep(it ec2Snapshot, account string) bool {
	if len(p.owners) > 0 && !slices.ContainsFunc(p.owners, func(o string) bool {
		return o == it.OwnerID || (o == "self" && it.OwnerID == account)
	}) {
		return false
	}
	if len(p.restorableBy) > 0 && !slices.ContainsFunc(p.restorableBy, func(o string) bool {
		return o == "self" || o == "all" || o == account
	}) {
		return false
	}
	for _, f := range p.filters {
		if !slices.ContainsFunc(f.values, func(pat string) bool { return filterMatch(f.name, pat, it) }) {
			return false
		}
	}
	return true
}

// filterMatch matches one filter value, where * and ? are wildcards as in
// every EC2 filter.
func filterMatch(name, pat string, it ec2Snapshot) bool {
	field := func(v string) bool { return wildcard(pat, v) }
	switch name {
	case "snapshot-id":
		return field(it.SnapshotID)
	case "volume-id":
		return field(it.VolumeID)
	case "status":
		return field(it.Status)
	case "owner-id":
		return field(it.OwnerID)
	case "encrypted":
		return field(strconv.FormatBool(it.Encrypted))
	case "description":
		return field(it.Description)
	case "volume-size":
		return field(strconv.FormatInt(it.VolumeSize, 10))
	case "kms-key-id":
		return field(it.KMSKeyID)
	case "storage-tier":
		return field(it.StorageTier)
	case "tag-key":
		return slices.ContainsFunc(it.tags(), func(t ec2Tag) bool { return field(t.Key) })
	}
	key := strings.TrimPrefix(name, "tag:")
	return slices.ContainsFunc(it.tags(), func(t ec2Tag) bool { return t.Key == key && field(t.Value) })
}

// wildcard matches s against pat, where * is any run of characters and ?
// any one character.
func wildcard(pat, s string) bool {
	p, str := []rune(pat), []rune(s)
	// Iterative matching with one backtrack point for the last star.
	pi, si, star, mark := 0, 0, -1, 0
	for si < len(str) {
		switch {
		case pi < len(p) && (p[pi] == '?' || p[pi] == str[si]):
			pi++
			si++
		case pi < len(p) && p[pi] == '*':
			star, mark = pi, si
			pi++
		case star >= 0:
			pi = star + 1
			mark++
			si = mark
		default:
			return false
		}
	}
	for pi < len(p) && p[pi] == '*' {
		pi++
	}
	return pi == len(p)
}
