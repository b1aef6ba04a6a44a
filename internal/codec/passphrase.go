package codec

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
)

// PassphraseEnv is the environment variable a passphrase may come from.
const PassphraseEnv = "EBSIMAGER_PASSPHRASE"

// secretFileLimit bounds a passphrase or salt file: anything longer is a
// wrong path, not a secret.
const secretFileLimit = 64 << 10

// ErrNoSecret is returned when none of a SecretSource's places holds the
// secret (no file, the variable unset or empty, no terminal), and wrapped
// when the place given holds an empty one: either way the key is missing
// (exit 10, like a wrong one).
var ErrNoSecret = errors.New("no secret given")

// errEmptySecret is a file or prompt that gave an empty secret.
var errEmptySecret = fmt.Errorf("empty (%w)", ErrNoSecret)

// SecretSource lists where a secret (a passphrase, a salt) may come from,
// in order of precedence: a file named on the command line, an
// environment variable, then an interactive prompt. A secret never comes
// from a flag value, where ps(1) and shell history would keep it.
type SecretSource struct {
	// File is the path given with --passphrase-file (or --salt-file);
	// empty when the flag was not given.
	File string
	// Env is the variable to look up, such as PassphraseEnv.
	Env string
	// Getenv looks the variable up (os.Getenv); nil skips the variable.
	// A variable set to "" counts as unset.
	Getenv func(string) string
	// Prompt asks for the secret (ui.TerminalPrompt); nil when there is no
	// terminal to ask on.
	Prompt func() (string, error)
}

// Read returns the secret from the first place that has one. what names
// the secret in errors ("passphrase", "salt"); the secret itself never
// appears in them. A file's content is used up to one trailing newline
// ("\n" or "\r\n"), which is dropped; an empty secret is an error.
func (s SecretSource) Read(what string) (string, error) {
	switch {
	case s.File != "":
		v, err := readSecretFile(s.File)
		if err != nil {
			return "", fmt.Errorf("reading %s file: %w", what, err)
		}
		if v == "" {
			return "", fmt.Errorf("reading %s file %s: %w", what, s.File, errEmptySecret)
		}
		return v, nil
	case s.Env != "" && s.Getenv != nil && s.Getenv(s.Env) != "":
		return s.Getenv(s.Env), nil
	case s.Prompt != nil:
		v, err := s.Prompt()
		if err != nil {
			return "", fmt.Errorf("reading %s from terminal: %w", what, err)
		}
		if v == "" {
			return "", fmt.Errorf("reading %s from terminal: %w", what, errEmptySecret)
		}
		return v, nil
	}
	if s.Env != "" {
		return "", fmt.Errorf("%s: %w: use a file, set %s, or run on a terminal", what, ErrNoSecret, s.Env)
	}
	return "", fmt.Errorf("%s: %w: use a file or run on a terminal", what, ErrNoSecret)
}

// ReadPassphrase reads the passphrase from file (--passphrase-file) when
// given, else from EBSIMAGER_PASSPHRASE through getenv, else through
// prompt. See SecretSource.
func ReadPassphrase(file string, getenv func(string) string, prompt func() (string, error)) (string, error) {
	return SecretSource{File: file, Env: PassphraseEnv, Getenv: getenv, Prompt: prompt}.Read("passphrase")
}

func readSecretFile(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, secretFileLimit+1))
	if err != nil {
		return "", fmt.Errorf("%s: %w", path, err)
	}
	if len(b) > secretFileLimit {
		return "", fmt.Errorf("%s: longer than %d bytes", path, secretFileLimit)
	}
	s := string(b)
	if t, ok := strings.CutSuffix(s, "\n"); ok {
		s = strings.TrimSuffix(t, "\r")
	}
	return s, nil
}
