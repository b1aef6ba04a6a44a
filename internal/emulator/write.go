package emulator

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"

	"github.com/ebsimager/ebsimager/internal/block"
)

// ownerID is the account every snapshot belongs to: the placeholder
// account id the AWS documentation uses in its examples.
const ownerID = "111122223333"

type startRequest struct {
	VolumeSize       *int64
	ParentSnapshotId *string //nolint:revive // the wire name
	Tags             []tag
	Description      *string
	ClientToken      *string
	Encrypted        *bool
	KmsKeyArn        *string
	Timeout          *int32
}

type startResponse struct {
	SnapshotId       string      //nolint:revive // the wire name
	OwnerId          string      //nolint:revive // the wire name
	Status           string      // pending
	StartTime        json.Number // epoch seconds
	VolumeSize       int64
	BlockSize        int
	Tags             []tag  `json:",omitempty"`
	Description      string `json:",omitempty"`
	ParentSnapshotId string `json:",omitempty"` //nolint:revive // the wire name
	KmsKeyArn        string `json:",omitempty"`
	SseType          string
}

// maxStartBody bounds a StartSnapshot body: 50 tags of 128+256
// characters, a 255-character description and an ARN fit well within it.
const maxStartBody = 64 << 10

func (s *Server) startSnapshot(c *call, w http.ResponseWriter, r *http.Request) {
	var req startRequest
	dec := json.NewDecoder(io.LimitReader(r.Body, maxStartBody))
	if err := dec.Decode(&req); err != nil {
		c.fail(validation(reasonInvalidParameter, "The request body is not valid JSON: "+err.Error()))
		return
	}
	if req.VolumeSize == nil || *req.VolumeSize < 1 || *req.VolumeSize > MaxVolumeGiB {
		c.fail(validation(reasonInvalidVolumeSize, fmt.Sprintf("The volume size must be from 1 to %d GiB.", MaxVolumeGiB)))
		return
	}
	if req.ClientToken != nil {
		s.reg.mu.RLock()
		prev := s.reg.tokens[*req.ClientToken]
		s.reg.mu.RUnlock()
		if prev != nil {
			s.writeStarted(c, w, prev)
			return
		}
	}
	snap := &snapshot{volumeGiB: *req.VolumeSize, started: s.now(), tags: req.Tags}
	var parentSrc source
	if req.ParentSnapshotId != nil && *req.ParentSnapshotId != "" {
		parent, e := s.resolve(*req.ParentSnapshotId)
		if e != nil {
			c.fail(e)
			return
		}
		if parent.volumeGiB > snap.volumeGiB {
			c.fail(validation(reasonInvalidVolumeSize, fmt.Sprintf(
				"The volume size %d GiB is smaller than the parent snapshot's %d GiB.", snap.volumeGiB, parent.volumeGiB)))
			return
		}
		snap.parent, snap.root, snap.depth, parentSrc = parent.id, parent.root, parent.depth+1, parent.src
	}
	if req.Description != nil {
		snap.description = *req.Description
	}
	if req.KmsKeyArn != nil {
		snap.kmsKeyArn = *req.KmsKeyArn
	}
	snap.encrypted = (req.Encrypted != nil && *req.Encrypted) || snap.kmsKeyArn != ""
	snap.written = newWritten(parentSrc, snap.slots())
	snap.src = snap.written

	s.reg.mu.Lock()
	if req.ClientToken != nil {
		if prev := s.reg.tokens[*req.ClientToken]; prev != nil {
			s.reg.mu.Unlock()
			s.writeStarted(c, w, prev)
			return
		}
	}
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
	s.reg.snaps[snap.id] = snap
	if req.ClientToken != nil {
		s.reg.tokens[*req.ClientToken] = snap
	}
	s.reg.mu.Unlock()
	s.writeStarted(c, w, snap)
}

func (s *Server) writeStarted(c *call, w http.ResponseWriter, snap *snapshot) {
	resp := startResponse{
		SnapshotId:       snap.id,
		OwnerId:          ownerID,
		Status:           "pending",
		StartTime:        json.Number(strconv.FormatFloat(float64(snap.started.UnixMilli())/1000, 'f', 3, 64)),
		VolumeSize:       snap.volumeGiB,
		BlockSize:        block.Size,
		Tags:             snap.tags,
		Description:      snap.description,
		ParentSnapshotId: snap.parent,
		KmsKeyArn:        snap.kmsKeyArn,
		SseType:          "none",
	}
	if snap.completed.Load() {
		resp.Status = "completed"
	}
	if snap.encrypted {
		resp.SseType = "sse-ebs"
		if snap.kmsKeyArn != "" {
			resp.SseType = "sse-kms"
		}
	}
	body, err := json.Marshal(resp)
	if err != nil {
		c.fail(internal("Encoding the response: " + err.Error()))
		return
	}
	c.done(OutcomeOK)
	writeJSON(w, http.StatusCreated, body)
}

// resolveWritable finds a snapshot made by StartSnapshot.
func (s *Server) resolveWritable(id string) (*snapshot, *apiError) {
	if !block.ValidSnapshotID(id) {
		return nil, validation(reasonInvalidSnapshotID, "The snapshot ID '"+id+"' is not valid.")
	}
	snap := s.reg.get(id)
	if snap == nil {
		return nil, notFound(id)
	}
	if reason, ok := s.faults.Load().f.Deny[id]; ok {
		return nil, accessDenied(reason, "You are not authorized to access snapshot "+id+".")
	}
	if snap.written == nil {
		return nil, validation(reasonInvalidSnapshotID, "The snapshot '"+id+"' was not started with StartSnapshot.")
	}
	return snap, nil
}

