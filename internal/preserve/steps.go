package preserve

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/ebsimager/ebsimager/internal/ebs"
	"github.com/ebsimager/ebsimager/internal/report"
)

// resolve finds the volumes of every target: an instance's attached EBS
// volumes (DescribeInstances), narrowed by ExcludeBoot and Devices, and
// each volume's encryption and attachment (DescribeVolumes).
func (p *preservation) resolve(ctx context.Context, ids []string) ([]target, error) {
	var instances, volumes []string
	for _, id := range ids {
		if strings.HasPrefix(id, "i-") {
			instances = append(instances, id)
		} else {
			volumes = append(volumes, id)
		}
	}
	attached := map[string][]volume{}
	if len(instances) > 0 {
		var err error
		if attached, err = p.describeInstances(ctx, instances); err != nil {
			return nil, err
		}
	}
	all := slices.Clone(volumes)
	for _, id := range instances {
		for _, v := range attached[id] {
			all = append(all, v.id)
		}
	}
	vols, err := p.describeVolumes(ctx, all)
	if err != nil {
		return nil, err
	}
	var targets []target
	for _, id := range ids {
		t := target{id: id}
		if strings.HasPrefix(id, "vol-") {
			t.volumes = []volume{vols[id]}
		} else {
			for _, v := range attached[id] {
				d := vols[v.id]
				v.encrypted, v.kmsKey = d.encrypted, d.kmsKey
				t.all = append(t.all, v)
			}
		}
		targets = append(targets, t)
	}
	for _, d := range p.o.Devices {
		if !p.deviceFound(d, targets) {
			return nil, &Error{Kind: ebs.KindNotFound, Err: fmt.Errorf("no target instance has an EBS volume at %s", d)}
		}
	}
	for i, t := range targets {
		if strings.HasPrefix(t.id, "i-") {
			targets[i].volumes = p.choose(t.all)
			if len(targets[i].volumes) == 0 {
				return nil, &Error{Target: t.id, Kind: ebs.KindInvalid, Err: fmt.Errorf("nothing to snapshot on %s: %s", t.id, devicesText(t.all))}
			}
		}
	}
	return targets, nil
}

func (p *preservation) choose(all []volume) []volume {
	var out []volume
	for _, v := range all {
		if (p.o.ExcludeBoot && v.root) || (len(p.o.Devices) > 0 && !slices.Contains(p.o.Devices, v.device)) {
			continue
		}
		out = append(out, v)
	}
	return out
}

func (p *preservation) deviceFound(d string, targets []target) bool {
	for _, t := range targets {
		for _, v := range t.all {
			if v.device == d {
				return true
			}
		}
	}
	return false
}

func devicesText(vols []volume) string {
	if len(vols) == 0 {
		return "it has no EBS volume attached"
	}
	var parts []string
	for _, v := range vols {
		s := v.device + " " + v.id
		if v.root {
			s += " (root)"
		}
		parts = append(parts, s)
	}
	return "its volumes are " + strings.Join(parts, ", ")
}

// describeInstances returns the attached EBS volumes of each instance,
// root first, then by device name.
func (p *preservation) describeInstances(ctx context.Context, ids []string) (map[string][]volume, error) {
	in := &ec2.DescribeInstancesInput{InstanceIds: ids}
	out, err := do(ctx, p.c, request{api: "ec2:DescribeInstances", region: p.region, target: strings.Join(ids, " "), asked: strings.Join(ids, " ")},
		p.c.ec2(p.region).DescribeInstances, in, instancesSummary)
	if err != nil {
		return nil, err
	}
	m := map[string][]volume{}
	for _, r := range out.Reservations {
		for _, inst := range r.Instances {
			id := aws.ToString(inst.InstanceId)
			if !slices.Contains(ids, id) {
				continue
			}
			if len(inst.BlockDeviceMappings) > maxVolumes {
				return nil, &Error{API: "ec2:DescribeInstances", Target: id, Err: fmt.Errorf("the answer lists %d block devices, more than the %d an instance can have", len(inst.BlockDeviceMappings), maxVolumes)}
			}
			var vols []volume
			for _, b := range inst.BlockDeviceMappings {
				if b.Ebs == nil || !volumeID.MatchString(aws.ToString(b.Ebs.VolumeId)) {
					continue
				}
				dev := aws.ToString(b.DeviceName)
				vols = append(vols, volume{instance: id, device: dev, id: aws.ToString(b.Ebs.VolumeId), root: dev == aws.ToString(inst.RootDeviceName)})
			}
			slices.SortStableFunc(vols, func(a, b volume) int {
				if a.root != b.root {
					if a.root {
						return -1
					}
					return 1
				}
				return strings.Compare(a.device, b.device)
			})
			m[id] = vols
		}
	}
	for _, id := range ids {
		if _, ok := m[id]; !ok {
			return nil, &Error{API: "ec2:DescribeInstances", Target: id, Kind: ebs.KindNotFound, Err: fmt.Errorf("the answer does not list instance %s", id)}
		}
	}
	return m, nil
}

