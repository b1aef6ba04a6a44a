package emulator

import (
	"net/http"
	"net/url"
	"strings"

	"github.com/ebsimager/ebsimager/internal/block"
)

// createTags tags snapshots, volumes and instances, replacing the value
// of a tag with the same key. Every resource is checked before any is
// tagged.
func (s *Server) createTags(form url.Values, reqID, _ string) ([]byte, *queryError) {
	p, qe := readParams(form, "ResourceId.N", "Tag.N.Key", "Tag.N.Value", "DryRun")
	if qe != nil {
		return nil, qe
	}
	ids := p.list("ResourceId")
	if len(ids) == 0 {
		return nil, missing("ResourceId")
	}
	tags, qe := p.tags("Tag")
	if qe != nil {
		return nil, qe
	}
	if len(tags) == 0 {
		return nil, missing("Tag")
	}
	if qe := s.permit(OpCreateTags, p); qe != nil {
		return nil, qe
	}
	var snaps []*snapshot
	for _, id := range ids {
		if strings.HasPrefix(id, "snap-") {
			snap, qe := s.ec2Snapshot(id)
			if qe != nil {
				return nil, qe
			}
			snaps = append(snaps, snap)
		}
	}
	s.ec2mu.Lock()
	defer s.ec2mu.Unlock()
	var vols []*volume
	var insts []*instance
	for _, id := range ids {
		switch {
		case block.ValidSnapshotID(id):
		case volumeIDPattern.MatchString(id):
			v := s.ec2.volumes[id]
			if v == nil {
				return nil, notFoundIDs("InvalidVolume.NotFound", "volume", []string{id})
			}
			vols = append(vols, v)
		case instanceIDPattern.MatchString(id):
			in := s.ec2.instances[id]
			if in == nil {
				return nil, notFoundIDs("InvalidInstanceID.NotFound", "instance ID", []string{id})
			}
			insts = append(insts, in)
		default:
			return nil, &queryError{http.StatusBadRequest, "InvalidID", "The ID '" + id + "' is not valid"}
		}
	}
	for _, snap := range snaps {
		snap.ec2Tags = setTags(snap.ec2Tags, tags)
	}
	for _, v := range vols {
		v.volumeTags = setTags(v.volumeTags, tags)
	}
	for _, in := range insts {
		in.tags = setTags(in.tags, tags)
	}
	return returnTrue(OpCreateTags, reqID), nil
}
