package main

import (
	"context"
	"fmt"
	"net"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/ebsimager/ebsimager/internal/emulator"
)

// emulateOptions are the emulate command's flags.
type emulateOptions struct {
	o                emulator.Options
	spec             emulator.Spec
	listen           string
	allowRemote, log bool
}

// emulateHelp is the emulate command's long help.
func emulateHelp() string {
	return `Serve raw disk images and generated snapshots over the EBS direct APIs on a
loopback port, for testing ebsimager or any other EBS client without AWS.
It prints one ready line with the endpoint and the environment to export,
serves until interrupted, then prints its request counters.

Snapshots:
  --snapshot snap-ID=PATH       a raw disk image, read in place; its non-zero
                                512 KiB blocks are listed (--list-zero-blocks
                                lists them all)
  --parent snap-CHILD=snap-P    relate two snapshots for ListChangedBlocks;
                                changes between raw images are found by content
  --synthetic snap-ID=SIZE[,FRACTION[,SEED]]
                                generated: SIZE in whole GiB or TiB (up to
                                64TiB), FRACTION of the slots listed (default 1),
                                SEED (default 1); nothing is stored
  --child snap-C=child-of:snap-P,FRACTION[,SEED]
                                a generated child differing from snap-P in
                                FRACTION of the slots: changed, removed or added

The write API (StartSnapshot, PutSnapshotBlock, CompleteSnapshot) also
works; those snapshots live in memory.

Quotas are token buckets: one per snapshot and one for the account for
GetSnapshotBlock, one per List operation. A bucket of depth D holds at most
D tokens, starts full and refills at the quota's rate, continuously; a
request is admitted if a whole token is there, and takes it; a throttled
request takes none. --get-burst and --list-burst set D as a number of
requests (1 or more; 1 is no burst: requests are admitted at most one per
1/rate, perfectly smooth) or as a time at the quota's rate: 100ms is a
tenth of a second's worth, 50 requests at 500 blocks/s, and a time worth
less than one request counts as one. The default is 1s.

Faults are fractions of requests in [0, 1], drawn deterministically from
--seed. --fail-block snap-ID:INDEX=KIND makes one block always fail, KIND
one of:
` + wrapWords(strings.Join(emulator.FaultKinds, ", ")+".", "  ", 78) + `
--deny snap-ID[=REASON] refuses a snapshot with AccessDeniedException,
REASON UNAUTHORIZED_ACCOUNT (default) or DEPENDENCY_ACCESS_DENIED.

The same endpoint answers STS GetCallerIdentity and an EC2 side (API
2016-11-15): DescribeSnapshots, DescribeSnapshotAttribute, DescribeInstances,
DescribeVolumes, CreateSnapshots, CreateSnapshot, CopySnapshot,
ModifySnapshotAttribute, LockSnapshot, DescribeLockedSnapshots, CreateTags
and DeleteSnapshot. --snapshot-meta snap-ID:FIELD=VALUE sets what
DescribeSnapshots reports of a snapshot above, FIELD one of volume-id, owner,
start-time, encrypted, kms-key, description, tag:KEY, and for the pre-flight
checks storage-tier (standard or archive), public (true or false),
outpost-arn and state (completed, pending or error): the EBS direct APIs
refuse a snapshot that is not completed, archived, public or on an Outpost
with ValidationException INVALID_SNAPSHOT_ID.

Instances and volumes:
  --instance i-ID=DEVICE:PATH[,DEVICE:PATH...]
                                a running instance; the first device is its
                                root; PATH is a raw image or
                                synthetic:SIZE[,FRACTION[,SEED]]; volume ids
                                are vol-0 and 16 hex digits hashed from the
                                instance id and device (DescribeInstances
                                lists them)
  --volume vol-ID=PATH          a volume attached to no instance
  --volume-meta vol-ID:FIELD=VALUE
                                FIELD encrypted (true: under the AWS managed
                                key), kms-key or tag:KEY
A snapshot made through EC2 holds the volume's content when it was made (a
raw image's non-zero blocks are copied then), stays pending for
--snapshot-delay, and is the child of the volume's previous snapshot, for
ListChangedBlocks. --archive-fraction, --public-fraction and
--kms-deny-fraction make that share of them archived, public, or refused
with AccessDeniedException DEPENDENCY_ACCESS_DENIED, drawn from --seed.
Sharing a snapshot encrypted under the AWS managed key fails with
OperationNotPermitted, as in EC2. --deny-ec2 ACTION answers an EC2 action
with UnauthorizedOperation; --deny-describe-snapshots and
--deny-get-caller-identity refuse those calls.`
}

