// Package sampletest rebuilds the sample evidence disk at test time by
// running the embedded make-sample-disk.sh with the real tools (sfdisk,
// mkfs.ext4, debugfs, mkntfs, ntfscp), for tests that must show the disk
// comes from those tools rather than from the committed copy. It is kept
// apart from package sampledisk so that non-test code never imports
// "testing".
package sampletest
