package sampletest

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/ebsimager/ebsimager/internal/sampledisk"
	"github.com/ebsimager/ebsimager/internal/testenv"
)

// Tools lists the programs make-sample-disk.sh runs to build a disk
// (zstd is needed only for the committed artifact, which Build skips).
var Tools = []string{"bash", "sfdisk", "mkfs.ext4", "debugfs", "mkntfs", "ntfslabel", "ntfscp",
	"truncate", "dd", "sha256sum", "awk", "seq"}

// Build runs make-sample-disk.sh into a fresh t.TempDir and returns the path
// of the 1 GiB raw disk it made; files.json is written beside it. Under
// CI=true a missing tool fails the test, elsewhere it skips it.
func Build(t testing.TB) (rawPath string) {
	t.Helper()
	paths := testenv.RequireTool(t, Tools...)
	dir := t.TempDir()
	scriptPath := filepath.Join(dir, "make-sample-disk.sh")
	if err := os.WriteFile(scriptPath, sampledisk.Script(), 0o700); err != nil {
		t.Fatalf("writing make-sample-disk.sh: %v", err)
	}
	rawPath = filepath.Join(dir, sampledisk.FileName)
	cmd := exec.Command(paths[0], scriptPath, rawPath)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("make-sample-disk.sh: %v\n%s", err, out)
	}
	return rawPath
}
