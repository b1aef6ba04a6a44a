package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ebsimager/ebsimager/internal/block"
	"github.com/ebsimager/ebsimager/internal/emulator"
	"github.com/ebsimager/ebsimager/internal/report"
)

// blockIndexes lists the indexes of the blocks stored in evidence dir.
func blockIndexes(t *testing.T, dir string) []int64 {
	t.Helper()
	var out []int64
	filepath.WalkDir(filepath.Join(dir, "blocks"), func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && d.Name() != ".journal" {
			if fi, _, err := block.ParseFileName(d.Name()); err == nil {
				out = append(out, fi.Index)
			}
		}
		return nil
	})
	slices.Sort(out)
	return out
}

// dirNames lists the names in dir.
func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

// Blocks that fail after every retry: exit 3 for every output, a hint that
// says what really happened to what did arrive, and the full list of the
// failures in the JSON summary and the record (the terminal names ten).
func TestFailedBlocksEveryOutput(t *testing.T) {
	t.Parallel()
	srv, endpoint := startEmulator(t, emulator.Options{}, specA)
	c := newCLI(t, endpoint)
	dir := t.TempDir()
	ref := filepath.Join(dir, "ref")
	r := c.ok("acquire", snapA, "--out", ref, "--quiet")
	if strings.Contains(r.stdout, "map[") || !strings.Contains(r.stdout, ", no retries\n") {
		t.Errorf("summary renders retries badly:\n%s", r.stdout)
	}
	all := blockIndexes(t, ref)
	if len(all) < 40 {
		t.Fatalf("only %d blocks listed", len(all))
	}
	var bad []int64
	var faults []emulator.BlockFault
	for i := 0; i < 12; i++ {
		idx := all[3*i+1]
		bad = append(bad, idx)
		faults = append(faults, emulator.BlockFault{Snapshot: snapA, Index: idx, Error: "InternalServerException"})
	}
	srv.SetFaults(emulator.Faults{FailBlocks: faults})

	t.Run("raw image", func(t *testing.T) {
		out := t.TempDir()
		r := c.fails(exitIncomplete, "12 blocks failed after every retry", "acquire", snapA, "--image", filepath.Join(out, "x.raw"), "--max-attempts", "2", "--quiet")
		for _, want := range []string{"(and 2 more)", "the partial image was removed and nothing is kept", "--out DIR"} {
			if !strings.Contains(r.stderr, want) {
				t.Errorf("stderr lacks %q:\n%s", want, r.stderr)
			}
		}
		if strings.Contains(r.stderr, "the others are kept") {
			t.Errorf("the hint promises kept blocks for a direct image:\n%s", r.stderr)
		}
		if names := dirNames(t, out); len(names) != 0 {
			t.Errorf("a failed direct image left %v", names)
		}
	})
	t.Run("E01 image", func(t *testing.T) {
		out := t.TempDir()
		r := c.fails(exitIncomplete, "1 block failed after every retry", "acquire", snapA, "--image", filepath.Join(out, "x.E01"), "--max-attempts", "2", "--quiet")
		for _, want := range []string{"stopped at the first failed block", "the partial E01 was removed and nothing is kept"} {
			if !strings.Contains(r.stderr, want) {
				t.Errorf("stderr lacks %q:\n%s", want, r.stderr)
			}
		}
		if names := dirNames(t, out); len(names) != 0 {
			t.Errorf("a failed E01 left %v", names)
		}
	})
	t.Run("evidence directory", func(t *testing.T) {
		ev := filepath.Join(t.TempDir(), "ev")
		r := c.fails(exitIncomplete, "hint: run the same command again to retry the failed blocks; the others are kept", "acquire", snapA, "--out", ev, "--max-attempts", "2", "--json")
		var sum acquireSummary
		if err := json.Unmarshal([]byte(r.stdout), &sum); err != nil {
			t.Fatalf("--json of an incomplete acquisition: %v\n%s", err, r.stdout)
		}
		if got := failedIndexes(sum.FailedBlocks); !slices.Equal(got, bad) {
			t.Fatalf("JSON summary names failed blocks %v, want all of %v", got, bad)
		}
		rec, err := report.Load(ev)
		if err != nil {
			t.Fatalf("no record of the incomplete acquisition: %v", err)
		}
		if got := failedIndexes(rec.Acquisition.FailedBlocks); !slices.Equal(got, bad) || rec.Acquisition.ManifestSHA256 != "" {
			t.Fatalf("record names failed blocks %v (manifest %q), want all of %v", got, rec.Acquisition.ManifestSHA256, bad)
		}
		txt := readFile(t, filepath.Join(ev, report.TextName))
		if !strings.Contains(txt, "12 blocks failed after every retry") || !strings.Contains(txt, fmtInt(bad[11])+": ") {
			t.Errorf("report.txt does not name every failed block:\n%s", txt)
		}
		// Healthy again: the rerun completes, and its record has no failures.
		srv.SetFaults(emulator.Faults{})
		c.ok("acquire", snapA, "--out", ev, "--quiet")
		rec, err = report.Load(ev)
		if err != nil || len(rec.Acquisition.FailedBlocks) != 0 || rec.Acquisition.ManifestSHA256 == "" {
			t.Fatalf("record after completing: %v, %+v", err, rec.Acquisition)
		}
		c.ok("verify", ev)
	})
}

