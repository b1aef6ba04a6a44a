package emulator

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ebsimager/ebsimager/internal/block"
)

// Server is an EBS direct API endpoint. It is an http.Handler; Listen also
// serves it on a loopback port.
type Server struct {
	o    Options
	seed uint64
	now  func() time.Time

	reg    registry
	seal   *sealer
	faults atomic.Pointer[faultState]
	lim    limiter
	ctr    counters
	bufs   sync.Pool // *[]byte of block.Size

	latency, jitter atomic.Int64 // time.Duration
	reqSeq          atomic.Uint64
	listSeq         atomic.Uint64
	snapSeq         atomic.Uint64

	// ec2mu guards the EC2 side's mutable state: the instances and
	// volumes, and each snapshot's fields that EC2 actions change.
	ec2mu sync.Mutex
	ec2   ec2Store

	mu      sync.Mutex
	srv     *http.Server
	closers []interface{ Close() error }
}

// New returns a Server with no snapshots.
func New(o Options) *Server {
	if o.BlockTokenTTL <= 0 {
		o.BlockTokenTTL = DefaultBlockTokenTTL
	}
	if o.PageTokenTTL <= 0 {
		o.PageTokenTTL = DefaultPageTokenTTL
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.ThrottleAs == "" {
		o.ThrottleAs = RequestThrottled
	}
	s := &Server{
		o:    o,
		seed: uint64(o.Seed),
		now:  o.Now,
		reg:  registry{snaps: make(map[string]*snapshot), tokens: make(map[string]*snapshot)},
		seal: newSealer(),
		ctr:  counters{reqs: make(map[opOutcome]int64), blocks: make(map[blockKey]*blockStat)},
		ec2:  ec2Store{instances: make(map[string]*instance), volumes: make(map[string]*volume)},
	}
	s.bufs.New = func() any {
		b := make([]byte, block.Size)
		return &b
	}
	s.faults.Store(newFaultState(o.Faults))
	s.lim.set(o.GetRatePerSnapshot, o.GetRatePerAccount, o.ListRate, o.GetBurst, o.ListBurst)
	s.latency.Store(int64(o.Latency))
	s.jitter.Store(int64(o.Jitter))
	return s
}

// AddRawImage serves the disk image at path as snapshot id.
func (s *Server) AddRawImage(id, path string, o RawOptions) error {
	if err := block.CheckSnapshotID(id); err != nil {
		return err
	}
	snap := &snapshot{id: id, root: id}
	var parent *snapshot
	if o.Parent != "" {
		if parent = s.reg.get(o.Parent); parent == nil || !parent.completed.Load() {
			return fmt.Errorf("raw image %s: parent %s: no such completed snapshot", id, o.Parent)
		}
	}
	r, vol, err := openRaw(path, o)
	if err != nil {
		return fmt.Errorf("raw image %s: %w", id, err)
	}
	snap.src, snap.volumeGiB = r, vol
	if parent != nil {
		snap.parent, snap.root, snap.depth = parent.id, parent.root, parent.depth+1
	}
	snap.completed.Store(true)
	if err := s.reg.add(snap); err != nil {
		r.Close()
		return err
	}
	s.mu.Lock()
	s.closers = append(s.closers, r)
	s.mu.Unlock()
	return nil
}

// AddSynthetic adds a generated snapshot from "snap-ID=SIZE[,FRACTION[,SEED]]"
// (see ParseSyntheticSpec).
func (s *Server) AddSynthetic(spec string) error {
	sp, err := ParseSyntheticSpec(spec)
	if err != nil {
		return err
	}
	return s.AddSyntheticSpec(sp)
}

// AddSyntheticSpec adds a generated snapshot.
func (s *Server) AddSyntheticSpec(sp SyntheticSpec) error {
	if err := block.CheckSnapshotID(sp.ID); err != nil {
		return err
	}
	if sp.VolumeGiB <= 0 || sp.VolumeGiB > MaxVolumeGiB {
		return fmt.Errorf("synthetic %s: volume size %d GiB: want 1 to %d", sp.ID, sp.VolumeGiB, MaxVolumeGiB)
	}
	if !(sp.Fraction >= 0 && sp.Fraction <= 1) {
		return fmt.Errorf("synthetic %s: fraction %v: want a number in [0, 1]", sp.ID, sp.Fraction)
	}
	src := &syntheticSource{slots: block.Slots(sp.VolumeGiB), seed: uint64(sp.Seed), thr: threshold(sp.Fraction)}
	snap := &snapshot{id: sp.ID, volumeGiB: sp.VolumeGiB, root: sp.ID, src: src}
	snap.completed.Store(true)
	return s.reg.add(snap)
}

// AddChild adds a synthetic child from
// "snap-CHILD=child-of:snap-PARENT,FRACTION[,SEED]" (see ParseChildSpec).
func (s *Server) AddChild(spec string) error {
	c, err := ParseChildSpec(spec)
	if err != nil {
		return err
	}
	return s.AddChildSpec(c)
}

// AddChildSpec adds a synthetic child of an existing completed snapshot.
func (s *Server) AddChildSpec(c ChildSpec) error {
	if err := block.CheckSnapshotID(c.ID); err != nil {
		return err
	}
	if !(c.Fraction >= 0 && c.Fraction <= 1) {
		return fmt.Errorf("child %s: fraction %v: want a number in [0, 1]", c.ID, c.Fraction)
	}
	parent := s.reg.get(c.Parent)
	if parent == nil || !parent.completed.Load() {
		return fmt.Errorf("child %s: parent %s: no such completed snapshot", c.ID, c.Parent)
	}
	depth := parent.depth + 1
	src := &childSource{
		parent:  parent.src,
		slots:   parent.slots(),
		seed:    uint64(c.Seed),
		content: hash4(domContent, uint64(c.Seed), uint64(depth), 1),
		thr:     threshold(c.Fraction),
	}
	snap := &snapshot{id: c.ID, volumeGiB: parent.volumeGiB, parent: parent.id, root: parent.root,
		depth: depth, src: src}
	snap.completed.Store(true)
	return s.reg.add(snap)
}

// SetFaults replaces the injected faults; safe while serving.
func (s *Server) SetFaults(f Faults) { s.faults.Store(newFaultState(f)) }

// SetRates replaces the quotas (0 = unlimited) and refills the buckets,
// whose depths, when given as a time (Burst.Time), follow the new rates;
// safe while serving.
func (s *Server) SetRates(perSnapshot, perAccount, list float64) {
	s.lim.set(perSnapshot, perAccount, list, s.o.GetBurst, s.o.ListBurst)
}

// SetLatency replaces the added latency and jitter; safe while serving.
func (s *Server) SetLatency(latency, jitter time.Duration) {
	s.latency.Store(int64(latency))
	s.jitter.Store(int64(jitter))
}

// Counters returns a copy of the request counters.
func (s *Server) Counters() Counters { return s.ctr.snapshot() }

// ResetCounters zeroes the counters. Fault decisions keep counting
// attempts, so a reset does not replay the same faults.
func (s *Server) ResetCounters() { s.ctr.reset() }

// BlockGets returns how many GetSnapshotBlock requests named this block
// since the last reset, whatever their outcome. It needs
// Options.TrackBlocks (or an active fault fraction); otherwise it is 0.
func (s *Server) BlockGets(snapshot string, index int64) int {
	return int(s.ctr.gets(blockKey{snapshot, index}))
}

// Listen serves on addr (for example "127.0.0.1:0") and returns the
// endpoint URL.
func (s *Server) Listen(addr string) (string, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", err
	}
	srv := &http.Server{
		Handler:           s,
		ReadHeaderTimeout: 30 * time.Second, // generous: only guards against stuck peers
		IdleTimeout:       2 * time.Minute,  // keep-alive connections live this long unused
	}
	s.mu.Lock()
	if s.srv != nil {
		s.mu.Unlock()
		ln.Close()
		return "", errors.New("emulator already listening")
	}
	s.srv = srv
	s.mu.Unlock()
	go srv.Serve(ln) //nolint:errcheck // returns ErrServerClosed on Close
	return "http://" + ln.Addr().String(), nil
}

