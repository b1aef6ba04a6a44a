package report

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// A triage record saves as JSON that reads back, a text log and a page
// that name what it holds, with every list present even when empty.
func TestTriageSave(t *testing.T) {
	dir := t.TempDir()
	r := NewTriage(Tool{Version: "1.2.3", CommandLine: []string{"ebsimager", "triage", "x", "--passphrase", "secret"}}, time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	r.Source = TriageSource{Kind: TriageSnapshot, Location: "snap-0123", SnapshotID: "snap-0123", SizeBytes: 1 << 30}
	r.Collected = []TriageFile{{Partition: "p1", Path: "/etc/<passwd>", File: "files/p1/etc/<passwd>", Size: 3, SHA256: "ab"}}
	r.Blocks = TriageBlocks{ChecksumSource: ChecksumAWS, Blocks: []TriageBlock{{Index: 7, AWSSHA256: "cd"}}}
	r.Figures.Requests = &Requests{GetCalls: 9}
	if err := r.Save(dir); err != nil {
		t.Fatal(err)
	}
	js, err := os.ReadFile(filepath.Join(dir, JSONName))
	if err != nil {
		t.Fatal(err)
	}
	var back map[string]any
	if err := json.Unmarshal(js, &back); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"not_found", "withheld", "errors", "profiles", "partitions", "notes"} {
		if v, ok := back[k].([]any); !ok || len(v) != 0 {
			t.Fatalf("%s: %v, want []", k, back[k])
		}
	}
	if back["format"] != TriageFormat || strings.Contains(string(js), "secret") {
		t.Fatalf("report.json:\n%s", js)
	}
	txt, _ := os.ReadFile(filepath.Join(dir, TextName))
	page, _ := os.ReadFile(filepath.Join(dir, HTMLName))
	for _, want := range []string{"snap-0123", "p1:/etc/<passwd> -> files/p1/etc/<passwd>", "7 cd", "0 List, 9 Get"} {
		if !strings.Contains(string(txt), want) {
			t.Fatalf("report.txt lacks %q:\n%s", want, txt)
		}
	}
	if !strings.Contains(string(page), "/etc/&lt;passwd&gt;") || strings.Contains(string(page), "<passwd>") {
		t.Fatal("report.html does not escape names")
	}
	for _, name := range []string{JSONName, TextName, HTMLName} {
		fi, _ := os.Stat(filepath.Join(dir, name))
		if fi.Mode().Perm() != 0o600 {
			t.Fatalf("%s: mode %v", name, fi.Mode())
		}
	}
}