func failedIndexes(fs []report.FailedBlock) []int64 {
	var out []int64
	for _, f := range fs {
		if f.Error == "" {
			return nil
		}
		out = append(out, f.Index)
	}
	return out
}

// Exit 11: a block that AWS refuses with ServiceQuotaExceededException.
func TestQuotaExit(t *testing.T) {
	srv, endpoint := startEmulator(t, emulator.Options{}, specA)
	c := newCLI(t, endpoint)
	ref := filepath.Join(t.TempDir(), "ref")
	c.ok("acquire", snapA, "--out", ref, "--quiet")
	idx := blockIndexes(t, ref)[5]
	srv.SetFaults(emulator.Faults{FailBlocks: []emulator.BlockFault{{Snapshot: snapA, Index: idx, Error: "ServiceQuotaExceededException"}}})
	c.fails(exitQuota, "ServiceQuotaExceeded", "acquire", snapA, "--out", filepath.Join(t.TempDir(), "ev"), "--quiet")
	c.fails(exitQuota, "ServiceQuotaExceeded", "block", snapA, fmtInt(idx), "--out", filepath.Join(t.TempDir(), "one.bin"))
}

// --compress takes a value, in both spellings; a stray argument is named
// with its likely cause; a flag that swallowed the next flag is caught.
func TestCompressSpellingsAndStrayArguments(t *testing.T) {
	t.Parallel()
	_, endpoint := startEmulator(t, emulator.Options{}, specA)
	c := newCLI(t, endpoint)
	dir := t.TempDir()
	for i, args := range [][]string{{"--compress", "gzip"}, {"--compress=gzip"}} {
		ev := filepath.Join(dir, "ev"+fmtInt(int64(i)))
		c.ok(append([]string{"acquire", snapA, "--out", ev, "--quiet"}, args...)...)
		data, _ := os.ReadFile(filepath.Join(ev, "evidence.json"))
		if !strings.Contains(string(data), `"gzip"`) {
			t.Fatalf("acquire %v: evidence.json does not say gzip:\n%s", args, data)
		}
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"acquire", "--compress", "gzip", "--out", "x"}, "missing argument: ebsimager acquire takes SNAPSHOT"},
		{[]string{"acquire", snapA, "gzip", "--out", "x"}, `unexpected argument "gzip": did you mean --compress gzip?`},
		{[]string{"acquire", snapA, "--out", "x", "--compress"}, "hint: --compress needs a value (zstd, gzip or none: write --compress zstd)"},
		{[]string{"acquire", snapA, "--compress", "--recipient", "age1x", "--out", "x"}, `--compress took "--recipient" as its value`},
		{[]string{"acquire", snapA, "--out", "x", "--force", "true"}, `unexpected argument "true": switches such as --force take no value`},
		{[]string{"compress", "x", "gzip"}, `unexpected argument "gzip": did you mean --codec gzip?`},
		{[]string{"verify", "a", "b"}, `unexpected argument "b": ebsimager verify takes DIR|IMAGE`},
		{[]string{"diff", snapA}, "missing argument: ebsimager diff takes BASE_SNAPSHOT SNAPSHOT"},
		{[]string{"emulate", "x"}, `unexpected argument "x": ebsimager emulate takes no arguments`},
	} {
		c.fails(exitUsage, tc.want, tc.args...)
	}
	if _, err := os.Stat(filepath.Join(dir, "x")); err == nil {
		t.Fatal("a refused command wrote its output")
	}
}