// Close stops serving, dropping open connections, and closes the image
// files.
func (s *Server) Close() error {
	s.mu.Lock()
	srv, closers := s.srv, s.closers
	s.srv, s.closers = nil, nil
	s.mu.Unlock()
	var errs []error
	if srv != nil {
		errs = append(errs, srv.Close())
	}
	for _, c := range closers {
		errs = append(errs, c.Close())
	}
	return errors.Join(errs...)
}

// ServeHTTP answers one EBS direct API request, or one EC2 or STS Query
// request (see serveQuery).
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	n := s.reqSeq.Add(1)
	w.Header().Set("X-Amzn-Requestid", s.requestID(n))
	s.delay(r.Context(), n)
	if isQuery(r) {
		s.serveQuery(w, r, w.Header().Get("X-Amzn-Requestid"), start)
		return
	}

	op, id, idx := route(r)
	c := &call{s: s, w: w, op: op}
	if e := checkAuth(r); e != nil {
		c.fail(e)
	} else {
		switch op {
		case OpListSnapshotBlocks:
			s.listBlocks(c, w, r, id)
		case OpListChangedBlocks:
			s.listChanged(c, w, r, id)
		case OpGetSnapshotBlock:
			s.getBlock(c, w, r, id, idx)
		case OpStartSnapshot:
			s.startSnapshot(c, w, r)
		case OpPutSnapshotBlock:
			s.putBlock(c, w, r, id, idx)
		case OpCompleteSnapshot:
			s.completeSnapshot(c, w, r, id)
		default:
			c.fail(&apiError{status: http.StatusNotFound, typ: errUnknownOp,
				message: "no EBS direct API operation for " + r.Method + " " + r.URL.Path})
		}
	}
	if s.o.Logf != nil {
		target := id
		if idx != "" {
			target += "/" + idx
		}
		s.o.Logf("%s %s %s: %s in %s", r.Method, op, target, c.outcome, time.Since(start).Round(time.Microsecond))
	}
}

