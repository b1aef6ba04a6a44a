package emulator

import (
	"fmt"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ebsimager/ebsimager/internal/block"
)

// VolumeSpec is one EBS volume the server holds: a raw disk image, read
// again whenever a snapshot of it is made, or generated content. Exactly
// one of RawPath and Synthetic is set.
type VolumeSpec struct {
	// ID defaults, for a volume of an instance, to VolumeID(instance,
	// Device).
	ID string
	// Device is the device name of an attached volume (/dev/xvda).
	Device    string
	RawPath   string
	Synthetic *SyntheticSpec // its ID is not used
	// Encrypted volumes without a KMSKeyID use the account's AWS managed
	// key for EBS (AWSManagedKeyARN).
	Encrypted bool
	KMSKeyID  string
	Tags      []Tag
}

// volume is one volume the server holds; guarded by Server.ec2mu.
type volume struct {
	VolumeSpec
	instance   string // "" when not attached
	root       bool   // the instance's root device
	sizeGiB    int64
	synth      *syntheticSource
	created    time.Time
	attached   time.Time
	last       *snapshot // the newest snapshot made of it, the parent of the next
	rawSize    int64     // the image's size when added: snapshots copy this much
	volumeTags []Tag     // set by CreateTags
}

// instance is one instance the server holds; guarded by Server.ec2mu.
type instance struct {
	id       string
	vols     []*volume // in the order given; the first is the root device
	launched time.Time
	tags     []Tag
}

// ec2Store holds the instances and volumes; guarded by Server.ec2mu.
type ec2Store struct {
	instances map[string]*instance
	volumes   map[string]*volume
}

var (
	instanceIDPattern = regexp.MustCompile(`^i-[0-9a-f]{8}([0-9a-f]{9})?$`)
	volumeIDPattern   = regexp.MustCompile(`^vol-[0-9a-f]{8}([0-9a-f]{9})?$`)
	devicePattern     = regexp.MustCompile(`^(/dev/)?[a-z][a-z0-9]{1,15}$`)
)

// VolumeID is the id of the volume attached to an instance at a device:
// "vol-0" and 16 lowercase hex digits hashed from both.
func VolumeID(instanceID, device string) string {
	return fmt.Sprintf("vol-0%016x", hash4(domVolumeID, strHash(instanceID), strHash(device), 1))
}

// AWSManagedKeyARN is the ARN of the account's AWS managed key for EBS
// (alias aws/ebs) in region, which encrypts volumes that name no key.
// Snapshots encrypted under it cannot be shared.
func AWSManagedKeyARN(region, account string) string {
	h := hash4(domVolumeID, strHash("alias/aws/ebs"), strHash(region), strHash(account))
	return fmt.Sprintf("arn:aws:kms:%s:%s:key/%08x-%04x-4%03x-8%03x-%012x", region, account,
		h>>32, (h>>16)&0xffff, h&0xfff, (h>>12)&0xfff, hash4(domVolumeID, h, 0, 0)&0xffffffffffff)
}

// isAWSManagedKey reports whether a key is an AWS managed key for EBS.
func (s *Server) isAWSManagedKey(key string) bool {
	if strings.HasSuffix(key, "alias/aws/ebs") {
		return true
	}
	_, rest, _ := strings.Cut(key, "arn:aws:kms:")
	region, _, _ := strings.Cut(rest, ":")
	return key != "" && key == AWSManagedKeyARN(region, s.identity().Account)
}

// region returns Options.Region or its default.
func (s *Server) region() string {
	if s.o.Region != "" {
		return s.o.Region
	}
	return DefaultRegion
}

// DefaultRegion is the region the server's volumes and instances live in
// unless Options.Region says otherwise.
const DefaultRegion = "us-east-1"

