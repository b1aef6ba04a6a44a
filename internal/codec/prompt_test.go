package codec_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/ebsimager/ebsimager/internal/codec"
	"github.com/ebsimager/ebsimager/internal/testenv"
)

// promptOutEnv makes TestTerminalPrompt act as the program under test:
// it prompts and writes what it read to the named file.
const promptOutEnv = "EBSIMAGER_TEST_PROMPT_OUT"

func TestTerminalPrompt(t *testing.T) {
	if out := os.Getenv(promptOutEnv); out != "" {
		result := "no terminal"
		if p := codec.TerminalPrompt("Passphrase", true); p != nil {
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
		if got := string(readFile(t, out)); got != tc.want {
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
	if got := string(readFile(t, out)); got != "no terminal" {
		t.Errorf("no terminal: read %s", got)
	}
}