func instancesSummary(o *ec2.DescribeInstancesOutput) string {
	var parts []string
	for _, r := range o.Reservations {
		for _, inst := range r.Instances {
			var devs []string
			for _, b := range inst.BlockDeviceMappings {
				if b.Ebs != nil {
					devs = append(devs, aws.ToString(b.DeviceName)+" "+aws.ToString(b.Ebs.VolumeId))
				}
			}
			parts = append(parts, fmt.Sprintf("%s (%s, root %s): %s", aws.ToString(inst.InstanceId), stateName(inst.State),
				aws.ToString(inst.RootDeviceName), strings.Join(devs, ", ")))
		}
	}
	return orNothing(strings.Join(parts, "; "))
}

func stateName(s *ec2types.InstanceState) string {
	if s == nil {
		return "state unknown"
	}
	return string(s.Name)
}

// describeVolumes returns each volume's encryption and attachment.
func (p *preservation) describeVolumes(ctx context.Context, ids []string) (map[string]volume, error) {
	if len(ids) == 0 {
		return map[string]volume{}, nil
	}
	out, err := do(ctx, p.c, request{api: "ec2:DescribeVolumes", region: p.region, target: strings.Join(ids, " "), asked: strings.Join(ids, " ")},
		p.c.ec2(p.region).DescribeVolumes, &ec2.DescribeVolumesInput{VolumeIds: ids}, volumesSummary)
	if err != nil {
		return nil, err
	}
	m := map[string]volume{}
	for _, v := range out.Volumes {
		vol := volume{id: aws.ToString(v.VolumeId), encrypted: aws.ToBool(v.Encrypted), kmsKey: aws.ToString(v.KmsKeyId)}
		for _, a := range v.Attachments {
			vol.instance, vol.device = aws.ToString(a.InstanceId), aws.ToString(a.Device)
			break
		}
		m[vol.id] = vol
	}
	for _, id := range ids {
		if _, ok := m[id]; !ok {
			return nil, &Error{API: "ec2:DescribeVolumes", Target: id, Kind: ebs.KindNotFound, Err: fmt.Errorf("the answer does not list volume %s", id)}
		}
	}
	return m, nil
}

func volumesSummary(o *ec2.DescribeVolumesOutput) string {
	var parts []string
	for _, v := range o.Volumes {
		s := fmt.Sprintf("%s %d GiB %s", aws.ToString(v.VolumeId), aws.ToInt32(v.Size), v.State)
		if aws.ToBool(v.Encrypted) {
			s += " encrypted under " + aws.ToString(v.KmsKeyId)
		}
		for _, a := range v.Attachments {
			s += fmt.Sprintf(" attached to %s at %s", aws.ToString(a.InstanceId), aws.ToString(a.Device))
		}
		parts = append(parts, s)
	}
	return orNothing(strings.Join(parts, ", "))
}

