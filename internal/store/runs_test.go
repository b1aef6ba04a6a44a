package store

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"testing"
	"time"

	"github.com/ebsimager/ebsimager/internal/bucket"
)

func TestRunKey(t *testing.T) {
	at := time.Date(2026, 12, 5, 18, 4, 5, 0, time.FixedZone("x", 3600))
	key, err := RunKey(at, "acquire")
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`^runs/20261205T170405Z-[0-9a-f]{8}-acquire\.json$`).MatchString(key) {
		t.Fatalf("RunKey = %q", key)
	}
	got, cmd, err := ParseRunKey(key)
	if err != nil || !got.Equal(at) || cmd != "acquire" {
		t.Fatalf("ParseRunKey(%q) = %v, %q, %v", key, got, cmd, err)
	}
	for _, bad := range []string{"Acquire", "", "a/b", "acquire.json", "x23456789012345678901234567890123"} {
		if _, err := RunKey(at, bad); err == nil {
			t.Errorf("RunKey(%q) accepted", bad)
		}
	}
	for _, bad := range []string{
		"runs/20261205T170405Z-0123abcd-acquire", "runs/x/20261205T170405Z-0123abcd-acquire.json",
		"blocks/20261205T170405Z-0123abcd-acquire.json", "runs/20261305T170405Z-0123abcd-acquire.json",
		"runs/20261205T170405Z-0123ABCD-acquire.json", "runs/20261205T170405Z-0123abc-acquire.json",
		"runs/20261205T170405Z-0123abcd-.json", "runs/20261205T170405Z-0123abcd-Acquire.json",
	} {
		if _, _, err := ParseRunKey(bad); err == nil {
			t.Errorf("ParseRunKey(%q) accepted", bad)
		}
	}
}

func TestPutListRuns(t *testing.T) {
	ctx := context.Background()
	b := &bucket.Memory{}
	at := time.Date(2026, 12, 5, 18, 4, 5, 0, time.UTC)
	first, err := PutRun(ctx, b, "acquire", at, []byte(`{"n":1}`))
	if err != nil {
		t.Fatal(err)
	}
	second, err := PutRun(ctx, b, "verify", at.Add(time.Hour), []byte(`{"n":2}`))
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte(`{"n":1}`))
	if first.SHA256 != hex.EncodeToString(sum[:]) || first.Size != 7 {
		t.Fatalf("PutRun = %+v", first)
	}
	got, err := ListRuns(ctx, b)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0] != first || got[1] != second {
		t.Fatalf("ListRuns = %+v, want %+v, %+v", got, first, second)
	}

	// A collision of the random tag is retried under another.
	taken := 0
	b.Fail = func(op, key string) error {
		if op == "PutNew" && taken < 2 {
			taken++
			return fmt.Errorf("%s: %w", key, bucket.ErrExists)
		}
		return nil
	}
	if _, err := PutRun(ctx, b, "acquire", at, []byte("{}")); err != nil || taken != 2 {
		t.Fatalf("PutRun after 2 collisions: %v (%d)", err, taken)
	}
	b.Fail = nil

	// Hostile: a foreign name, or more objects than MaxRuns.
	b.Set("runs/evil", []byte("x"))
	var c *ConflictError
	if _, err := ListRuns(ctx, b); !errors.As(err, &c) || c.Key != "runs/evil" {
		t.Fatalf("ListRuns with a foreign key: %v", err)
	}
	b.Delete("runs/evil")
	for i := range MaxRuns {
		b.Set(fmt.Sprintf("runs/20261205T170405Z-%08x-acquire.json", i), []byte("{}"))
	}
	if _, err := ListRuns(ctx, b); err == nil {
		t.Fatal("ListRuns of more than MaxRuns objects: no error")
	}
	if _, err := PutRun(ctx, b, "acquire", at, make([]byte, MaxRunObject+1)); err == nil {
		t.Fatal("PutRun of an oversized record: no error")
	}
}
