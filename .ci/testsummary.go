//go:build ignore

// Command testsummary reads `go test -json` on stdin and prints what
// `go test` prints without -v (package lines, and the output of failed
// tests), then the tests that were skipped, with their reasons: without
// -v go test hides them. The list is also written to the file named by
// the first argument, if any. The exit status is go test's business: run
// it as `go test -json ./... | go run .ci/testsummary.go` with pipefail.
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"strings"
)

type event struct {
	Action  string
	Package string
	Test    string
	Output  string
}

func main() {
	out := bufio.NewWriter(os.Stdout)
	defer out.Flush()
	buf := map[string][]string{} // output of each running test
	var skipped, unended []string
	sc := bufio.NewScanner(os.Stdin)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	for sc.Scan() {
		line := sc.Bytes()
		var e event
		if err := json.Unmarshal(line, &e); err != nil || e.Action == "" {
			fmt.Fprintf(out, "%s\n", line) // not an event: pass it on
			continue
		}
		key := e.Package + " " + e.Test
		switch {
		case e.Action == "build-output":
			out.WriteString(e.Output)
		case e.Test == "" && e.Action == "output":
			if e.Output != "PASS\n" && !strings.HasPrefix(e.Output, "=== ") {
				out.WriteString(e.Output)
			}
		case e.Test == "" && e.Action == "fail":
			// A package that fails with tests still running (a timeout's
			// panic, a crash): print what those tests printed, so the
			// failure names the test that hung.
			for k, lines := range buf {
				if !strings.HasPrefix(k, e.Package+" ") {
					continue
				}
				fmt.Fprintf(out, "--- %s never ended; its output:\n", strings.TrimPrefix(k, e.Package+" "))
				unended = append(unended, k)
				for _, l := range lines {
					out.WriteString(l)
				}
				delete(buf, k)
			}
		case e.Test == "":
		case e.Action == "output":
			if !strings.HasPrefix(e.Output, "=== ") {
				buf[key] = append(buf[key], e.Output)
			}
		case e.Action == "fail":
			for _, l := range buf[key] {
				out.WriteString(l)
			}
			delete(buf, key)
		case e.Action == "skip":
			reason := ""
			for _, l := range buf[key] {
				if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "--- SKIP") {
					reason = l
				}
			}
			skipped = append(skipped, fmt.Sprintf("%s %s: %s", e.Package, e.Test, reason))
			delete(buf, key)
		case e.Action == "pass":
			delete(buf, key)
		}
		out.Flush()
	}
	if err := sc.Err(); err != nil {
		fmt.Fprintf(out, "testsummary: reading go test -json: %v\n", err)
	}
	noun := "tests"
	if len(skipped) == 1 {
		noun = "test"
	}
	list := fmt.Sprintf("%d %s skipped (go test -v shows why as it runs):\n", len(skipped), noun)
	for _, s := range skipped {
		list += "  " + s + "\n"
	}
	out.WriteString(list)
	for _, k := range unended { // last, where a tail of the log shows it
		fmt.Fprintf(out, "never ended (timeout or crash): %s\n", k)
	}
	if len(os.Args) > 1 {
		if err := os.WriteFile(os.Args[1], []byte(list), 0o644); err != nil {
			fmt.Fprintf(out, "testsummary: %v\n", err)
		}
	}
}