// create makes the snapshots: one crash-consistent set per instance
// (CreateSnapshots, then CreateTags for each snapshot's device and
// volume), one snapshot per volume (CreateSnapshot).
func (p *preservation) create(ctx context.Context, targets []target) error {
	for _, t := range targets {
		var err error
		if strings.HasPrefix(t.id, "i-") {
			err = p.createSet(ctx, t)
		} else {
			err = p.createOne(ctx, t.volumes[0])
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func (p *preservation) createSet(ctx context.Context, t target) error {
	spec := &ec2types.InstanceSpecification{InstanceId: aws.String(t.id)}
	var excluded []string
	for _, v := range t.all {
		switch {
		case slices.ContainsFunc(t.volumes, func(c volume) bool { return c.id == v.id }):
		case v.root:
			spec.ExcludeBootVolume = aws.Bool(true)
			excluded = append(excluded, v.device+" (root)")
		default:
			spec.ExcludeDataVolumeIds = append(spec.ExcludeDataVolumeIds, v.id)
			excluded = append(excluded, v.device)
		}
	}
	now := time.Now()
	asked := t.id
	if len(excluded) > 0 {
		asked += ", excluding " + strings.Join(excluded, " ")
	}
	in := &ec2.CreateSnapshotsInput{InstanceSpecification: spec, Description: aws.String(p.o.description("crash-consistent snapshots of " + t.id)),
		TagSpecifications: tagSpec(p.o.tags(now, t.id))}
	out, err := do(ctx, p.c, request{api: "ec2:CreateSnapshots", region: p.region, target: t.id, asked: asked, creates: true},
		p.c.ec2(p.region).CreateSnapshots, in, createdSummary)
	if out == nil {
		return err
	}
	// With an answer, err can only be a failure to save the record: the
	// snapshots exist, so they are listed before it is returned.
	if err != nil {
		defer p.listMade(t, out.Snapshots)
		return err
	}
	byVolume := map[string]volume{}
	for _, v := range t.all {
		byVolume[v.id] = v
	}
	var made []string
	for _, s := range out.Snapshots {
		id, vid := aws.ToString(s.SnapshotId), aws.ToString(s.VolumeId)
		if err := checkSnapshotID("ec2:CreateSnapshots", id); err != nil {
			return err
		}
		v, ok := byVolume[vid]
		if !ok {
			v = volume{instance: t.id, id: vid}
		}
		if !slices.ContainsFunc(t.volumes, func(c volume) bool { return c.id == vid }) {
			p.res.Record.Notes = append(p.res.Record.Notes, fmt.Sprintf("EC2 made %s of %s, which was not asked for: it is kept and listed", id, vid))
		}
		p.add(v, id, snapInfo{state: string(s.State), progress: aws.ToString(s.Progress), started: aws.ToTime(s.StartTime),
			encrypted: s.Encrypted, tags: s.Tags})
		made = append(made, vid)
	}
	for _, v := range t.volumes {
		if !slices.Contains(made, v.id) {
			return &Error{API: "ec2:CreateSnapshots", Target: t.id, Err: fmt.Errorf("the answer has no snapshot of %s (%s)", v.id, v.device)}
		}
	}
	return p.tagDevices(ctx, t.id)
}

// listMade records the snapshots of a CreateSnapshots answer as they
// are, when the run stops before looking at them.
func (p *preservation) listMade(t target, made []ec2types.SnapshotInfo) {
	for _, s := range made {
		v := volume{instance: t.id, id: aws.ToString(s.VolumeId)}
		for _, a := range t.all {
			if a.id == v.id {
				v = a
			}
		}
		p.add(v, aws.ToString(s.SnapshotId), snapInfo{state: string(s.State), progress: aws.ToString(s.Progress)})
	}
}

// tagDevices tags each snapshot of instance with its device and volume
// (CreateSnapshots tags a whole set alike).
func (p *preservation) tagDevices(ctx context.Context, instance string) error {
	for i := range p.res.Snapshots {
		s := &p.res.Snapshots[i]
		if s.InstanceID != instance {
			continue
		}
		tags := deviceTags(s.Device, s.VolumeID)
		// A new snapshot may not be visible yet (EC2 is eventually
		// consistent): CreateTags is retried on not found.
		_, err := do(ctx, p.c, request{api: "ec2:CreateTags", region: p.region, target: s.SnapshotID, asked: s.SnapshotID + ": " + tagsText(tags), eventual: true},
			p.c.ec2(p.region).CreateTags, &ec2.CreateTagsInput{Resources: []string{s.SnapshotID}, Tags: ec2Tags(tags)},
			func(*ec2.CreateTagsOutput) string { return "tagged" })
		if err != nil {
			return err
		}
		s.Tags = mergeTags(s.Tags, tags)
	}
	return nil
}

func mergeTags(have, add []report.Tag) []report.Tag {
	out := slices.DeleteFunc(slices.Clone(have), func(t report.Tag) bool {
		return slices.ContainsFunc(add, func(a report.Tag) bool { return a.Key == t.Key })
	})
	out = append(out, add...)
	slices.SortStableFunc(out, func(a, b report.Tag) int { return strings.Compare(a.Key, b.Key) })
	return out
}

func tagsText(tags []report.Tag) string {
	parts := make([]string, len(tags))
	for i, t := range tags {
		parts[i] = t.Key + "=" + t.Value
	}
	return strings.Join(parts, " ")
}

func createdSummary(o *ec2.CreateSnapshotsOutput) string {
	var parts []string
	for _, s := range o.Snapshots {
		parts = append(parts, strings.TrimSpace(fmt.Sprintf("%s of %s %s", aws.ToString(s.SnapshotId), aws.ToString(s.VolumeId), s.State)))
	}
	return orNothing(strings.Join(parts, ", "))
}

func (p *preservation) createOne(ctx context.Context, v volume) error {
	tags := append(p.o.tags(time.Now(), v.instance), deviceTags(v.device, v.id)...)
	in := &ec2.CreateSnapshotInput{VolumeId: aws.String(v.id), Description: aws.String(p.o.description("snapshot of " + v.id)),
		TagSpecifications: tagSpec(tags)}
	out, err := do(ctx, p.c, request{api: "ec2:CreateSnapshot", region: p.region, target: v.id, asked: v.id, creates: true},
		p.c.ec2(p.region).CreateSnapshot, in, func(o *ec2.CreateSnapshotOutput) string {
			return strings.TrimSpace(fmt.Sprintf("%s of %s %s", aws.ToString(o.SnapshotId), aws.ToString(o.VolumeId), o.State))
		})
	if out == nil {
		return err
	}
	saveErr := err // with an answer, only a failure to save the record
	id := aws.ToString(out.SnapshotId)
	if err := checkSnapshotID("ec2:CreateSnapshot", id); err != nil {
		return errors.Join(err, saveErr)
	}
	info := snapInfo{state: string(out.State), progress: aws.ToString(out.Progress), started: aws.ToTime(out.StartTime),
		encrypted: out.Encrypted, kmsKey: aws.ToString(out.KmsKeyId), tags: out.Tags}
	if out.Tags == nil {
		info.tags = ec2Tags(tags)
	}
	p.add(v, id, info)
	return saveErr
}

// maxPages bounds a listing of snapshots: at 1,000 a page, far more
// snapshots of a few volumes than any account keeps.
const maxPages = 100

// latest chooses the newest completed snapshot the account owns of each
// volume.
func (p *preservation) latest(ctx context.Context, targets []target) error {
	var ids []string
	for _, t := range targets {
		for _, v := range t.volumes {
			ids = append(ids, v.id)
		}
	}
	newest := map[string]ec2types.Snapshot{}
	in := &ec2.DescribeSnapshotsInput{OwnerIds: []string{"self"}, MaxResults: aws.Int32(1000),
		Filters: []ec2types.Filter{{Name: aws.String("volume-id"), Values: ids}, {Name: aws.String("status"), Values: []string{"completed"}}}}
	for page := 0; ; page++ {
		if page == maxPages {
			return &Error{API: "ec2:DescribeSnapshots", Err: fmt.Errorf("more than %d pages of snapshots", maxPages)}
		}
		out, err := do(ctx, p.c, request{api: "ec2:DescribeSnapshots", region: p.region, asked: "completed snapshots of " + strings.Join(ids, " ")},
			p.c.ec2(p.region).DescribeSnapshots, in, snapshotsSummary)
		if err != nil {
			return err
		}
		for _, s := range out.Snapshots {
			vid := aws.ToString(s.VolumeId)
			if s.State != ec2types.SnapshotStateCompleted || !slices.Contains(ids, vid) || checkSnapshotID("ec2:DescribeSnapshots", aws.ToString(s.SnapshotId)) != nil {
				continue
			}
			if old, ok := newest[vid]; !ok || aws.ToTime(s.StartTime).After(aws.ToTime(old.StartTime)) {
				newest[vid] = s
			}
		}
		if aws.ToString(out.NextToken) == "" {
			break
		}
		in.NextToken = out.NextToken
	}
	for _, t := range targets {
		for _, v := range t.volumes {
			s, ok := newest[v.id]
			if !ok {
				return &Error{API: "ec2:DescribeSnapshots", Target: v.id, Kind: ebs.KindNotFound,
					Err: fmt.Errorf("no completed snapshot of %s%s is owned by this account", v.id, onDevice(v))}
			}
			p.add(v, aws.ToString(s.SnapshotId), infoOf(s))
		}
	}
	return nil
}

func onDevice(v volume) string {
	if v.instance == "" {
		return ""
	}
	return fmt.Sprintf(" (%s %s)", v.instance, v.device)
}

// copy copies every snapshot, encrypted under the KMS key, into the copy
// Region, and waits for the copies.
func (p *preservation) copy(ctx context.Context) error {
	region := p.o.copyRegion(p.region)
	var copies []*report.SnapshotCopy
	for i := range p.res.Snapshots {
		s := &p.res.Snapshots[i]
		tags := mergeTags(ownTags(s.Tags), []report.Tag{{Key: TagPrefix + "source-snapshot", Value: s.SnapshotID}})
		in := &ec2.CopySnapshotInput{SourceSnapshotId: aws.String(s.SnapshotID), SourceRegion: aws.String(p.region),
			Encrypted: aws.Bool(true), KmsKeyId: aws.String(p.o.KMSKey), TagSpecifications: tagSpec(tags),
			Description: aws.String(p.o.description(fmt.Sprintf("copy of %s under %s", s.SnapshotID, p.o.KMSKey)))}
		out, err := do(ctx, p.c, request{api: "ec2:CopySnapshot", region: region, target: s.SnapshotID,
			asked: fmt.Sprintf("%s from %s, encrypted under %s", s.SnapshotID, p.region, p.o.KMSKey), creates: true},
			p.c.ec2(region).CopySnapshot, in, func(o *ec2.CopySnapshotOutput) string { return aws.ToString(o.SnapshotId) })
		if out == nil {
			return err
		}
		id := aws.ToString(out.SnapshotId)
		if cerr := checkSnapshotID("ec2:CopySnapshot", id); cerr != nil {
			return errors.Join(cerr, err)
		}
		s.Copies = append(s.Copies, report.SnapshotCopy{SnapshotID: id, Region: region, KMSKeyID: p.o.KMSKey, State: string(ec2types.SnapshotStatePending)})
		if region == p.region {
			s.Acquire = id
		}
		if err != nil {
			return err // with an answer, only a failure to save the record
		}
	}
	for i := range p.res.Snapshots {
		s := &p.res.Snapshots[i]
		copies = append(copies, &s.Copies[len(s.Copies)-1])
	}
	views := make([]*Snapshot, len(copies))
	for i, c := range copies {
		views[i] = &Snapshot{SnapshotID: c.SnapshotID, VolumeID: p.res.Snapshots[i].VolumeID, InstanceID: p.res.Snapshots[i].InstanceID,
			Device: p.res.Snapshots[i].Device, Region: region, State: c.State}
	}
	err := p.wait(ctx, "copies", region, views)
	for i, c := range copies {
		c.State, c.Progress = views[i].State, views[i].Progress
		if views[i].KMSKeyID != "" {
			c.KMSKeyID = views[i].KMSKeyID
		}
	}
	return err
}

// ownTags are the tags a copy carries over: every tag but AWS's own.
func ownTags(tags []report.Tag) []report.Tag {
	return slices.DeleteFunc(slices.Clone(tags), func(t report.Tag) bool { return strings.HasPrefix(strings.ToLower(t.Key), "aws:") })
}

// final is what gets locked and shared: the copy when one was made,
// else the snapshot, with where its lock and shares are recorded.
type final struct {
	id, region string
	encrypted  bool
	kmsKey     string
	lock       **report.SnapshotLock
	shares     *[]string
}

func (p *preservation) finals() []final {
	var out []final
	for i := range p.res.Snapshots {
		s := &p.res.Snapshots[i]
		if n := len(s.Copies); n > 0 {
			c := &s.Copies[n-1]
			out = append(out, final{id: c.SnapshotID, region: c.Region, encrypted: true, kmsKey: c.KMSKeyID, lock: &c.Lock, shares: &c.Shares})
			continue
		}
		out = append(out, final{id: s.SnapshotID, region: s.Region, encrypted: s.Encrypted, kmsKey: s.KMSKeyID, lock: &s.Lock, shares: &s.Shares})
	}
	return out
}

// lock locks each final snapshot (LockSnapshot) and records the lock
// EC2 returned.
func (p *preservation) lock(ctx context.Context) error {
	var errs []error
	for _, f := range p.finals() {
		in := &ec2.LockSnapshotInput{SnapshotId: aws.String(f.id), LockMode: ec2types.LockMode(p.o.Lock), LockDuration: aws.Int32(int32(p.o.LockDays))}
		if p.o.CoolOffHours > 0 {
			in.CoolOffPeriod = aws.Int32(int32(p.o.CoolOffHours))
		}
		out, err := do(ctx, p.c, request{api: "ec2:LockSnapshot", region: f.region, target: f.id,
			asked: lockAsked(f.id, p.o)},
			p.c.ec2(f.region).LockSnapshot, in, func(o *ec2.LockSnapshotOutput) string {
				return fmt.Sprintf("%s %s until %s", aws.ToString(o.SnapshotId), o.LockState, aws.ToTime(o.LockExpiresOn).UTC().Format(time.RFC3339))
			})
		if out == nil {
			errs = append(errs, err)
			continue
		}
		if err != nil {
			errs = append(errs, err) // with an answer, only a failure to save the record
		}
		*f.lock = &report.SnapshotLock{Mode: p.o.Lock, State: string(out.LockState), DurationDays: int(aws.ToInt32(out.LockDuration)),
			CoolOffHours: int(aws.ToInt32(out.CoolOffPeriod)), LockedAt: utc(out.LockCreatedOn),
			CoolOffExpiresOn: utc(out.CoolOffPeriodExpiresOn), ExpiresOn: utc(out.LockExpiresOn)}
	}
	return errors.Join(errs...)
}

func lockAsked(id string, o *Options) string {
	s := fmt.Sprintf("%s %s for %d days", id, o.Lock, o.LockDays)
	if o.CoolOffHours > 0 {
		s += fmt.Sprintf(", cool-off %d hours", o.CoolOffHours)
	}
	return s
}

func utc(t *time.Time) time.Time {
	if t == nil {
		return time.Time{}
	}
	return t.UTC()
}

// share gives each account createVolumePermission on each final
// snapshot, then reads the permission back to verify it.
func (p *preservation) share(ctx context.Context) error {
	finals := p.finals()
	for _, f := range finals {
		if f.encrypted && AWSManagedKey(f.kmsKey) {
			return &Error{Target: f.id, Kind: ebs.KindInvalid, Hint: copyHint,
				Err: fmt.Errorf("snapshot %s is encrypted under the AWS managed key %s and cannot be shared; nothing was shared", f.id, f.kmsKey)}
		}
	}
	var errs []error
	for _, f := range finals {
		if err := p.shareOne(ctx, f); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (p *preservation) shareOne(ctx context.Context, f final) error {
	_, err := do(ctx, p.c, request{api: "ec2:ModifySnapshotAttribute", region: f.region, target: f.id,
		asked: fmt.Sprintf("%s createVolumePermission add %s", f.id, strings.Join(p.o.ShareWith, " "))},
		p.c.ec2(f.region).ModifySnapshotAttribute, &ec2.ModifySnapshotAttributeInput{SnapshotId: aws.String(f.id),
			Attribute: ec2types.SnapshotAttributeNameCreateVolumePermission, OperationType: ec2types.OperationTypeAdd, UserIds: p.o.ShareWith},
		func(*ec2.ModifySnapshotAttributeOutput) string { return "ok" })
	if err != nil {
		return err
	}
	out, err := do(ctx, p.c, request{api: "ec2:DescribeSnapshotAttribute", region: f.region, target: f.id, asked: f.id + " createVolumePermission"},
		p.c.ec2(f.region).DescribeSnapshotAttribute, &ec2.DescribeSnapshotAttributeInput{SnapshotId: aws.String(f.id),
			Attribute: ec2types.SnapshotAttributeNameCreateVolumePermission},
		func(o *ec2.DescribeSnapshotAttributeOutput) string {
			return "shared with " + orNothing(strings.Join(sharedWith(o), " "))
		})
	if err != nil {
		return err
	}
	*f.shares = sharedWith(out)
	for _, a := range p.o.ShareWith {
		if !slices.Contains(*f.shares, a) {
			return &Error{API: "ec2:DescribeSnapshotAttribute", Target: f.id,
				Err: fmt.Errorf("the share did not take: %s is not among the accounts allowed (%s)", a, orNothing(strings.Join(*f.shares, " ")))}
		}
	}
	return nil
}

func sharedWith(o *ec2.DescribeSnapshotAttributeOutput) []string {
	var out []string
	for _, p := range o.CreateVolumePermissions {
		switch {
		case p.UserId != nil:
			out = append(out, aws.ToString(p.UserId))
		case p.Group != "":
			out = append(out, "group:"+string(p.Group))
		}
	}
	slices.Sort(out)
	return out
}