// newVolume checks a volume spec and sizes it.
func newVolume(v VolumeSpec) (*volume, error) {
	if !volumeIDPattern.MatchString(v.ID) {
		return nil, fmt.Errorf("volume %q: want vol- and 8 or 17 lowercase hex digits", v.ID)
	}
	vol := &volume{VolumeSpec: v}
	switch {
	case v.RawPath != "" && v.Synthetic == nil:
		st, err := os.Stat(v.RawPath)
		if err != nil {
			return nil, fmt.Errorf("volume %s: %w", v.ID, err)
		}
		if !st.Mode().IsRegular() {
			return nil, fmt.Errorf("volume %s: %s: not a regular file", v.ID, v.RawPath)
		}
		const gib = 1 << 30 // VolumeSize unit
		vol.rawSize = st.Size()
		vol.sizeGiB = max(1, (st.Size()+gib-1)/gib)
		if vol.sizeGiB > MaxVolumeGiB {
			return nil, fmt.Errorf("volume %s: %s is larger than the 64 TiB EBS maximum", v.ID, v.RawPath)
		}
	case v.Synthetic != nil && v.RawPath == "":
		sp := *v.Synthetic
		if sp.VolumeGiB <= 0 || sp.VolumeGiB > MaxVolumeGiB {
			return nil, fmt.Errorf("volume %s: size %d GiB: want 1 to %d", v.ID, sp.VolumeGiB, MaxVolumeGiB)
		}
		if !(sp.Fraction >= 0 && sp.Fraction <= 1) {
			return nil, fmt.Errorf("volume %s: fraction %v: want a number in [0, 1]", v.ID, sp.Fraction)
		}
		vol.sizeGiB = sp.VolumeGiB
		vol.synth = &syntheticSource{slots: block.Slots(sp.VolumeGiB), seed: uint64(sp.Seed), thr: threshold(sp.Fraction)}
	default:
		return nil, fmt.Errorf("volume %s: want exactly one of a raw image and a synthetic size", v.ID)
	}
	return vol, nil
}

// AddInstance serves a running instance whose volumes are attached at
// their devices, the first being its root device.
func (s *Server) AddInstance(id string, vols []VolumeSpec) error {
	if !instanceIDPattern.MatchString(id) {
		return fmt.Errorf("instance %q: want i- and 8 or 17 lowercase hex digits", id)
	}
	if len(vols) == 0 {
		return fmt.Errorf("instance %s: no volumes", id)
	}
	now := s.now()
	in := &instance{id: id, launched: now}
	devices := map[string]bool{}
	for k, v := range vols {
		if !devicePattern.MatchString(v.Device) {
			return fmt.Errorf("instance %s: device %q: want a device name like /dev/xvda", id, v.Device)
		}
		if devices[v.Device] {
			return fmt.Errorf("instance %s: device %s is given twice", id, v.Device)
		}
		devices[v.Device] = true
		if v.ID == "" {
			v.ID = VolumeID(id, v.Device)
		}
		vol, err := newVolume(v)
		if err != nil {
			return fmt.Errorf("instance %s: %w", id, err)
		}
		vol.instance, vol.root, vol.created, vol.attached = id, k == 0, now, now
		in.vols = append(in.vols, vol)
	}
	s.ec2mu.Lock()
	defer s.ec2mu.Unlock()
	if s.ec2.instances[id] != nil {
		return fmt.Errorf("instance %s already exists", id)
	}
	for _, v := range in.vols {
		if s.ec2.volumes[v.ID] != nil {
			return fmt.Errorf("instance %s: volume %s already exists", id, v.ID)
		}
	}
	s.ec2.instances[id] = in
	for _, v := range in.vols {
		s.ec2.volumes[v.ID] = v
	}
	return nil
}

// AddVolume serves a volume attached to no instance.
func (s *Server) AddVolume(v VolumeSpec) error {
	vol, err := newVolume(v)
	if err != nil {
		return err
	}
	vol.Device, vol.created = "", s.now()
	s.ec2mu.Lock()
	defer s.ec2mu.Unlock()
	if s.ec2.volumes[v.ID] != nil {
		return fmt.Errorf("volume %s already exists", v.ID)
	}
	s.ec2.volumes[v.ID] = vol
	return nil
}

