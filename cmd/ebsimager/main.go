// Command ebsimager turns an AWS EBS snapshot into forensic evidence
// through the EBS direct APIs.
package main

import (
	"context"
	"os"
	"os/signal"
	"runtime/pprof"
	"strings"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if path := os.Getenv("EBSIMAGER_CPUPROFILE"); path != "" {
		// A developer's aid for benchmarks: a CPU profile of the whole run.
		if f, err := os.Create(path); err == nil {
			pprof.StartCPUProfile(f)
			defer pprof.StopCPUProfile()
		}
	}
	root := newRootCommand()
	cmd, err := root.ExecuteContextC(ctx)
	if err != nil && strings.HasPrefix(err.Error(), "unknown command ") {
		err = usageError{err} // cobra's own argument error
	}
	code := exitCode(ctx, err)
	if err != nil {
		printError(os.Stderr, cmd, err)
	}
	stop()
	pprof.StopCPUProfile()
	os.Exit(code)
}

func init() {
	// Files and directories this tool creates hold evidence: 0600/0700.
	syscall.Umask(0o077)
}
