package dirlock

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
)

func TestSecondHolderRefusedWithPID(t *testing.T) {
	dir := t.TempDir()
	l, err := ForDir(dir, "acquire")
	if err != nil {
		t.Fatal(err)
	}
	_, err = ForDir(dir, "acquire")
	var held *HeldError
	if !errors.As(err, &held) {
		t.Fatalf("second lock: got %v, want HeldError", err)
	}
	if held.PID != os.Getpid() || held.What != "acquire" || held.Path != dir {
		t.Fatalf("held = %+v, want PID %d, acquire, %s", held, os.Getpid(), dir)
	}
	if err := l.Release(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, Name)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("lock file after release: %v", err)
	}
	l2, err := ForDir(dir, "verify")
	if err != nil {
		t.Fatalf("lock after release: %v", err)
	}
	l2.Release()
}

// A lock file left by a process that died (its flock gone with it) is
// taken over at once.
func TestStaleLockTakenOver(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, Name)
	cmd := exec.Command("sleep", "0")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	dead := cmd.Process.Pid
	if err := os.WriteFile(path, []byte(strconv.Itoa(dead)+" acquire\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	l, err := ForDir(dir, "acquire")
	if err != nil {
		t.Fatalf("stale lock not taken over: %v", err)
	}
	data, _ := os.ReadFile(path)
	if want := strconv.Itoa(os.Getpid()) + " acquire\n"; string(data) != want {
		t.Fatalf("lock file says %q, want %q", data, want)
	}
	l.Release()
}

func TestFileLockBesideOutput(t *testing.T) {
	out := filepath.Join(t.TempDir(), "disk.raw")
	l, err := ForFile(out, "export")
	if err != nil {
		t.Fatal(err)
	}
	_, err = ForFile(out, "export")
	var held *HeldError
	if !errors.As(err, &held) || held.Path != out {
		t.Fatalf("second export lock: %v, want a HeldError naming %s", err, out)
	}
	if fi, err := os.Stat(out + ".lock"); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("lock file: %v %v", fi, err)
	}
	l.Release()
}

func TestSymlinkLockRefused(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "victim")
	os.WriteFile(target, []byte("keep"), 0o600)
	if err := os.Symlink(target, filepath.Join(dir, Name)); err != nil {
		t.Fatal(err)
	}
	if _, err := ForDir(dir, "acquire"); err == nil {
		t.Fatal("lock followed a symlink")
	}
	if data, _ := os.ReadFile(target); string(data) != "keep" {
		t.Fatalf("symlink target rewritten: %q", data)
	}
}
