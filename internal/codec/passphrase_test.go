package codec_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ebsimager/ebsimager/internal/codec"
)

func writeSecret(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func env(vars map[string]string) func(string) string {
	return func(k string) string { return vars[k] }
}

func TestReadPassphrasePrecedence(t *testing.T) {
	file := writeSecret(t, "from file\n")
	withEnv := env(map[string]string{codec.PassphraseEnv: "from env"})
	noEnv := env(nil)
	prompted := 0
	prompt := func() (string, error) { prompted++; return "from prompt", nil }

	for _, tc := range []struct {
		name   string
		file   string
		getenv func(string) string
		want   string
	}{
		{"file wins", file, withEnv, "from file"},
		{"env next", "", withEnv, "from env"},
		{"prompt last", "", noEnv, "from prompt"},
		{"empty env is unset", "", env(map[string]string{codec.PassphraseEnv: ""}), "from prompt"},
		{"other variables are ignored", "", env(map[string]string{"PASSPHRASE": "x"}), "from prompt"},
	} {
		got, err := codec.ReadPassphrase(tc.file, tc.getenv, prompt)
		if err != nil || got != tc.want {
			t.Errorf("%s: %q, %v; want %q", tc.name, got, err, tc.want)
		}
	}
	if prompted != 3 {
		t.Errorf("prompt called %d times, want 3 (never when a file or the variable gives the passphrase)", prompted)
	}
}

func TestReadPassphraseFileTrimming(t *testing.T) {
	for content, want := range map[string]string{
		"pw":          "pw",
		"pw\n":        "pw",
		"pw\r\n":      "pw",
		"pw\n\n":      "pw\n",
		" pw \n":      " pw ",
		"two\nlines":  "two\nlines",
		"tab\t\n":     "tab\t",
		"pw\r":        "pw\r",
		"héllo wörld": "héllo wörld",
	} {
		got, err := codec.ReadPassphrase(writeSecret(t, content), nil, nil)
		if err != nil || got != want {
			t.Errorf("file %q: %q, %v; want %q", content, got, err, want)
		}
	}
	for _, content := range []string{"", "\n", "\r\n"} {
		if _, err := codec.ReadPassphrase(writeSecret(t, content), nil, nil); !errors.Is(err, codec.ErrNoSecret) || !strings.Contains(err.Error(), "empty") {
			t.Errorf("file %q: %v, want an empty-file error", content, err)
		}
	}
	big := writeSecret(t, strings.Repeat("x", 64<<10+1))
	if _, err := codec.ReadPassphrase(big, nil, nil); err == nil || strings.Contains(err.Error(), "xxxx") {
		t.Errorf("oversized file: %v, want an error that does not show the content", err)
	}
	if _, err := codec.ReadPassphrase(filepath.Join(t.TempDir(), "missing"), env(map[string]string{codec.PassphraseEnv: "e"}), nil); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v, want os.ErrNotExist and no fallback to the variable", err)
	}
}

func TestReadPassphraseNone(t *testing.T) {
	_, err := codec.ReadPassphrase("", env(nil), nil)
	if !errors.Is(err, codec.ErrNoSecret) || !strings.Contains(err.Error(), codec.PassphraseEnv) {
		t.Errorf("no source: %v, want ErrNoSecret naming %s", err, codec.PassphraseEnv)
	}
	_, err = codec.ReadPassphrase("", nil, func() (string, error) { return "", nil })
	if !errors.Is(err, codec.ErrNoSecret) || !strings.Contains(err.Error(), "empty") {
		t.Errorf("empty prompt answer: %v, want an empty error", err)
	}
	boom := errors.New("terminal went away")
	if _, err := codec.ReadPassphrase("", nil, func() (string, error) { return "", boom }); !errors.Is(err, boom) {
		t.Errorf("prompt failure: %v, want it wrapped", err)
	}
}

func TestSecretSourceNamesTheSecret(t *testing.T) {
	s := codec.SecretSource{Env: "EBSIMAGER_SALT", Getenv: env(map[string]string{"EBSIMAGER_SALT": "pepper"})}
	if got, err := s.Read("salt"); err != nil || got != "pepper" {
		t.Errorf("salt from env: %q, %v", got, err)
	}
	s.Getenv = env(nil)
	if _, err := s.Read("salt"); !errors.Is(err, codec.ErrNoSecret) || !strings.HasPrefix(err.Error(), "salt: ") || !strings.Contains(err.Error(), "EBSIMAGER_SALT") {
		t.Errorf("no salt: %v", err)
	}
}
