package emulator

import (
	"errors"
	"fmt"
	"hash/maphash"
	"net/http"
	"net/url"
	"os"
	"slices"
	"time"

	"github.com/ebsimager/ebsimager/internal/block"
)

// DeniedKeyARN is the KMS key of the snapshots that KMSDenyFraction draws
// from unencrypted volumes: a customer managed key the caller may not use.
func DeniedKeyARN(region, account string) string {
	return "arn:aws:kms:" + region + ":" + account + ":key/0d3e1ed0-0000-4000-8000-000000000000"
}

// maxDescription bounds a snapshot description, as EC2 does.
const maxDescription = 255

// freeze returns the content of a volume now: a synthetic volume's
// generated source, which never changes, or a copy of a raw image's
// non-zero blocks in a new unlinked temporary file, so that rewriting the
// image later does not change the snapshot. Holes are skipped where the
// file system reports them, and at most the image's size when added is
// read.
func (s *Server) freeze(v *volume) (source, error) {
	if v.synth != nil {
		return v.synth, nil
	}
	in, err := os.Open(v.RawPath)
	if err != nil {
		return nil, err
	}
	defer in.Close()
	out, err := os.CreateTemp(s.o.TempDir, "ebsimager-emulator-*.img")
	if err != nil {
		return nil, err
	}
	os.Remove(out.Name()) // the open file lives on until Close
	r := &rawSource{f: out, size: v.rawSize, slots: block.Slots(v.sizeGiB)}
	if err := r.copyFrom(in); err != nil {
		out.Close()
		return nil, fmt.Errorf("copying %s: %w", v.RawPath, err)
	}
	s.mu.Lock()
	s.closers = append(s.closers, r)
	s.mu.Unlock()
	return r, nil
}

// copyFrom fills r, whose file is empty, with the non-zero blocks of in
// up to r.size, at the same offsets, listing and fingerprinting them.
func (r *rawSource) copyFrom(in *os.File) error {
	buf := make([]byte, block.Size)
	blocks := (r.size + block.Size - 1) / block.Size
	holes := true
	for i := int64(0); i < blocks; i++ {
		if holes {
			off, err := in.Seek(i*block.Size, seekData)
			switch {
			case err == nil:
				i = max(i, off/block.Size)
				if i >= blocks {
					continue
				}
			case isNoData(err):
				i = blocks
				continue
			default:
				holes = false
			}
		}
		n, err := in.ReadAt(buf, i*block.Size)
		if err != nil && n == 0 {
			if errors.Is(err, os.ErrClosed) {
				return err
			}
			break // the image shrank: what is gone reads as zeros
		}
		clear(buf[n:])
		if i*block.Size+block.Size > r.size { // past the size when added
			clear(buf[r.size-i*block.Size:])
		}
		if block.IsZero(buf) {
			continue
		}
		if _, err := r.f.WriteAt(buf, i*block.Size); err != nil {
			return err
		}
		r.index = append(r.index, i)
		r.fps = append(r.fps, maphash.Bytes(fpSeed, buf))
	}
	return r.f.Truncate(r.size)
}

// snapshotVolume makes a pending snapshot of v started at now, the child
// of v's last one; ec2mu is held.
func (s *Server) snapshotVolume(v *volume, now time.Time, description, region string, tags []Tag) (*snapshot, *queryError) {
	src, err := s.freeze(v)
	if err != nil {
		return nil, &queryError{http.StatusInternalServerError, "InternalError", "Copying the volume: " + err.Error()}
	}
	enc, key := s.volumeKey(v)
	snap := &snapshot{volumeGiB: v.sizeGiB, src: src, started: now, readyAt: now.Add(s.o.SnapshotDelay)}
	if p := v.last; p != nil {
		snap.parent, snap.root, snap.depth = p.id, p.root, p.depth+1
	}
	made := &ec2Made{volumeID: v.ID, description: description, encrypted: enc, kmsKey: key, region: region}
	s.registerMade(snap, made, tags)
	v.last = snap
	return snap, nil
}

