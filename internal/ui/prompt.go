package ui

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"golang.org/x/term"
)

// TerminalPrompt returns a Prompt that asks for a secret with label on the
// controlling terminal (/dev/tty), or on stderr and stdin when /dev/tty
// cannot be opened but stdin is a terminal, without echo. With confirm it
// asks twice and fails when the answers differ, as a new passphrase
// should be. It returns nil when there is no terminal, so that
// codec.SecretSource.Read reports codec.ErrNoSecret instead of waiting on a pipe.
func TerminalPrompt(label string, confirm bool) func() (string, error) {
	tty, err := os.OpenFile("/dev/tty", os.O_RDWR, 0)
	if err == nil {
		tty.Close()
	} else if !term.IsTerminal(int(os.Stdin.Fd())) {
		return nil
	}
	ask := func(l string) (string, error) {
		in, out := os.Stdin, os.Stderr
		if tty, err := os.OpenFile("/dev/tty", os.O_RDWR, 0); err == nil {
			defer tty.Close()
			in, out = tty, tty
		}
		fmt.Fprintf(out, "%s: ", l)
		b, err := term.ReadPassword(int(in.Fd()))
		fmt.Fprintln(out)
		return string(b), err
	}
	if !confirm {
		return func() (string, error) { return ask(label) }
	}
	return confirmed(label, ask)
}

// confirmed returns a prompt that asks twice through ask and accepts only
// matching answers.
func confirmed(label string, ask func(label string) (string, error)) func() (string, error) {
	return func() (string, error) {
		first, err := ask(label)
		if err != nil {
			return "", err
		}
		again := "Confirm"
		if label != "" {
			again += " " + strings.ToLower(label[:1]) + label[1:]
		}
		second, err := ask(again)
		if err != nil {
			return "", err
		}
		if first != second {
			return "", errors.New("the two entries differ")
		}
		return first, nil
	}
}