// ParseInstanceSpec reads "i-ID=DEVICE:PATH[,DEVICE:PATH…]", where PATH is
// a raw image or "synthetic:SIZE[,FRACTION[,SEED]]". A comma starts a new
// device only where the next part holds a colon, so a synthetic spec keeps
// its own commas.
func ParseInstanceSpec(spec string) (string, []VolumeSpec, error) {
	id, rest, ok := strings.Cut(spec, "=")
	if !ok || rest == "" {
		return "", nil, fmt.Errorf("instance %q: want i-ID=DEVICE:PATH[,DEVICE:PATH…]", spec)
	}
	if !instanceIDPattern.MatchString(id) {
		return "", nil, fmt.Errorf("instance %q: want i- and 8 or 17 lowercase hex digits", spec)
	}
	var entries []string
	for _, part := range strings.Split(rest, ",") {
		if strings.Contains(part, ":") || len(entries) == 0 {
			entries = append(entries, part)
			continue
		}
		entries[len(entries)-1] += "," + part
	}
	var vols []VolumeSpec
	for _, e := range entries {
		dev, path, ok := strings.Cut(e, ":")
		if !ok || path == "" || !devicePattern.MatchString(dev) {
			return "", nil, fmt.Errorf("instance %q: %q: want DEVICE:PATH, like /dev/xvda:disk.raw or /dev/xvdb:synthetic:8GiB,0.5,7", spec, e)
		}
		v, err := volumeSource(path)
		if err != nil {
			return "", nil, fmt.Errorf("instance %q: %s: %w", spec, dev, err)
		}
		v.Device = dev
		vols = append(vols, v)
	}
	return id, vols, nil
}

// ParseVolumeSpec reads "vol-ID=PATH", PATH as in ParseInstanceSpec.
func ParseVolumeSpec(spec string) (VolumeSpec, error) {
	id, path, ok := strings.Cut(spec, "=")
	if !ok || path == "" {
		return VolumeSpec{}, fmt.Errorf("volume %q: want vol-ID=PATH", spec)
	}
	if !volumeIDPattern.MatchString(id) {
		return VolumeSpec{}, fmt.Errorf("volume %q: want vol- and 8 or 17 lowercase hex digits", spec)
	}
	v, err := volumeSource(path)
	if err != nil {
		return VolumeSpec{}, fmt.Errorf("volume %q: %w", spec, err)
	}
	v.ID = id
	return v, nil
}

// volumeSource reads a raw image path or "synthetic:SIZE[,FRACTION[,SEED]]".
func volumeSource(path string) (VolumeSpec, error) {
	syn, ok := strings.CutPrefix(path, "synthetic:")
	if !ok {
		return VolumeSpec{RawPath: path}, nil
	}
	sp, err := ParseSyntheticSpec("snap-0=" + syn)
	if err != nil {
		return VolumeSpec{}, fmt.Errorf("synthetic %q: %w", syn, err)
	}
	sp.ID = ""
	return VolumeSpec{Synthetic: &sp}, nil
}

// ParseVolumeMeta reads "vol-ID:FIELD=VALUE" into m, FIELD one of
// encrypted (true or false), kms-key or tag:KEY.
func ParseVolumeMeta(spec string, m map[string]VolumeSpec) error {
	id, rest, ok := strings.Cut(spec, ":")
	field, value, ok2 := strings.Cut(rest, "=")
	if !ok || !ok2 || !volumeIDPattern.MatchString(id) {
		return fmt.Errorf("volume metadata %q: want vol-ID:FIELD=VALUE", spec)
	}
	v := m[id]
	switch {
	case field == "encrypted":
		b, ok := parseBool(value)
		if !ok {
			return fmt.Errorf("volume metadata %q: encrypted: want true or false", spec)
		}
		v.Encrypted = b
	case field == "kms-key":
		v.KMSKeyID = value
	case strings.HasPrefix(field, "tag:") && len(field) > len("tag:"):
		v.Tags = append(v.Tags, Tag{Key: strings.TrimPrefix(field, "tag:"), Value: value})
	default:
		return fmt.Errorf("volume metadata %q: unknown field %q (want encrypted, kms-key or tag:KEY)", spec, field)
	}
	m[id] = v
	return nil
}

// Wire shapes of DescribeInstances and DescribeVolumes.
type describeInstancesResponse struct {
	RequestID    string           `xml:"requestId"`
	Reservations []ec2Reservation `xml:"reservationSet>item"`
	NextToken    string           `xml:"nextToken,omitempty"`
}

