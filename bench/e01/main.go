// Command e01bench writes a raw image as an E01 with ebsimager's writer and
// prints how long it took and how large the result is, for run.sh to set
// against libewf's ewfacquire.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/ebsimager/ebsimager/internal/image/ewf"
)

func main() {
	in := flag.String("in", "", "raw image to read")
	out := flag.String("out", "", "E01 path without extension")
	level := flag.String("level", "fast", "compression: none, fast or best")
	segment := flag.Int64("segment", ewf.DefaultSegmentSize, "segment size in bytes")
	workers := flag.Int("workers", 0, "compression workers (0: one per CPU)")
	flag.Parse()
	if err := run(*in, *out, *level, *segment, *workers); err != nil {
		fmt.Fprintln(os.Stderr, "e01bench:", err)
		os.Exit(1)
	}
}

func run(in, out, levelName string, segment int64, workers int) error {
	level, err := ewf.ParseLevel(levelName)
	if err != nil {
		return err
	}
	f, err := os.Open(in)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	start := time.Now()
	w, err := ewf.Create(out, st.Size(), ewf.Options{SegmentSize: segment, Level: level, Workers: workers,
		Meta: ewf.Metadata{CaseNumber: "bench", ToolVersion: "e01bench", OS: "Linux"}})
	if err != nil {
		return err
	}
	// Read the way ewfacquire does: the whole input, in order, no hole
	// detection on this side (the writer's workers still spot zero chunks).
	buf := make([]byte, 512<<10) // one EBS block
	if _, err := io.CopyBuffer(onlyWriter{w}, onlyReader{f}, buf); err != nil {
		w.Abort()
		return err
	}
	res, err := w.Close()
	if err != nil {
		return err
	}
	elapsed := time.Since(start)
	var size int64
	for _, s := range res.Segments {
		st, err := os.Stat(s)
		if err != nil {
			return err
		}
		size += st.Size()
	}
	return json.NewEncoder(os.Stdout).Encode(map[string]any{
		"seconds":  elapsed.Seconds(),
		"bytes":    size,
		"segments": len(res.Segments),
		"md5":      fmt.Sprintf("%x", res.MD5),
		"sha1":     fmt.Sprintf("%x", res.SHA1),
		"sha256":   fmt.Sprintf("%x", res.SHA256),
	})
}

// onlyWriter and onlyReader hide ReadFrom/WriteTo so io.CopyBuffer uses
// the 512 KiB buffer.
type onlyWriter struct{ io.Writer }
type onlyReader struct{ io.Reader }
