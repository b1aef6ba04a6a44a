package main

import (
	"os"
	"path/filepath"
	"testing"
)

// TestSnapshotRefusals: what EC2 would refuse, or what contradicts
// itself, is refused before any call, and no record directory is made.
func TestSnapshotRefusals(t *testing.T) {
	t.Parallel()
	c := newCLI(t, "http://127.0.0.1:1") // nothing listens: no call may be made
	dir := filepath.Join(t.TempDir(), "rec")
	const inst = "i-0123456789abcdef0"
	for _, tc := range []struct {
		code int
		want string
		args []string
	}{
		{exitInvalid, `invalid target "snap-0123456789abcdef0": want an instance id`, []string{"snapshot", "snap-0123456789abcdef0"}},
		{exitInvalid, "target " + inst + " given twice", []string{"snapshot", inst, inst}},
		{exitUsage, "missing argument", []string{"snapshot"}},
		{exitUsage, "--lock needs --lock-duration of 1 to 36500 days (got 0)", []string{"snapshot", inst, "--lock", "governance"}},
		{exitUsage, "--lock-duration: invalid duration \"25h\": want whole days", []string{"snapshot", inst, "--lock", "governance", "--lock-duration", "25h"}},
		{exitUsage, "--cool-off applies to a compliance lock only", []string{"snapshot", inst, "--lock", "governance", "--lock-duration", "30d", "--cool-off", "24h"}},
		{exitUsage, "--cool-off must be 1 to 72 hours (got 96)", []string{"snapshot", inst, "--lock", "compliance", "--lock-duration", "30d", "--cool-off", "4d"}},
		{exitUsage, "drop --no-wait", []string{"snapshot", inst, "--no-wait", "--share-with", "111122223333"}},
		{exitUsage, "want 12 digits", []string{"snapshot", inst, "--share-with", "1111-2222-3333"}},
		{exitUsage, "--copy and --kms-key go together", []string{"snapshot", inst, "--copy"}},
		{exitUsage, "is an AWS managed key", []string{"snapshot", inst, "--copy", "--kms-key", "alias/aws/ebs"}},
		{exitUsage, "the aws: prefix is reserved", []string{"snapshot", inst, "--tag", "aws:cloudformation=x"}},
		{exitUsage, `invalid tag "novalue": want KEY=VALUE`, []string{"snapshot", inst, "--tag", "novalue"}},
		{exitUsage, `invalid device "sdf"`, []string{"snapshot", inst, "--device", "sdf"}},
		{exitUsage, "--timeout must be positive", []string{"snapshot", inst, "--timeout", "0s"}},
	} {
		args := append(tc.args, "--record", dir)
		c.fails(tc.code, tc.want, args...)
		if _, err := os.Stat(dir); !os.IsNotExist(err) {
			t.Fatalf("%v made the record directory: %v", tc.args, err)
		}
	}
}