type ec2Reservation struct {
	ReservationID string        `xml:"reservationId"`
	OwnerID       string        `xml:"ownerId"`
	Groups        struct{}      `xml:"groupSet"`
	Instances     []ec2Instance `xml:"instancesSet>item"`
}

type ec2Instance struct {
	InstanceID     string             `xml:"instanceId"`
	ImageID        string             `xml:"imageId"`
	State          ec2InstanceState   `xml:"instanceState"`
	InstanceType   string             `xml:"instanceType"`
	LaunchTime     string             `xml:"launchTime"`
	AZ             string             `xml:"placement>availabilityZone"`
	Tenancy        string             `xml:"placement>tenancy"`
	PrivateDNS     string             `xml:"privateDnsName"`
	PrivateIP      string             `xml:"privateIpAddress"`
	SubnetID       string             `xml:"subnetId"`
	VpcID          string             `xml:"vpcId"`
	Architecture   string             `xml:"architecture"`
	Hypervisor     string             `xml:"hypervisor"`
	Virtualization string             `xml:"virtualizationType"`
	Monitoring     string             `xml:"monitoring>state"`
	SourceDestChk  bool               `xml:"sourceDestCheck"`
	RootDeviceType string             `xml:"rootDeviceType"`
	RootDevice     string             `xml:"rootDeviceName"`
	Devices        []ec2DeviceMapping `xml:"blockDeviceMapping>item"`
	Tags           *ec2TagSet         `xml:"tagSet,omitempty"`
}

type ec2InstanceState struct {
	Code int    `xml:"code"`
	Name string `xml:"name"`
}

type ec2DeviceMapping struct {
	DeviceName string `xml:"deviceName"`
	VolumeID   string `xml:"ebs>volumeId"`
	Status     string `xml:"ebs>status"`
	AttachTime string `xml:"ebs>attachTime"`
	DeleteOnT  bool   `xml:"ebs>deleteOnTermination"`
}

type describeVolumesResponse struct {
	RequestID string      `xml:"requestId"`
	Volumes   []ec2Volume `xml:"volumeSet>item"`
	NextToken string      `xml:"nextToken,omitempty"`
}

type ec2Volume struct {
	VolumeID    string          `xml:"volumeId"`
	Size        int64           `xml:"size"`
	SnapshotID  string          `xml:"snapshotId"`
	AZ          string          `xml:"availabilityZone"`
	Status      string          `xml:"status"`
	CreateTime  string          `xml:"createTime"`
	Attachments []ec2Attachment `xml:"attachmentSet>item"`
	Tags        *ec2TagSet      `xml:"tagSet,omitempty"`
	VolumeType  string          `xml:"volumeType"`
	Encrypted   bool            `xml:"encrypted"`
	KMSKeyID    string          `xml:"kmsKeyId,omitempty"`
	MultiAttach bool            `xml:"multiAttachEnabled"`
}

type ec2Attachment struct {
	VolumeID   string `xml:"volumeId"`
	InstanceID string `xml:"instanceId"`
	Device     string `xml:"device"`
	Status     string `xml:"status"`
	AttachTime string `xml:"attachTime"`
	DeleteOnT  bool   `xml:"deleteOnTermination"`
}

// The instance's fixed facts: a running (code 16) t3.micro from an
// Amazon Linux image in the region's first zone.
const (
	instanceRunning = 16
	instanceType    = "t3.micro"
	instanceImage   = "ami-0abcdef1234567890"
)

// tagSet renders tags, nil when there are none.
func tagSet(tags []Tag) *ec2TagSet {
	if len(tags) == 0 {
		return nil
	}
	ts := &ec2TagSet{}
	for _, t := range tags {
		ts.Items = append(ts.Items, ec2Tag(t))
	}
	return ts
}

// setTags sets tags over old ones, replacing values of equal keys.
func setTags(old, add []Tag) []Tag {
	out := slices.Clone(old)
	for _, t := range add {
		if k := slices.IndexFunc(out, func(o Tag) bool { return o.Key == t.Key }); k >= 0 {
			out[k].Value = t.Value
			continue
		}
		out = append(out, t)
	}
	return out
}