func (s *Server) putBlock(c *call, w http.ResponseWriter, r *http.Request, id, idx string) {
	snap, e := s.resolveWritable(id)
	if e != nil {
		c.fail(e)
		return
	}
	if snap.completed.Load() {
		c.fail(validation(reasonInvalidSnapshotID, "The snapshot '"+id+"' is completed; blocks can only be put into a pending snapshot."))
		return
	}
	index, err := strconv.ParseInt(idx, 10, 64)
	if err != nil || index < 0 || index >= snap.slots() {
		c.fail(validation(reasonInvalidBlock, "The block index '"+idx+"' is not valid for snapshot "+id+"."))
		return
	}
	h := r.Header
	if alg := h.Get("X-Amz-Checksum-Algorithm"); alg != "SHA256" {
		c.fail(validation(reasonInvalidParameter, "The checksum algorithm '"+alg+"' is not supported; use SHA256."))
		return
	}
	want, err := block.ParseBase64(h.Get("X-Amz-Checksum"))
	if err != nil {
		c.fail(validation(reasonInvalidParameter, "The checksum is not a base64 SHA-256 digest."))
		return
	}
	length, err := strconv.ParseInt(h.Get("X-Amz-Data-Length"), 10, 64)
	if err != nil || length != block.Size {
		c.fail(validation(reasonInvalidParameter, fmt.Sprintf(
			"The data length '%s' is not valid; every block is %d bytes.", h.Get("X-Amz-Data-Length"), block.Size)))
		return
	}
	if v := h.Get("X-Amz-Progress"); v != "" {
		if p, err := strconv.Atoi(v); err != nil || p < 0 || p > 100 {
			c.fail(validation(reasonInvalidParameter, "The progress '"+v+"' is not a percentage."))
			return
		}
	}
	data := make([]byte, block.Size)
	if _, err := io.ReadFull(r.Body, data); err != nil {
		c.fail(validation(reasonInvalidParameter, "Failed to read block data: the body is shorter than x-amz-Data-Length."))
		return
	}
	var extra [1]byte
	if n, err := r.Body.Read(extra[:]); n > 0 || (err != nil && !errors.Is(err, io.EOF)) {
		c.fail(validation(reasonInvalidParameter, "Failed to read block data: the body is longer than x-amz-Data-Length."))
		return
	}
	sum := block.Sum(sha256.Sum256(data))
	if sum != want {
		c.fail(validation(reasonInvalidParameter, "The checksum "+want.Base64()+" does not match the data ("+sum.Base64()+")."))
		return
	}
	if !snap.written.put(index, &storedBlock{data: data, sum: sum}) {
		c.fail(validation(reasonInvalidSnapshotID, "The snapshot '"+id+"' is completed; blocks can only be put into a pending snapshot."))
		return
	}
	w.Header().Set("X-Amz-Checksum", base64.StdEncoding.EncodeToString(sum[:]))
	w.Header().Set("X-Amz-Checksum-Algorithm", "SHA256")
	c.done(OutcomeOK)
	writeJSON(w, http.StatusCreated, []byte("{}"))
}

func (s *Server) completeSnapshot(c *call, w http.ResponseWriter, r *http.Request, id string) {
	snap, e := s.resolveWritable(id)
	if e != nil {
		c.fail(e)
		return
	}
	if !snap.completed.Load() {
		h := r.Header
		count, err := strconv.ParseInt(h.Get("X-Amz-Changedblockscount"), 10, 64)
		if err != nil || count < 0 {
			c.fail(validation(reasonInvalidParameter, "x-amz-ChangedBlocksCount '"+h.Get("X-Amz-Changedblockscount")+"' is not a non-negative integer."))
			return
		}
		e := snap.written.finish(func(n int, linear block.Sum) *apiError {
			if count != int64(n) {
				return validation(reasonInvalidParameter, fmt.Sprintf(
					"x-amz-ChangedBlocksCount is %d but %d blocks were written.", count, n))
			}
			c := h.Get("X-Amz-Checksum")
			if c == "" {
				return nil
			}
			if alg := h.Get("X-Amz-Checksum-Algorithm"); alg != "SHA256" {
				return validation(reasonInvalidParameter, "The checksum algorithm '"+alg+"' is not supported; use SHA256.")
			}
			if m := h.Get("X-Amz-Checksum-Aggregation-Method"); m != "LINEAR" {
				return validation(reasonInvalidParameter, "The checksum aggregation method '"+m+"' is not supported; use LINEAR.")
			}
			want, err := block.ParseBase64(c)
			if err != nil {
				return validation(reasonInvalidParameter, "The checksum is not a base64 SHA-256 digest.")
			}
			if want != linear {
				return validation(reasonInvalidParameter, "The aggregated checksum "+want.Base64()+" does not match the written blocks ("+linear.Base64()+").")
			}
			return nil
		})
		if e != nil {
			c.fail(e)
			return
		}
		snap.completed.Store(true)
	}
	c.done(OutcomeOK)
	writeJSON(w, http.StatusAccepted, []byte(`{"Status":"completed"}`))
}