func newEmulateCommand() *cobra.Command {
	e := &emulateOptions{}
	cmd := &cobra.Command{
		Use:   "emulate",
		Short: "Serve snapshots over a local EBS direct API emulator",
		Long:  emulateHelp(),
		Example: `  ebsimager emulate --snapshot snap-0a=disk.raw --synthetic snap-0b=8GiB,0.5,7 \
    --child snap-0c=child-of:snap-0b,0.1 --latency 20ms --fault-server-error 0.01
  ebsimager emulate --instance i-0123456789abcdef0=/dev/xvda:root.raw,/dev/xvdb:data.raw \
    --snapshot-delay 2s`,
		RunE: func(cmd *cobra.Command, _ []string) error {
			srcs, err := e.spec.Parse(&e.o)
			if err != nil {
				return usageError{err}
			}
			if err := checkLoopback(e.listen, e.allowRemote); err != nil {
				return err
			}
			if e.log {
				e.o.Logf = emulator.LineLog(cmd.ErrOrStderr(), "ebsimager emulate: ")
			}
			return runEmulate(cmd, e.o, srcs, e.listen)
		},
	}
	e.addFlags(cmd.Flags())
	return cmd
}

func (e *emulateOptions) addFlags(f *pflag.FlagSet) {
	f.StringVar(&e.listen, "listen", "127.0.0.1:0", "address to listen on (port 0 picks a free one)")
	f.BoolVar(&e.allowRemote, "allow-remote", false, "allow a non-loopback --listen address (the emulator checks no signatures)")
	f.StringArrayVar(&e.spec.Raws, "snapshot", nil, "serve a raw disk image: snap-ID=PATH (repeatable)")
	f.StringArrayVar(&e.spec.Parents, "parent", nil, "make a --snapshot the child of another snapshot: snap-CHILD=snap-PARENT (repeatable)")
	f.BoolVar(&e.spec.ListZeroBlocks, "list-zero-blocks", false, "list the all-zero blocks of raw images too")
	f.StringArrayVar(&e.spec.Synthetics, "synthetic", nil, "serve a generated snapshot: snap-ID=SIZE[,FRACTION[,SEED]] (repeatable)")
	f.StringArrayVar(&e.spec.Children, "child", nil, "serve a generated child: snap-C=child-of:snap-P,FRACTION[,SEED] (repeatable)")
	f.Int64Var(&e.o.Seed, "seed", 1, "seed for faults, jitter and minted snapshot ids")
	f.DurationVar(&e.o.Latency, "latency", 0, "latency added to every request")
	f.DurationVar(&e.o.Jitter, "jitter", 0, "uniform random extra latency, up to this much")
	f.Float64Var(&e.o.GetRatePerSnapshot, "get-rate-per-snapshot", 0, "GetSnapshotBlock quota per snapshot, blocks/s (0: none; AWS: 1000)")
	f.Float64Var(&e.o.GetRatePerAccount, "get-rate-per-account", 0, "GetSnapshotBlock quota per account, blocks/s (0: none; AWS: 1000)")
	f.Float64Var(&e.o.ListRate, "list-rate", 0, "quota for each List operation, requests/s (0: none; AWS: 50)")
	f.StringVar(&e.spec.GetBurst, "get-burst", emulator.DefaultBurst.String(), "GetSnapshotBlock bucket depth: requests (1 or more; 1: no burst) or a time at the quota (100ms)")
	f.StringVar(&e.spec.ListBurst, "list-burst", emulator.DefaultBurst.String(), "List bucket depth: requests (1 or more; 1: no burst) or a time at the quota")
	f.StringVar(&e.o.ThrottleAs, "throttle-as", emulator.RequestThrottled, "error for throttled requests: RequestThrottledException (400) or ThrottlingException (429)")
	f.Float64Var(&e.o.Faults.ServerError, "fault-server-error", 0, "fraction of Gets answered 500/503")
	f.Float64Var(&e.o.Faults.Throttle, "fault-throttle", 0, "fraction of Gets throttled")
	f.Float64Var(&e.o.Faults.Drop, "fault-drop", 0, "fraction of Gets whose connection drops mid-body")
	f.Float64Var(&e.o.Faults.Truncate, "fault-truncate", 0, "fraction of Gets with a truncated body")
	f.Float64Var(&e.o.Faults.BadChecksum, "fault-bad-checksum", 0, "fraction of Gets with a wrong x-amz-Checksum")
	f.Float64Var(&e.o.Faults.BadLength, "fault-bad-length", 0, "fraction of Gets with a wrong x-amz-Data-Length")
	f.Float64Var(&e.o.Faults.Corrupt, "fault-corrupt", 0, "fraction of Gets with one body byte flipped")
	f.Float64Var(&e.o.Faults.ListServerError, "fault-list-server-error", 0, "fraction of List requests answered 500")
	f.Float64Var(&e.o.Faults.ListThrottle, "fault-list-throttle", 0, "fraction of List requests throttled")
	f.StringArrayVar(&e.spec.FailBlocks, "fail-block", nil, "make a block always fail: snap-ID:INDEX=KIND (repeatable)")
	f.StringArrayVar(&e.spec.Denies, "deny", nil, "deny access to a snapshot: snap-ID[=REASON] (repeatable)")
	f.StringArrayVar(&e.spec.Metas, "snapshot-meta", nil, "what DescribeSnapshots reports: snap-ID:FIELD=VALUE (repeatable)")
	f.BoolVar(&e.o.DenyDescribeSnapshots, "deny-describe-snapshots", false, "answer EC2 DescribeSnapshots with UnauthorizedOperation")
	f.BoolVar(&e.o.DenyGetCallerIdentity, "deny-get-caller-identity", false, "answer STS GetCallerIdentity with AccessDenied")
	f.DurationVar(&e.o.BlockTokenTTL, "block-token-ttl", emulator.DefaultBlockTokenTTL, "block token lifetime")
	f.DurationVar(&e.o.PageTokenTTL, "page-token-ttl", emulator.DefaultPageTokenTTL, "NextToken lifetime")
	f.BoolVar(&e.o.InvalidateOnRelist, "invalidate-on-relist", false, "a new listing of a snapshot voids the block tokens of older ones")
	f.StringArrayVar(&e.spec.Instances, "instance", nil, "serve a running instance: i-ID=DEVICE:PATH[,DEVICE:PATH…], the first its root device; PATH a raw image or synthetic:SIZE[,FRACTION[,SEED]] (repeatable)")
	f.StringArrayVar(&e.spec.Volumes, "volume", nil, "serve a volume attached to no instance: vol-ID=PATH (repeatable)")
	f.StringArrayVar(&e.spec.VolumeMetas, "volume-meta", nil, "a volume's encryption or tags: vol-ID:FIELD=VALUE, FIELD encrypted, kms-key or tag:KEY (repeatable)")
	f.DurationVar(&e.o.SnapshotDelay, "snapshot-delay", 0, "how long a snapshot made through EC2 stays pending (0: completed from the next request)")
	f.Float64Var(&e.o.ArchiveFraction, "archive-fraction", 0, "fraction of snapshots made through EC2 that are archived")
	f.Float64Var(&e.o.PublicFraction, "public-fraction", 0, "fraction of snapshots made through EC2 that are public")
	f.Float64Var(&e.o.KMSDenyFraction, "kms-deny-fraction", 0, "fraction of snapshots made through EC2 whose KMS key the caller may not use")
	f.StringArrayVar(&e.o.DenyEC2, "deny-ec2", nil, "answer an EC2 action with UnauthorizedOperation, like CreateSnapshots (repeatable)")
	f.BoolVar(&e.log, "log", false, "log every request to stderr")
}

