package main

import (
	"time"

	"github.com/spf13/cobra"

	"github.com/ebsimager/ebsimager/internal/preserve"
)

// preserveOptions are the flags of the preservation step, shared by
// `snapshot` and `acquire i-…|vol-…`. The case fields are the command's
// caseMeta.
type preserveOptions struct {
	excludeBoot  bool
	devices      []string
	tags         []string
	wait, noWait bool
	timeout      time.Duration
	lock         string
	lockDuration string
	coolOff      string
	shareWith    []string
	copy         bool
	kmsKey       string
	copyRegion   string
}

func (p *preserveOptions) addFlags(cmd *cobra.Command) {
	f := cmd.Flags()
	f.BoolVar(&p.excludeBoot, "exclude-boot", false, "leave an instance's root volume out")
	f.StringArrayVar(&p.devices, "device", nil, "snapshot only this device of an instance, e.g. /dev/sdf (repeatable)")
	f.StringArrayVar(&p.tags, "tag", nil, "add the tag KEY=VALUE to every snapshot (repeatable)")
	f.BoolVar(&p.wait, "wait", true, "wait until every snapshot is completed")
	f.BoolVar(&p.noWait, "no-wait", false, "return the snapshot ids at once, without waiting (no --lock, --share-with or --copy)")
	f.DurationVar(&p.timeout, "timeout", preserve.DefaultTimeout, "give up waiting after this long")
	f.StringVar(&p.lock, "lock", "", "lock each snapshot (EBS Snapshot Lock): governance or compliance")
	f.StringVar(&p.lockDuration, "lock-duration", "", "how long the lock holds, in whole days: 30d or 720h (1 to 36500 days)")
	f.StringVar(&p.coolOff, "cool-off", "", "compliance lock: cooling-off period, in whole hours: 24h (1 to 72)")
	f.StringArrayVar(&p.shareWith, "share-with", nil, "give this 12-digit AWS account createVolumePermission (repeatable)")
	f.BoolVar(&p.copy, "copy", false, "copy each snapshot encrypted under --kms-key, then lock and share the copy")
	f.StringVar(&p.kmsKey, "kms-key", "", "with --copy: a customer managed KMS key (id, ARN or alias) the forensic account may use")
	f.StringVar(&p.copyRegion, "copy-region", "", "with --copy: the Region of the copy (default: --region)")
}

// options checks the flags and returns the preservation options; a
// refusal is a usage error. The command adds the case fields (Case) from
// its caseMeta, and Progress. --no-wait wins over --wait.
func (p *preserveOptions) options() (preserve.Options, error) {
	o := preserve.Options{
		Tool:        tool(),
		ExcludeBoot: p.excludeBoot, Devices: p.devices,
		Wait: p.wait && !p.noWait, Timeout: p.timeout,
		Lock: p.lock, ShareWith: p.shareWith, Copy: p.copy, KMSKey: p.kmsKey, CopyRegion: p.copyRegion,
	}
	if p.timeout <= 0 {
		return o, usagef("--timeout must be positive")
	}
	for _, s := range p.tags {
		t, err := preserve.ParseTag(s)
		if err != nil {
			return o, usageError{err}
		}
		o.Tags = append(o.Tags, t)
	}
	var err error
	if p.lockDuration != "" {
		if o.LockDays, err = preserve.ParseDays(p.lockDuration); err != nil {
			return o, usagef("--lock-duration: %v", err)
		}
	}
	if p.coolOff != "" {
		if o.CoolOffHours, err = preserve.ParseHours(p.coolOff); err != nil {
			return o, usagef("--cool-off: %v", err)
		}
	}
	if err := o.Check(); err != nil {
		return o, usageError{err}
	}
	return o, nil
}