// Ctrl-C says what running again does, command by command.
func TestInterruptMessages(t *testing.T) {
	t.Parallel()
	_, endpoint := startEmulator(t, emulator.Options{Latency: 100 * time.Millisecond}, specA)
	c := newCLI(t, endpoint)
	dir := t.TempDir()
	interrupt := func(args ...string) string {
		cmd := c.command(t.Context(), args...)
		var stderr strings.Builder
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(1500 * time.Millisecond)
		cmd.Process.Signal(syscall.SIGINT)
		cmd.Wait()
		if code := cmd.ProcessState.ExitCode(); code != exitInterrupted {
			t.Fatalf("%v: exit %d after Ctrl-C, stderr %q", args, code, stderr.String())
		}
		return stderr.String()
	}
	img := filepath.Join(dir, "img")
	os.Mkdir(img, 0o700)
	got := interrupt("acquire", snapA, "--image", filepath.Join(img, "x.raw"), "--quiet", "--workers", "2")
	if !strings.Contains(got, "a direct image does not resume") || !strings.Contains(got, "it starts over") || strings.Contains(got, "to resume") {
		t.Errorf("acquire --image interrupted: %q", got)
	}
	if names := dirNames(t, img); len(names) != 0 {
		t.Errorf("an interrupted direct image left %v", names)
	}
	got = interrupt("acquire", snapA, "--out", filepath.Join(dir, "ev"), "--quiet", "--workers", "2")
	if !strings.Contains(got, "the verified blocks are kept; run the same command again to resume") {
		t.Errorf("acquire --out interrupted: %q", got)
	}

	root := newRootCommand()
	for _, tc := range []struct {
		args       []string
		want, lack string
	}{
		{[]string{"verify", "x"}, "nothing was written or recorded; run the same command again: it starts over", "resume"},
		{[]string{"export", "x", "--out", "y"}, "it starts over", "resume"},
		{[]string{"compress", "x"}, "run the same command again to resume", "starts over"},
	} {
		cmd, rest, err := root.Find(tc.args)
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.ParseFlags(rest); err != nil {
			t.Fatal(err)
		}
		var b strings.Builder
		printError(&b, cmd, contextCanceled())
		if !strings.Contains(b.String(), tc.want) || strings.Contains(b.String(), tc.lack) {
			t.Errorf("%v interrupted: %q", tc.args, b.String())
		}
	}
}

// An E01's line names the media size and the size of its files apart.
func TestImageSizeText(t *testing.T) {
	dir := t.TempDir()
	e01 := filepath.Join(dir, "x.E01")
	os.WriteFile(e01, make([]byte, 3<<20), 0o600)
	if got, want := imageSizeText([]string{e01}, 1<<30), "media 1.0 GiB, in 3.0 MiB of E01 files (1 segment)"; got != want {
		t.Errorf("E01: %q, want %q", got, want)
	}
	if got, want := imageSizeText([]string{filepath.Join(dir, "x.raw")}, 1<<30), "1.0 GiB"; got != want {
		t.Errorf("raw: %q, want %q", got, want)
	}
	if ok, _ := regexp.MatchString(`^1\.0 GiB in 2 segments$`, imageSizeText([]string{"a.000", "a.001"}, 1<<30)); !ok {
		t.Error("split raw")
	}
}

func contextCanceled() error { return context.Canceled }

// A full disk: the hint says "resume" only where running again resumes.
func TestDiskFullHint(t *testing.T) {
	root := newRootCommand()
	full := &os.PathError{Op: "write", Path: "x", Err: syscall.ENOSPC}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"acquire", snapA, "--out", "ev"}, "free space and run the same command again to resume"},
		{[]string{"acquire", snapA, "--image", "x.raw"}, "free space and run the same command again: it starts over"},
		{[]string{"export", "ev", "--out", "x.raw"}, "free space and run the same command again: it starts over"},
	} {
		cmd, rest, err := root.Find(tc.args)
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.ParseFlags(rest); err != nil {
			t.Fatal(err)
		}
		var b strings.Builder
		printError(&b, cmd, full)
		if !strings.Contains(b.String(), tc.want) {
			t.Errorf("%v, disk full: %q, want %q", tc.args, b.String(), tc.want)
		}
	}
}