// checkLoopback refuses a non-loopback listen address unless allowed.
func checkLoopback(addr string, allow bool) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return usagef("--listen %q: %v", addr, err)
	}
	if ip := net.ParseIP(host); allow || host == "localhost" || (ip != nil && ip.IsLoopback()) {
		return nil
	}
	return withHint(usagef("--listen %q is not a loopback address", addr),
		"the emulator checks no signatures; pass --allow-remote to listen there anyway")
}

// runEmulate serves until the command's context ends, then prints the
// counters.
func runEmulate(cmd *cobra.Command, o emulator.Options, srcs []emulator.Source, listen string) error {
	ctx := cmd.Context()
	if ctx == nil {
		ctx = context.Background()
	}
	srv := emulator.New(o)
	defer srv.Close()
	if err := srv.AddSources(srcs); err != nil {
		return err
	}
	endpoint, err := srv.Listen(listen)
	if err != nil {
		return err
	}
	out := cmd.OutOrStdout()
	fmt.Fprintf(out, "ebsimager emulate: ready endpoint=%s; export AWS_ENDPOINT_URL=%s AWS_REGION=us-east-1 AWS_ACCESS_KEY_ID=emulator AWS_SECRET_ACCESS_KEY=emulator\n",
		endpoint, endpoint)
	<-ctx.Done()
	err = srv.Close()
	fmt.Fprintf(out, "ebsimager emulate: stopped; requests served:\n%s", srv.Counters())
	return err
}

// wrapWords breaks s into lines of at most width characters, each
// starting with indent.
func wrapWords(s, indent string, width int) string {
	var b strings.Builder
	line := indent
	for _, w := range strings.Fields(s) {
		if len(line) > len(indent) && len(line)+1+len(w) > width {
			b.WriteString(line + "\n")
			line = indent
		}
		if len(line) > len(indent) {
			line += " "
		}
		line += w
	}
	b.WriteString(line)
	return b.String()
}
