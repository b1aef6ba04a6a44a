package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ebsimager/ebsimager/internal/emulator"
	"github.com/ebsimager/ebsimager/internal/emulator/emulatortest"
)

var update = flag.Bool("update", false, "rewrite golden files")

// The test binary doubles as the ebsimager binary: run with
// EBSIMAGER_AS_MAIN=1 it is main itself, so tests drive the real command
// line, exit codes and all, in a real subprocess.
func TestMain(m *testing.M) {
	if os.Getenv("EBSIMAGER_AS_MAIN") == "1" {
		main()
		return
	}
	os.Exit(m.Run())
}

// result is one run of the binary.
type result struct {
	code           int
	stdout, stderr string
}

// cli runs ebsimager with args, against endpoint when it is not empty.
type cli struct {
	t        *testing.T
	endpoint string
	env      []string
}

func newCLI(t *testing.T, endpoint string) *cli {
	return &cli{t: t, endpoint: endpoint}
}

func (c *cli) command(ctx context.Context, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, os.Args[0], args...)
	cmd.Env = append(os.Environ(),
		"EBSIMAGER_AS_MAIN=1",
		"AWS_ACCESS_KEY_ID=emulator", "AWS_SECRET_ACCESS_KEY=emulator", "AWS_SESSION_TOKEN=",
		"AWS_REGION=us-east-1", "AWS_EC2_METADATA_DISABLED=true", "AWS_PROFILE=",
		"AWS_CONFIG_FILE=/nonexistent", "AWS_SHARED_CREDENTIALS_FILE=/nonexistent",
		"AWS_ENDPOINT_URL="+c.endpoint, "AWS_ENDPOINT_URL_EBS=",
		// A test run inside an indexed job must not make every
		// acquire --targets a worker: empty counts as unset.
		"JOB_COMPLETION_INDEX=", "AWS_BATCH_JOB_ARRAY_INDEX=",
	)
	cmd.Env = append(cmd.Env, c.env...)
	return cmd
}

func (c *cli) run(args ...string) result {
	c.t.Helper()
	return c.runAttr(nil, args...)
}

// runAttr runs args with the process attributes attr (nil: inherited).
func (c *cli) runAttr(attr *syscall.SysProcAttr, args ...string) result {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := c.command(ctx, args...)
	cmd.SysProcAttr = attr
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		code = exit.ExitCode()
	} else if err != nil {
		c.t.Fatalf("running ebsimager %v: %v", args, err)
	}
	return result{code: code, stdout: stdout.String(), stderr: stderr.String()}
}

// ok runs args and fails the test unless they exit 0.
func (c *cli) ok(args ...string) result {
	c.t.Helper()
	r := c.run(args...)
	if r.code != 0 {
		c.t.Fatalf("ebsimager %s: exit %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
	}
	return r
}

// fails runs args and asserts the exit code and that stderr contains want.
func (c *cli) fails(code int, want string, args ...string) result {
	c.t.Helper()
	return c.expect(c.run(args...), code, want, args)
}

// expect fails the test unless r exited with code and stderr contains want.
func (c *cli) expect(r result, code int, want string, args []string) result {
	c.t.Helper()
	if r.code != code || !strings.Contains(r.stderr, want) {
		c.t.Fatalf("ebsimager %s: exit %d, stderr:\n%s\nwant exit %d and stderr containing %q", strings.Join(args, " "), r.code, r.stderr, code, want)
	}
	return r
}

func startEmulator(t *testing.T, o emulator.Options, specs ...string) (*emulator.Server, string) {
	t.Helper()
	o.TrackBlocks = true
	srv, endpoint := emulatortest.Start(t, o)
	for _, s := range specs {
		if err := srv.AddSynthetic(s); err != nil {
			t.Fatal(err)
		}
	}
	return srv, endpoint
}

// sha256File hashes path as a stream: the images tests compare are up to
// a GiB, and reading one whole would cost a GiB of memory per call.
func sha256File(t *testing.T, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if got != string(want) {
		t.Fatalf("%s differs from %s (run go test -update if the change is intended)\ngot:\n%s", name, path, got)
	}
}
