// Package testenv decides what a test does when an external tool it needs
// (ewfverify, mmls, mkfs.ext4, moto_server, …) is missing: under CI=true
// the test fails, because CI installs every tool; elsewhere it is skipped.
package testenv

import (
	"bytes"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// CI reports whether the tests run under CI (CI=true).
func CI() bool { return os.Getenv("CI") == "true" }

// RequireTool returns the path of each named program, failing the test
// under CI and skipping it elsewhere when one is missing.
func RequireTool(t testing.TB, names ...string) []string {
	t.Helper()
	paths := make([]string, len(names))
	for i, name := range names {
		p, err := exec.LookPath(name)
		if err != nil {
			if CI() {
				t.Fatalf("%s is required under CI=true but is not installed: %v", name, err)
			}
			t.Skipf("%s not installed: %v", name, err)
		}
		paths[i] = p
	}
	return paths
}

// Output runs the tool name (required as RequireTool requires it) and
// returns its standard output; a failure fails the test with its
// standard error.
func Output(t testing.TB, name string, args ...string) []byte {
	t.Helper()
	path := RequireTool(t, name)[0]
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(path, args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, stderr.String())
	}
	return stdout.Bytes()
}