// kmsKey returns the volume's key: its own, or the AWS managed key when
// it is encrypted without one.
func (s *Server) volumeKey(v *volume) (bool, string) {
	switch {
	case v.KMSKeyID != "":
		return true, v.KMSKeyID
	case v.Encrypted:
		return true, AWSManagedKeyARN(s.region(), s.identity().Account)
	}
	return false, ""
}

// describeVolume renders a volume; ec2mu is held.
func (s *Server) describeVolume(v *volume) ec2Volume {
	enc, key := s.volumeKey(v)
	it := ec2Volume{VolumeID: v.ID, Size: v.sizeGiB, AZ: s.region() + "a", Status: "available",
		CreateTime: v.created.UTC().Format(ec2Time), Tags: tagSet(setTags(v.Tags, v.volumeTags)),
		VolumeType: "gp3", Encrypted: enc, KMSKeyID: key}
	if v.instance != "" {
		it.Status = "in-use"
		it.Attachments = []ec2Attachment{{VolumeID: v.ID, InstanceID: v.instance, Device: v.Device, Status: "attached",
			AttachTime: v.attached.UTC().Format(ec2Time), DeleteOnT: v.root}}
	}
	return it
}

// describeInstance renders an instance; ec2mu is held.
func (s *Server) describeInstance(in *instance) ec2Instance {
	h := hash4(domVolumeID, strHash(in.id), 3, 0)
	ip := fmt.Sprintf("10.0.%d.%d", h>>8&0xff, 4+h%250) // a private address in the VPC's 10.0.0.0/16
	dns := "ip-" + strings.ReplaceAll(ip, ".", "-") + "." + s.region() + ".compute.internal"
	if s.region() == DefaultRegion {
		dns = "ip-" + strings.ReplaceAll(ip, ".", "-") + ".ec2.internal" // us-east-1's own domain
	}
	it := ec2Instance{InstanceID: in.id, ImageID: instanceImage, State: ec2InstanceState{instanceRunning, "running"},
		InstanceType: instanceType, LaunchTime: in.launched.UTC().Format(ec2Time), AZ: s.region() + "a",
		PrivateDNS: dns, PrivateIP: ip, SubnetID: "subnet-0" + fmt.Sprintf("%016x", hash4(domVolumeID, h, 4, 0)),
		VpcID:        "vpc-0" + fmt.Sprintf("%016x", hash4(domVolumeID, strHash(s.identity().Account), 5, 0)),
		Architecture: "x86_64", Hypervisor: "xen", Virtualization: "hvm", Monitoring: "disabled", Tenancy: "default",
		SourceDestChk: true, RootDeviceType: "ebs", RootDevice: in.vols[0].Device, Tags: tagSet(in.tags)}
	for _, v := range in.vols {
		it.Devices = append(it.Devices, ec2DeviceMapping{DeviceName: v.Device, VolumeID: v.ID, Status: "attached",
			AttachTime: v.attached.UTC().Format(ec2Time), DeleteOnT: v.root})
	}
	return it
}

func (s *Server) describeInstances(form url.Values, reqID, _ string) ([]byte, *queryError) {
	a, qe := s.readList(form, OpDescribeInstances, instanceIDs, withTagFilters("instance-id", "instance-state-name",
		"block-device-mapping.volume-id", "block-device-mapping.device-name", "root-device-name"))
	if qe != nil {
		return nil, qe
	}
	s.ec2mu.Lock()
	defer s.ec2mu.Unlock()
	page, next, qe := selectPage(a, instanceIDs, s.ec2.instances, func(in *instance) *instance { return in },
		func(in *instance) string { return in.id }, instanceMatch)
	if qe != nil {
		return nil, qe
	}
	resp := describeInstancesResponse{RequestID: reqID, NextToken: next}
	for _, in := range page {
		resp.Reservations = append(resp.Reservations, ec2Reservation{
			ReservationID: fmt.Sprintf("r-0%016x", hash4(domVolumeID, strHash(in.id), 2, 0)),
			OwnerID:       s.identity().Account,
			Instances:     []ec2Instance{s.describeInstance(in)},
		})
	}
	return answer(OpDescribeInstances, resp), nil
}

