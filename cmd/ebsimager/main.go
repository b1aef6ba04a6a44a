// Command ebsimager turns an AWS EBS snapshot into forensic evidence
// through the EBS direct APIs.
package main

import (
	"context"
	"os"
	"os/signal"
	"strings"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	root := newRootCommand()
	err := root.ExecuteContext(ctx)
	if err != nil && strings.HasPrefix(err.Error(), "unknown command ") {
		err = usageError{err} // cobra's own argument error
	}
	code := exitCode(ctx, err)
	if err != nil {
		printError(os.Stderr, err)
	}
	stop()
	os.Exit(code)
}

func init() {
	// Files and directories this tool creates hold evidence: 0600/0700.
	syscall.Umask(0o077)
}