// call is one request being answered.
type call struct {
	s       *Server
	w       http.ResponseWriter
	op      string
	outcome string
}

// done counts the request's outcome. Handlers call it before they write
// the response, so a client that has its answer finds it counted.
func (c *call) done(outcome string) {
	c.outcome = outcome
	c.s.ctr.add(c.op, outcome)
}

// fail counts and sends e.
func (c *call) fail(e *apiError) {
	c.done(e.outcome())
	writeError(c.w, e)
}

// route maps a request to an operation and its path labels.
func route(r *http.Request) (op, id, idx string) {
	p := strings.Split(strings.TrimPrefix(r.URL.Path, "/"), "/")
	if len(p) == 0 || p[0] != "snapshots" {
		return OpUnknown, "", ""
	}
	switch {
	case len(p) == 1 && r.Method == http.MethodPost:
		return OpStartSnapshot, "", ""
	case len(p) == 3 && p[1] == "completion" && r.Method == http.MethodPost:
		return OpCompleteSnapshot, p[2], ""
	case len(p) == 3 && p[2] == "blocks" && r.Method == http.MethodGet:
		return OpListSnapshotBlocks, p[1], ""
	case len(p) == 3 && p[2] == "changedblocks" && r.Method == http.MethodGet:
		return OpListChangedBlocks, p[1], ""
	case len(p) == 4 && p[2] == "blocks" && r.Method == http.MethodGet:
		return OpGetSnapshotBlock, p[1], p[3]
	case len(p) == 4 && p[2] == "blocks" && r.Method == http.MethodPut:
		return OpPutSnapshotBlock, p[1], p[3]
	}
	return OpUnknown, "", ""
}

// sigV4Scope reads the credential scope's service from a SigV4
// Authorization header. missing reports an absent header; otherwise a
// non-empty problem says what is malformed. The signature itself is not
// verified: the emulator knows no secrets.
func sigV4Scope(h string) (service string, missing bool, problem string) {
	const scheme = "AWS4-HMAC-SHA256 " // SigV4's algorithm name
	if h == "" {
		return "", true, ""
	}
	rest, ok := strings.CutPrefix(h, scheme)
	if !ok {
		return "", false, "Authorization header requires the AWS4-HMAC-SHA256 scheme"
	}
	var cred string
	var signed, sig bool
	for _, f := range strings.Split(rest, ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(f), "=")
		switch k {
		case "Credential":
			cred = v
		case "SignedHeaders":
			signed = v != ""
		case "Signature":
			sig = v != ""
		}
	}
	// Credential=AKID/DATE/REGION/SERVICE/aws4_request
	scope := strings.Split(cred, "/")
	if len(scope) != 5 || !signed || !sig || scope[4] != "aws4_request" {
		return "", false, "Authorization header requires Credential, SignedHeaders and Signature"
	}
	return scope[3], false, ""
}