func isTagFilter(n string) bool { return strings.HasPrefix(n, "tag:") && len(n) > len("tag:") }

// withTagFilters accepts the filter names given and the tag filters,
// tag-key and tag:KEY.
func withTagFilters(names ...string) func(string) bool {
	return func(n string) bool { return slices.Contains(names, n) || n == "tag-key" || isTagFilter(n) }
}

// keepAll applies EC2 filter semantics: every filter must match, a filter
// matching when any of its values does.
func keepAll(filters []ec2Filter, match func(name, pat string) bool) bool {
	for _, f := range filters {
		if !slices.ContainsFunc(f.values, func(pat string) bool { return match(f.name, pat) }) {
			return false
		}
	}
	return true
}

func tagMatch(tags []Tag, name, pat string) bool {
	if name == "tag-key" {
		return slices.ContainsFunc(tags, func(t Tag) bool { return wildcard(pat, t.Key) })
	}
	key := strings.TrimPrefix(name, "tag:")
	return slices.ContainsFunc(tags, func(t Tag) bool { return t.Key == key && wildcard(pat, t.Value) })
}

func instanceMatch(in *instance, name, pat string) bool {
	anyVol := func(f func(v *volume) string) bool {
		return slices.ContainsFunc(in.vols, func(v *volume) bool { return wildcard(pat, f(v)) })
	}
	switch name {
	case "instance-id":
		return wildcard(pat, in.id)
	case "instance-state-name":
		return wildcard(pat, "running")
	case "block-device-mapping.volume-id":
		return anyVol(func(v *volume) string { return v.ID })
	case "block-device-mapping.device-name":
		return anyVol(func(v *volume) string { return v.Device })
	case "root-device-name":
		return wildcard(pat, in.vols[0].Device)
	}
	return tagMatch(in.tags, name, pat)
}

func (s *Server) describeVolumes(form url.Values, reqID, _ string) ([]byte, *queryError) {
	a, qe := s.readList(form, OpDescribeVolumes, volumeIDs, withTagFilters("volume-id", "status", "size", "encrypted",
		"kms-key-id", "attachment.instance-id", "attachment.device", "attachment.status", "attachment.delete-on-termination"))
	if qe != nil {
		return nil, qe
	}
	s.ec2mu.Lock()
	defer s.ec2mu.Unlock()
	resp := describeVolumesResponse{RequestID: reqID}
	resp.Volumes, resp.NextToken, qe = selectPage(a, volumeIDs, s.ec2.volumes, s.describeVolume,
		func(v ec2Volume) string { return v.VolumeID }, volumeMatch)
	if qe != nil {
		return nil, qe
	}
	return answer(OpDescribeVolumes, resp), nil
}

func volumeMatch(v ec2Volume, name, pat string) bool {
	att := func(f func(a ec2Attachment) string) bool {
		return slices.ContainsFunc(v.Attachments, func(a ec2Attachment) bool { return wildcard(pat, f(a)) })
	}
	switch name {
	case "volume-id":
		return wildcard(pat, v.VolumeID)
	case "status":
		return wildcard(pat, v.Status)
	case "size":
		return wildcard(pat, strconv.FormatInt(v.Size, 10))
	case "encrypted":
		return wildcard(pat, strconv.FormatBool(v.Encrypted))
	case "kms-key-id":
		return wildcard(pat, v.KMSKeyID)
	case "attachment.instance-id":
		return att(func(a ec2Attachment) string { return a.InstanceID })
	case "attachment.device":
		return att(func(a ec2Attachment) string { return a.Device })
	case "attachment.status":
		return att(func(a ec2Attachment) string { return a.Status })
	case "attachment.delete-on-termination":
		return att(func(a ec2Attachment) string { return strconv.FormatBool(a.DeleteOnT) })
	}
	var tags []Tag
	if v.Tags != nil {
		for _, t := range v.Tags.Items {
			tags = append(tags, Tag(t))
		}
	}
	return tagMatch(tags, name, pat)
}