// draw decides from (seed, id) whether a new snapshot is archived and
// whether its key is denied; a denied unencrypted one gets DeniedKeyARN.
func (s *Server) draw(id string, m *ec2Made) (tier string, denied bool) {
	if s.drawn(id, 0, s.o.ArchiveFraction) {
		tier = tierArchive
	}
	if s.drawn(id, 2, s.o.KMSDenyFraction) {
		denied = true
		if m.kmsKey == "" {
			m.encrypted, m.kmsKey = true, DeniedKeyARN(s.region(), s.identity().Account)
		}
	}
	return tier, denied
}

func (s *Server) drawn(id string, k uint64, fraction float64) bool {
	return fraction > 0 && hash4(domEC2Fraction, s.seed, strHash(id), k)>>11 < threshold(fraction)
}

// register mints a fresh snapshot id, lets fill complete the snapshot
// with it, and adds it; the snapshot becomes visible complete.
func (s *Server) register(snap *snapshot, fill func(id string)) {
	s.reg.mu.Lock()
	defer s.reg.mu.Unlock()
	for {
		n := s.snapSeq.Add(1)
		snap.id = fmt.Sprintf("snap-0%016x", hash4(domSnapID, s.seed, n, 0)) // AWS ids: snap- and 17 hex digits
		if _, taken := s.reg.snaps[snap.id]; !taken {
			break
		}
	}
	if snap.root == "" {
		snap.root = snap.id
	}
	fill(snap.id)
	s.reg.snaps[snap.id] = snap
}

// registerMade registers a snapshot made through EC2 from made, with
// tags, drawing what --archive-fraction, --kms-deny-fraction and
// --public-fraction decide of it.
func (s *Server) registerMade(snap *snapshot, made *ec2Made, tags []Tag) {
	s.register(snap, func(id string) {
		made.tier, made.kmsDenied = s.draw(id, made)
		snap.made = made
		snap.ec2Tags = tags
		if !made.encrypted && s.drawn(id, 1, s.o.PublicFraction) { // EC2 never makes an encrypted snapshot public
			snap.public.Store(publicYes)
		}
	})
}

type createSnapshotResponse struct {
	RequestID string `xml:"requestId"`
	ec2Snapshot
}

type createSnapshotsResponse struct {
	RequestID string            `xml:"requestId"`
	Snapshots []ec2SnapshotInfo `xml:"snapshotSet>item"`
}

// ec2SnapshotInfo is a CreateSnapshots snapshotSet item.
type ec2SnapshotInfo struct {
	SnapshotID  string     `xml:"snapshotId"`
	VolumeID    string     `xml:"volumeId"`
	State       string     `xml:"state"`
	VolumeSize  int64      `xml:"volumeSize"`
	StartTime   string     `xml:"startTime"`
	Progress    string     `xml:"progress"`
	OwnerID     string     `xml:"ownerId"`
	Description string     `xml:"description"`
	Encrypted   bool       `xml:"encrypted"`
	Tags        *ec2TagSet `xml:"tagSet,omitempty"`
}

// created renders a snapshot just made: pending at 0%, whatever the
// delay, as EC2 answers the call that makes it.
func (s *Server) created(snap *snapshot) ec2Snapshot {
	it := s.describe(snap)
	it.Status, it.Progress = statePending, "0%"
	return it
}

// description reads and bounds the Description parameter.
func (p params) description() (string, *queryError) {
	d := p.get("Description")
	if len(d) > maxDescription {
		return "", invalidValue("…", "Description", fmt.Sprintf("The description must be at most %d characters.", maxDescription))
	}
	return d, nil
}

func (s *Server) createSnapshot(form url.Values, reqID, region string) ([]byte, *queryError) {
	p, qe := readParams(form, "VolumeId", "Description", "OutpostArn", "DryRun",
		"TagSpecification.N.ResourceType", "TagSpecification.N.Tag.N.Key", "TagSpecification.N.Tag.N.Value")
	if qe != nil {
		return nil, qe
	}
	id, qe := p.id("VolumeId", "VolumeId", volumeIDs)
	if qe != nil {
		return nil, qe
	}
	desc, tags, qe := s.madeParams(OpCreateSnapshot, p)
	if qe != nil {
		return nil, qe
	}
	s.ec2mu.Lock()
	v := s.ec2.volumes[id]
	if v == nil {
		s.ec2mu.Unlock()
		return nil, volumeIDs.notFound(id)
	}
	snap, qe := s.snapshotVolume(v, s.now(), desc, region, tags)
	s.ec2mu.Unlock()
	if qe != nil {
		return nil, qe
	}
	return answer(OpCreateSnapshot, createSnapshotResponse{RequestID: reqID, ec2Snapshot: s.created(snap)}), nil
}

