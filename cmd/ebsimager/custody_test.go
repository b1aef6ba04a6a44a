package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ebsimager/ebsimager/internal/emulator"
)

// TestCustodyRecord runs acquire where DescribeSnapshots and
// GetCallerIdentity are denied: the acquisition still completes, the
// record says what was denied, later steps are appended in order, and no
// secret reaches any of the three files.
func TestCustodyRecord(t *testing.T) {
	t.Parallel()
	_, endpoint := startEmulator(t, emulator.Options{DenyDescribeSnapshots: true, DenyGetCallerIdentity: true}, specA)
	c := newCLI(t, endpoint)
	const secret = "correct-horse-battery-staple"
	c.env = append(c.env, "EBSIMAGER_PASSPHRASE="+secret)
	dir := t.TempDir()
	ev := filepath.Join(dir, "ev")
	c.ok("acquire", snapA, "--out", ev, "--quiet", "--compress", "zstd", "--encrypt", "--case-number", "C-7", "--examiner", "A. Examiner")
	c.ok("verify", ev, "--quiet")
	c.ok("export", ev, "--out", filepath.Join(dir, "img.raw"), "--quiet")
	c.ok("uncompress", ev, "--quiet")

	var rec struct {
		Case struct {
			CaseNumber string `json:"case_number"`
			Examiner   string
		}
		Acquisition struct {
			AWS struct {
				Calls []struct{ API, Outcome string }
			}
			ManifestSHA256 string `json:"manifest_sha256"`
		}
		Notes []string
		Steps []struct {
			Kind, Outcome string
			Transform     *struct{ Operation, Codec string }
		}
	}
	data, err := os.ReadFile(filepath.Join(ev, "report.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &rec); err != nil {
		t.Fatal(err)
	}
	if rec.Case.CaseNumber != "C-7" || len(rec.Acquisition.ManifestSHA256) != 64 {
		t.Fatalf("record: %+v", rec)
	}
	denied := map[string]string{}
	for _, call := range rec.Acquisition.AWS.Calls {
		denied[call.API] = call.Outcome
	}
	if denied["sts:GetCallerIdentity"] != "denied" || denied["ec2:DescribeSnapshots"] != "denied" {
		t.Fatalf("context calls %v, want both denied", denied)
	}
	var kinds []string
	for _, s := range rec.Steps {
		kinds = append(kinds, s.Kind+"/"+s.Outcome)
	}
	if got := strings.Join(kinds, " "); got != "verify/ok export/ok transform/ok" {
		t.Fatalf("steps %q", got)
	}
	if tr := rec.Steps[2].Transform; tr == nil || tr.Operation != "uncompress" || tr.Codec != "none" {
		t.Fatalf("transform step %+v", rec.Steps[2].Transform)
	}
	for _, name := range []string{"report.json", "report.txt", "report.html"} {
		data, err := os.ReadFile(filepath.Join(ev, name))
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(data), secret) || strings.Contains(string(data), "AWS_SECRET_ACCESS_KEY") {
			t.Fatalf("%s holds a secret", name)
		}
		if !strings.Contains(string(data), "denied") {
			t.Fatalf("%s does not say what was denied", name)
		}
	}
}
