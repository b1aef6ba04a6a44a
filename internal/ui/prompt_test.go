package ui

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/ebsimager/ebsimager/internal/testenv"
)

// promptOutEnv makes TestTerminalPrompt act as the program under test:
// it prompts and writes what it read to the named file.
const promptOutEnv = "EBSIMAGER_TEST_PROMPT_OUT"

func TestTerminalPrompt(t *testing.T) {
	if out := os.Getenv(promptOutEnv); out != "" {
		result := "no terminal"
		if p := TerminalPrompt("Passphrase", true); p != nil {
			s, err := p()
			result = fmt.Sprintf("%q %v", s, err)
		}
		if err := os.WriteFile(out, []byte(result), 0o600); err != nil {
			t.Fatal(err)
		}
		return
	}
	testenv.RequireTool(t, "script")
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	self := exe + " -test.run=^TestTerminalPrompt$"
	for _, tc := range []struct {
		name, stdin, want string
	}{
		{"confirmed", "s3cret word\ns3cret word\n", `"s3cret word" <nil>`},
		{"differing", "s3cret word\nother\n", `"" the two entries differ`},
	} {
		out := filepath.Join(t.TempDir(), "out")
		cmd := exec.Command("script", "-qec", self, "/dev/null")
		cmd.Env = append(os.Environ(), promptOutEnv+"="+out)
		cmd.Stdin = strings.NewReader(tc.stdin)
		transcript, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%s: %v\n%s", tc.name, err, transcript)
		}
		if got := readFile(t, out); got != tc.want {
			t.Errorf("%s: read %s, want %s", tc.name, got, tc.want)
		}
		for _, label := range []string{"Passphrase: ", "Confirm passphrase: "} {
			if !strings.Contains(string(transcript), label) {
				t.Errorf("%s: the terminal never showed %q:\n%s", tc.name, label, transcript)
			}
		}
	}

	// Without a controlling terminal and with stdin from /dev/null there
	// is nobody to ask: TerminalPrompt returns nil rather than block.
	out := filepath.Join(t.TempDir(), "out")
	cmd := exec.Command(exe, "-test.run=^TestTerminalPrompt$")
	cmd.Env = append(os.Environ(), promptOutEnv+"="+out)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("no terminal: %v\n%s", err, b)
	}
	if got := readFile(t, out); got != "no terminal" {
		t.Errorf("no terminal: read %s", got)
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestConfirmedPrompt(t *testing.T) {
	answers := func(a ...string) func(string) (string, error) {
		var labels []string
		return func(label string) (string, error) {
			labels = append(labels, label)
			if len(labels) == 2 && label != "Confirm passphrase" {
				t.Errorf("second label %q, want %q", label, "Confirm passphrase")
			}
			s := a[0]
			a = a[1:]
			return s, nil
		}
	}
	got, err := confirmed("Passphrase", answers("same", "same"))()
	if err != nil || got != "same" {
		t.Errorf("matching entries: %q, %v", got, err)
	}
	got, err = confirmed("Passphrase", answers("alpha", "bravo"))()
	if err == nil || got != "" || strings.Contains(err.Error(), "alpha") || strings.Contains(err.Error(), "bravo") {
		t.Errorf("differing entries: %q, %v; want an error without either entry", got, err)
	}
}