func (s *Server) createSnapshots(form url.Values, reqID, region string) ([]byte, *queryError) {
	p, qe := readParams(form, "InstanceSpecification.InstanceId", "InstanceSpecification.ExcludeBootVolume",
		"InstanceSpecification.ExcludeDataVolumeId.N", "Description", "CopyTagsFromSource", "OutpostArn", "DryRun",
		"TagSpecification.N.ResourceType", "TagSpecification.N.Tag.N.Key", "TagSpecification.N.Tag.N.Value")
	if qe != nil {
		return nil, qe
	}
	id, qe := p.id("InstanceSpecification.InstanceId", "InstanceSpecification", instanceIDs)
	if qe != nil {
		return nil, qe
	}
	excludeBoot, qe := p.boolean("InstanceSpecification.ExcludeBootVolume", false)
	if qe != nil {
		return nil, qe
	}
	exclude := p.list("InstanceSpecification.ExcludeDataVolumeId")
	for _, v := range exclude {
		if qe := volumeIDs.check(v); qe != nil {
			return nil, qe
		}
	}
	copyTags := p.get("CopyTagsFromSource")
	if p.has("CopyTagsFromSource") && copyTags != "volume" {
		return nil, invalidValue(copyTags, "CopyTagsFromSource", "Expected: 'volume'.")
	}
	desc, tags, qe := s.madeParams(OpCreateSnapshots, p)
	if qe != nil {
		return nil, qe
	}
	snaps, qe := s.snapshotInstance(id, excludeBoot, exclude, copyTags == "volume", desc, region, tags)
	if qe != nil {
		return nil, qe
	}
	resp := createSnapshotsResponse{RequestID: reqID}
	for _, snap := range snaps {
		it := s.created(snap)
		resp.Snapshots = append(resp.Snapshots, ec2SnapshotInfo{SnapshotID: it.SnapshotID, VolumeID: it.VolumeID,
			State: it.Status, VolumeSize: it.VolumeSize, StartTime: it.StartTime, Progress: it.Progress,
			OwnerID: it.OwnerID, Description: it.Description, Encrypted: it.Encrypted, Tags: it.Tags})
	}
	return answer(OpCreateSnapshots, resp), nil
}

// snapshotInstance makes one snapshot of each of the instance's volumes
// that is not excluded, at one instant: ec2mu is held throughout, so no
// other snapshot of them comes in between.
func (s *Server) snapshotInstance(id string, excludeBoot bool, exclude []string, copyTags bool,
	desc, region string, tags []Tag,
) ([]*snapshot, *queryError) {
	s.ec2mu.Lock()
	defer s.ec2mu.Unlock()
	in := s.ec2.instances[id]
	if in == nil {
		return nil, instanceIDs.notFound(id)
	}
	for _, x := range exclude {
		if !slices.ContainsFunc(in.vols, func(v *volume) bool { return v.ID == x }) {
			return nil, &queryError{http.StatusBadRequest, "InvalidParameterValue",
				"The volume '" + x + "' is not attached to instance '" + id + "'."}
		}
		if x == in.vols[0].ID {
			return nil, &queryError{http.StatusBadRequest, "InvalidParameterValue",
				"The volume '" + x + "' is the root volume of instance '" + id + "': use ExcludeBootVolume to exclude it."}
		}
	}
	var vols []*volume
	for _, v := range in.vols {
		if (v.root && excludeBoot) || slices.Contains(exclude, v.ID) {
			continue
		}
		vols = append(vols, v)
	}
	if len(vols) == 0 {
		return nil, &queryError{http.StatusBadRequest, "InvalidParameterValue",
			"Instance '" + id + "' has no volumes left to snapshot after the exclusions."}
	}
	var snaps []*snapshot
	now := s.now() // one instant for the set, as EC2 reports it
	for _, v := range vols {
		t := tags
		if copyTags {
			t = setTags(setTags(v.Tags, v.volumeTags), tags)
		}
		snap, qe := s.snapshotVolume(v, now, desc, region, t)
		if qe != nil {
			return nil, qe
		}
		snaps = append(snaps, snap)
	}
	return snaps, nil
}
