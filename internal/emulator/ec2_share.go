package emulator

import (
	"encoding/xml"
	"net/http"
	"net/url"

	"github.com/ebsimager/ebsimager/internal/block"
)

// Snapshot attributes DescribeSnapshotAttribute and
// ModifySnapshotAttribute name.
const (
	attrCreateVolumePermission = "createVolumePermission"
	attrProductCodes           = "productCodes"
)

type describeSnapshotAttributeResponse struct {
	XMLName                xml.Name         `xml:"http://ec2.amazonaws.com/doc/2016-11-15/ DescribeSnapshotAttributeResponse"`
	RequestID              string           `xml:"requestId"`
	SnapshotID             string           `xml:"snapshotId"`
	CreateVolumePermission *ec2Permissions  `xml:"createVolumePermission,omitempty"`
	ProductCodes           *ec2ProductCodes `xml:"productCodes,omitempty"`
}

type ec2Permissions struct {
	Items []ec2Permission `xml:"item"`
}

type ec2Permission struct {
	Group  string `xml:"group,omitempty"`
	UserID string `xml:"userId,omitempty"`
}

// ec2ProductCodes is always empty: no snapshot here carries a
// Marketplace product code.
type ec2ProductCodes struct {
	Items []struct{} `xml:"item"`
}

// ec2Snapshot finds a snapshot named by an EC2 parameter, with EC2's
// errors for a malformed or unknown id.
func (s *Server) ec2Snapshot(id string) (*snapshot, *queryError) {
	if !block.ValidSnapshotID(id) {
		return nil, &queryError{http.StatusBadRequest, "InvalidSnapshotID.Malformed",
			"Invalid id: \"" + id + "\" (expecting \"snap-...\")"}
	}
	snap := s.reg.get(id)
	if snap == nil {
		return nil, &queryError{http.StatusBadRequest, "InvalidSnapshot.NotFound", "The snapshot '" + id + "' does not exist."}
	}
	return snap, nil
}

func (s *Server) describeSnapshotAttribute(form url.Values, reqID, _ string) ([]byte, *queryError) {
	p, qe := readParams(form, "Attribute", "SnapshotId", "DryRun")
	if qe != nil {
		return nil, qe
	}
	attr, id := p.get("Attribute"), p.get("SnapshotId")
	switch {
	case !p.has("SnapshotId"):
		return nil, missing("SnapshotId")
	case !p.has("Attribute"):
		return nil, missing("Attribute")
	case attr != attrCreateVolumePermission && attr != attrProductCodes:
		return nil, invalidValue(attr, "Attribute", "Unknown attribute.")
	}
	if qe := s.authorize(OpDescribeSnapshotAttribute); qe != nil {
		return nil, qe
	}
	if qe := p.dryRun(); qe != nil {
		return nil, qe
	}
	snap, qe := s.ec2Snapshot(id)
	if qe != nil {
		return nil, qe
	}
	resp := describeSnapshotAttributeResponse{RequestID: reqID, SnapshotID: snap.id}
	if attr == attrProductCodes {
		resp.ProductCodes = &ec2ProductCodes{}
		return marshalXML(resp), nil
	}
	resp.CreateVolumePermission = &ec2Permissions{Items: s.permissions(snap)}
	return marshalXML(resp), nil
}

// permissions lists a snapshot's createVolumePermission: the group "all"
// when it is public, then the accounts it is shared with.
func (s *Server) permissions(snap *snapshot) []ec2Permission {
	var out []ec2Permission
	if s.isPublic(snap) {
		out = append(out, ec2Permission{Group: "all"})
	}
	s.ec2mu.Lock()
	defer s.ec2mu.Unlock()
	for _, u := range snap.users {
		out = append(out, ec2Permission{UserID: u})
	}
	return out
}
