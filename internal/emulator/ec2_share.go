package emulator

import (
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"slices"

	"github.com/ebsimager/ebsimager/internal/block"
)

// Snapshot attributes DescribeSnapshotAttribute and
// ModifySnapshotAttribute name.
const (
	attrCreateVolumePermission = "createVolumePermission"
	attrProductCodes           = "productCodes"
)

type describeSnapshotAttributeResponse struct {
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
	if qe := p.require("SnapshotId", "Attribute"); qe != nil {
		return nil, qe
	}
	attr := p.get("Attribute")
	if attr != attrCreateVolumePermission && attr != attrProductCodes {
		return nil, invalidValue(attr, "Attribute", "Unknown attribute.")
	}
	snap, qe := s.permitSnapshot(OpDescribeSnapshotAttribute, p, "SnapshotId")
	if qe != nil {
		return nil, qe
	}
	resp := describeSnapshotAttributeResponse{RequestID: reqID, SnapshotID: snap.id}
	if attr == attrProductCodes {
		resp.ProductCodes = &ec2ProductCodes{}
		return answer(OpDescribeSnapshotAttribute, resp), nil
	}
	resp.CreateVolumePermission = &ec2Permissions{Items: s.permissions(snap)}
	return answer(OpDescribeSnapshotAttribute, resp), nil
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

// accountIDPattern is an AWS account id: 12 digits.
var accountIDPattern = regexp.MustCompile(`^[0-9]{12}$`)

// permChange is one add or remove of createVolumePermission.
type permChange struct {
	add   bool
	group string // "all", or ""
	user  string
}

// permChanges reads the two ways a createVolumePermission change is
// given: CreateVolumePermission.Add.N / .Remove.N, or OperationType with
// UserId.N and UserGroup.N.
func (p params) permChanges() ([]permChange, *queryError) {
	var out []permChange
	for _, op := range []string{"Add", "Remove"} {
		base := "CreateVolumePermission." + op
		for _, n := range p.positions(base) {
			k := fmt.Sprintf("%s.%d.", base, n)
			out = append(out, permChange{add: op == "Add", group: p.get(k + "Group"), user: p.get(k + "UserId")})
		}
	}
	users, groups := p.list("UserId"), p.list("UserGroup")
	if len(users)+len(groups) > 0 {
		op := p.get("OperationType")
		if op != "add" && op != "remove" {
			if !p.has("OperationType") {
				return nil, missing("OperationType")
			}
			return nil, invalidValue(op, "OperationType", "Expected: 'add' or 'remove'.")
		}
		for _, u := range users {
			out = append(out, permChange{add: op == "add", user: u})
		}
		for _, g := range groups {
			out = append(out, permChange{add: op == "add", group: g})
		}
	}
	for _, c := range out {
		switch {
		case c.user != "" && c.group != "", c.user == "" && c.group == "":
			return nil, &queryError{http.StatusBadRequest, "InvalidParameterCombination",
				"Each createVolumePermission must name either a UserId or a Group."}
		case c.group != "" && c.group != "all":
			return nil, invalidValue(c.group, "Group", "Expected: 'all'.")
		case c.user != "" && !accountIDPattern.MatchString(c.user):
			return nil, invalidValue(c.user, "UserId", "Expected a 12-digit AWS account id.")
		}
	}
	if len(out) == 0 {
		return nil, missing("CreateVolumePermission")
	}
	return out, nil
}

func (s *Server) modifySnapshotAttribute(form url.Values, reqID, _ string) ([]byte, *queryError) {
	p, qe := readParams(form, "SnapshotId", "Attribute", "OperationType", "UserId.N", "UserGroup.N", "DryRun",
		"CreateVolumePermission.Add.N.UserId", "CreateVolumePermission.Add.N.Group",
		"CreateVolumePermission.Remove.N.UserId", "CreateVolumePermission.Remove.N.Group")
	if qe != nil {
		return nil, qe
	}
	if !p.has("SnapshotId") {
		return nil, missing("SnapshotId")
	}
	if attr := p.get("Attribute"); p.has("Attribute") && attr != attrCreateVolumePermission {
		if attr == attrProductCodes {
			return nil, &queryError{http.StatusBadRequest, "InvalidParameterValue", "The attribute productCodes cannot be modified."}
		}
		return nil, invalidValue(attr, "Attribute", "Unknown attribute.")
	}
	changes, qe := p.permChanges()
	if qe != nil {
		return nil, qe
	}
	snap, qe := s.permitSnapshot(OpModifySnapshotAttribute, p, "SnapshotId")
	if qe != nil {
		return nil, qe
	}
	it := s.describe(snap)
	for _, c := range changes {
		if !c.add || !it.Encrypted {
			continue
		}
		// EC2's words, as clients log them (OperationNotPermitted, 400).
		if c.group == "all" {
			return nil, &queryError{http.StatusBadRequest, "OperationNotPermitted", "Encrypted snapshots cannot be made public."}
		}
		if s.isAWSManagedKey(it.KMSKeyID) || it.KMSKeyID == "" {
			return nil, &queryError{http.StatusBadRequest, "OperationNotPermitted", "Encrypted snapshots with EBS default key cannot be shared"}
		}
	}
	s.ec2mu.Lock()
	defer s.ec2mu.Unlock()
	for _, c := range changes {
		switch {
		case c.group == "all" && c.add:
			snap.public.Store(publicYes)
		case c.group == "all":
			snap.public.Store(publicNo)
		case c.add && !slices.Contains(snap.users, c.user):
			snap.users = append(snap.users, c.user)
		case !c.add:
			snap.users = slices.DeleteFunc(snap.users, func(u string) bool { return u == c.user })
		}
	}
	return returnTrue(OpModifySnapshotAttribute, reqID), nil
}

type copySnapshotResponse struct {
	RequestID  string     `xml:"requestId"`
	SnapshotID string     `xml:"snapshotId"`
	Tags       *ec2TagSet `xml:"tagSet,omitempty"`
}

// copiedVolumeID is the volume id EC2 reports for copied snapshots,
// which belong to no volume.
const copiedVolumeID = "vol-ffffffff"

// copySnapshot copies a completed snapshot: a new snapshot of the same
// blocks, made in the region of the request (its SigV4 scope), encrypted
// under KmsKeyId when given. The copy starts its own lineage.
func (s *Server) copySnapshot(form url.Values, reqID, region string) ([]byte, *queryError) {
	p, qe := readParams(form, "SourceSnapshotId", "SourceRegion", "Description", "Encrypted", "KmsKeyId",
		"DestinationRegion", "PresignedUrl", "DestinationOutpostArn", "DestinationAvailabilityZone", "CompletionDurationMinutes", "DryRun",
		"TagSpecification.N.ResourceType", "TagSpecification.N.Tag.N.Key", "TagSpecification.N.Tag.N.Value")
	if qe != nil {
		return nil, qe
	}
	if qe := p.require("SourceSnapshotId", "SourceRegion"); qe != nil {
		return nil, qe
	}
	encrypt, qe := p.boolean("Encrypted", false)
	if qe != nil {
		return nil, qe
	}
	key := p.get("KmsKeyId")
	if key != "" && !encrypt {
		return nil, &queryError{http.StatusBadRequest, "InvalidParameterDependency",
			"The parameter KmsKeyId requires the parameter Encrypted to be set."}
	}
	desc, tags, qe := s.madeParams(OpCopySnapshot, p)
	if qe != nil {
		return nil, qe
	}
	src, qe := s.ec2Snapshot(p.get("SourceSnapshotId"))
	if qe != nil {
		return nil, qe
	}
	if st, _ := s.status(src); st != stateCompleted {
		return nil, incorrectState(st)
	}
	if region == "" {
		region = s.region()
	}
	from := s.describe(src)
	made := &ec2Made{volumeID: copiedVolumeID, description: desc, region: region, source: src.id, srcRegion: p.get("SourceRegion")}
	if desc == "" {
		made.description = fmt.Sprintf("[Copied %s from %s]", src.id, made.srcRegion)
	}
	switch {
	case key != "":
		made.encrypted, made.kmsKey = true, key
	case from.Encrypted && from.KMSKeyID != "" && made.srcRegion == region:
		made.encrypted, made.kmsKey = true, from.KMSKeyID
	case from.Encrypted || encrypt:
		made.encrypted, made.kmsKey = true, AWSManagedKeyARN(region, s.identity().Account)
	}
	now := s.now()
	snap := &snapshot{volumeGiB: src.volumeGiB, src: src.src, started: now, readyAt: now.Add(s.o.SnapshotDelay)}
	s.ec2mu.Lock()
	s.registerMade(snap, made, tags)
	s.ec2mu.Unlock()
	return answer(OpCopySnapshot, copySnapshotResponse{RequestID: reqID, SnapshotID: snap.id, Tags: tagSet(tags)}), nil
}