// checkAuth wants a SigV4 Authorization header for service ebs.
func checkAuth(r *http.Request) *apiError {
	service, missing, problem := sigV4Scope(r.Header.Get("Authorization"))
	switch {
	case missing:
		return &apiError{status: http.StatusForbidden, typ: errMissingAuth, message: "Missing Authentication Token"}
	case problem != "":
		return &apiError{status: http.StatusForbidden, typ: errIncompleteSig, message: problem}
	case service != "ebs":
		return &apiError{status: http.StatusForbidden, typ: errIncompleteSig,
			message: "Credential should be scoped to correct service: 'ebs'"}
	}
	return nil
}

// delay waits Latency plus a jitter drawn from (seed, request number).
func (s *Server) delay(ctx context.Context, n uint64) {
	d := time.Duration(s.latency.Load())
	if j := time.Duration(s.jitter.Load()); j > 0 {
		d += time.Duration(unit(hash4(domJitter, s.seed, n, 0)) * float64(j))
	}
	if d <= 0 {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

// requestID formats a UUID-shaped id from (seed, request number).
func (s *Server) requestID(n uint64) string {
	a := hash4(domRequestID, s.seed, n, 0)
	b := hash4(domRequestID, s.seed, n, 1)
	return fmt.Sprintf("%08x-%04x-%04x-%04x-%012x", a>>32, (a>>16)&0xffff, a&0xffff, b>>48, b&0xffffffffffff)
}

// Source is one snapshot to add: exactly one of RawPath, Synthetic and
// Child is set; or an instance (ID and Instance, its volumes) or a volume
// attached to none (Volume), which AddSources adds after the snapshots.
type Source struct {
	ID         string
	RawPath    string
	Raw        RawOptions
	Synthetic  *SyntheticSpec
	Child      *ChildSpec
	Instance   []VolumeSpec
	Volume     *VolumeSpec
	parentHint string
}

// AddSources adds snapshots in an order that puts every parent (a raw
// image's RawOptions.Parent, a child's Parent) before its children,
// whatever order they are given in.
func (s *Server) AddSources(srcs []Source) error {
	pending := make([]Source, 0, len(srcs))
	defined := make(map[string]bool)
	var ec2 []Source
	for _, src := range srcs {
		switch {
		case src.Instance != nil || src.Volume != nil:
			ec2 = append(ec2, src)
			continue
		case src.RawPath != "" && src.Synthetic == nil && src.Child == nil:
			src.parentHint = src.Raw.Parent
		case src.Synthetic != nil && src.RawPath == "" && src.Child == nil:
			src.ID = src.Synthetic.ID
		case src.Child != nil && src.RawPath == "" && src.Synthetic == nil:
			src.ID, src.parentHint = src.Child.ID, src.Child.Parent
		default:
			return fmt.Errorf("snapshot %s: want exactly one of a raw image, a synthetic spec and a child spec", src.ID)
		}
		if defined[src.ID] {
			return fmt.Errorf("snapshot %s is defined twice", src.ID)
		}
		defined[src.ID] = true
		pending = append(pending, src)
	}
	for len(pending) > 0 {
		var later []Source
		for _, src := range pending {
			if src.parentHint != "" && s.reg.get(src.parentHint) == nil {
				later = append(later, src)
				continue
			}
			var err error
			switch {
			case src.RawPath != "":
				err = s.AddRawImage(src.ID, src.RawPath, src.Raw)
			case src.Synthetic != nil:
				err = s.AddSyntheticSpec(*src.Synthetic)
			default:
				err = s.AddChildSpec(*src.Child)
			}
			if err != nil {
				return err
			}
		}
		if len(later) == len(pending) {
			return fmt.Errorf("snapshot %s: parent %s is not defined (or the parents form a cycle)", later[0].ID, later[0].parentHint)
		}
		pending = later
	}
	for _, src := range ec2 {
		var err error
		if src.Volume != nil {
			err = s.AddVolume(*src.Volume)
		} else {
			err = s.AddInstance(src.ID, src.Instance)
		}
		if err != nil {
			return err
		}
	}
	return nil
}
