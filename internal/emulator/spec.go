package emulator

import (
	"fmt"
	"io"
	"maps"
	"math"
	"slices"
	"strings"
	"sync"

	"github.com/ebsimager/ebsimager/internal/block"
)

// Spec describes a server in the words of the emulate command's flags:
// the snapshots, block faults, denials and metadata as text, which Parse
// reads and checks. Each field is named by its flag.
type Spec struct {
	Raws           []string // --snapshot snap-ID=PATH
	Parents        []string // --parent snap-CHILD=snap-PARENT
	ListZeroBlocks bool     // --list-zero-blocks
	Synthetics     []string // --synthetic snap-ID=SIZE[,FRACTION[,SEED]]
	Children       []string // --child snap-C=child-of:snap-P,FRACTION[,SEED]
	FailBlocks     []string // --fail-block snap-ID:INDEX=KIND
	Denies         []string // --deny snap-ID[=REASON]
	Metas          []string // --snapshot-meta snap-ID:FIELD=VALUE
	GetBurst       string   // --get-burst
	ListBurst      string   // --list-burst
	Instances      []string // --instance i-ID=DEVICE:PATH[,DEVICE:PATH…]
	Volumes        []string // --volume vol-ID=PATH
	VolumeMetas    []string // --volume-meta vol-ID:FIELD=VALUE
}

// Parse reads s into o, whose plain fields (rates, fractions, latency)
// the flags set directly, checks the whole of o, and returns the
// snapshots to add. Every error is a bad flag value, named by its flag.
func (s Spec) Parse(o *Options) ([]Source, error) {
	srcs, err := s.sources()
	if err != nil {
		return nil, err
	}
	for _, v := range s.FailBlocks {
		bf, err := ParseBlockFault(v)
		if err != nil {
			return nil, err
		}
		o.Faults.FailBlocks = append(o.Faults.FailBlocks, bf)
	}
	for _, v := range s.Denies {
		id, reason, err := ParseDeny(v)
		if err != nil {
			return nil, err
		}
		if o.Faults.Deny == nil {
			o.Faults.Deny = make(map[string]string)
		}
		o.Faults.Deny[id] = reason
	}
	for _, v := range s.Metas {
		if o.SnapshotMeta == nil {
			o.SnapshotMeta = make(map[string]SnapshotMeta)
		}
		if err := ParseSnapshotMeta(v, o.SnapshotMeta); err != nil {
			return nil, err
		}
	}
	if err := o.Faults.Validate(); err != nil {
		return nil, err
	}
	for _, r := range []struct {
		name string
		v    float64
	}{{"--get-rate-per-snapshot", o.GetRatePerSnapshot}, {"--get-rate-per-account", o.GetRatePerAccount}, {"--list-rate", o.ListRate}} {
		if math.IsNaN(r.v) || math.IsInf(r.v, 0) || r.v < 0 {
			return nil, fmt.Errorf("%s %v: want a finite number, 0 or more", r.name, r.v)
		}
	}
	if o.GetBurst, err = ParseBurst(s.GetBurst); err != nil {
		return nil, fmt.Errorf("--get-burst: %w", err)
	}
	if o.ListBurst, err = ParseBurst(s.ListBurst); err != nil {
		return nil, fmt.Errorf("--list-burst: %w", err)
	}
	if o.ThrottleAs != RequestThrottled && o.ThrottleAs != Throttling {
		return nil, fmt.Errorf("--throttle-as %q: want %s or %s", o.ThrottleAs, RequestThrottled, Throttling)
	}
	if err := o.checkEC2(); err != nil {
		return nil, err
	}
	vols, err := s.volumes()
	if err != nil {
		return nil, err
	}
	return append(srcs, vols...), nil
}

// checkEC2 checks the EC2 side's options, naming their flags.
func (o *Options) checkEC2() error {
	for _, f := range []struct {
		name string
		v    float64
	}{{"--archive-fraction", o.ArchiveFraction}, {"--public-fraction", o.PublicFraction}, {"--kms-deny-fraction", o.KMSDenyFraction}} {
		if !(f.v >= 0 && f.v <= 1) {
			return fmt.Errorf("%s %v: want a number in [0, 1]", f.name, f.v)
		}
	}
	if o.SnapshotDelay < 0 {
		return fmt.Errorf("--snapshot-delay %v: want 0 or more", o.SnapshotDelay)
	}
	for _, a := range o.DenyEC2 {
		if ec2Actions[a] == nil {
			return fmt.Errorf("--deny-ec2 %q: not an EC2 action the emulator serves (want one of %s)", a, strings.Join(EC2Actions(), ", "))
		}
	}
	return nil
}

// EC2Actions lists the EC2 actions the server answers, sorted.
func EC2Actions() []string {
	out := make([]string, 0, len(ec2Actions))
	for a := range ec2Actions {
		out = append(out, a)
	}
	slices.Sort(out)
	return out
}

// volumes reads the instance and volume flags, with their metadata.
func (s Spec) volumes() ([]Source, error) {
	metas := map[string]VolumeSpec{}
	for _, v := range s.VolumeMetas {
		if err := ParseVolumeMeta(v, metas); err != nil {
			return nil, fmt.Errorf("--volume-meta: %w", err)
		}
	}
	apply := func(v *VolumeSpec) {
		if m, ok := metas[v.ID]; ok {
			v.Encrypted, v.KMSKeyID, v.Tags = m.Encrypted, m.KMSKeyID, m.Tags
			delete(metas, v.ID)
		}
	}
	var srcs []Source
	for _, spec := range s.Instances {
		id, vols, err := ParseInstanceSpec(spec)
		if err != nil {
			return nil, fmt.Errorf("--instance: %w", err)
		}
		for k := range vols {
			vols[k].ID = VolumeID(id, vols[k].Device)
			apply(&vols[k])
		}
		srcs = append(srcs, Source{ID: id, Instance: vols})
	}
	for _, spec := range s.Volumes {
		v, err := ParseVolumeSpec(spec)
		if err != nil {
			return nil, fmt.Errorf("--volume: %w", err)
		}
		apply(&v)
		srcs = append(srcs, Source{ID: v.ID, Volume: &v})
	}
	if len(metas) > 0 {
		left := slices.Sorted(maps.Keys(metas))
		return nil, fmt.Errorf("--volume-meta %s: no such --volume, nor a volume of an --instance", left[0])
	}
	return srcs, nil
}

// sources reads the snapshot flags.
func (s Spec) sources() ([]Source, error) {
	parentOf := make(map[string]string)
	for _, p := range s.Parents {
		child, parent, ok := strings.Cut(p, "=")
		if !ok || !block.ValidSnapshotID(child) || !block.ValidSnapshotID(parent) {
			return nil, fmt.Errorf("--parent %q: want snap-CHILD=snap-PARENT", p)
		}
		parentOf[child] = parent
	}
	var srcs []Source
	for _, r := range s.Raws {
		id, path, ok := strings.Cut(r, "=")
		if !ok || path == "" {
			return nil, fmt.Errorf("--snapshot %q: want snap-ID=PATH", r)
		}
		if err := block.CheckSnapshotID(id); err != nil {
			return nil, fmt.Errorf("--snapshot %q: %w", r, err)
		}
		srcs = append(srcs, Source{ID: id, RawPath: path, Raw: RawOptions{ListZeroBlocks: s.ListZeroBlocks, Parent: parentOf[id]}})
		delete(parentOf, id)
	}
	if len(parentOf) > 0 {
		children := make([]string, 0, len(parentOf))
		for c := range parentOf {
			children = append(children, c)
		}
		slices.Sort(children)
		return nil, fmt.Errorf("--parent %s: not a --snapshot (a generated child names its parent with --child)", children[0])
	}
	for _, v := range s.Synthetics {
		sp, err := ParseSyntheticSpec(v)
		if err != nil {
			return nil, err
		}
		srcs = append(srcs, Source{Synthetic: &sp})
	}
	for _, v := range s.Children {
		c, err := ParseChildSpec(v)
		if err != nil {
			return nil, err
		}
		srcs = append(srcs, Source{Child: &c})
	}
	return srcs, nil
}

// LineLog returns an Options.Logf that writes each line to w after
// prefix, one line at a time however many requests log at once.
func LineLog(w io.Writer, prefix string) func(format string, args ...any) {
	var mu sync.Mutex
	return func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		fmt.Fprintf(w, prefix+format+"\n", args...)
	}
}
