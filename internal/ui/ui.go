package ui

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"golang.org/x/term"
)

// Status draws one status line.
type Status struct {
	mu       sync.Mutex
	w        io.Writer
	tty      bool
	quiet    bool
	interval time.Duration
	last     time.Time
	drawn    bool
}

// NewStatus returns a Status writing to w: redrawn in place when w is a
// terminal, otherwise a plain line every interval; nothing when quiet.
func NewStatus(w io.Writer, quiet bool, interval time.Duration) *Status {
	tty := false
	if f, ok := w.(*os.File); ok {
		tty = term.IsTerminal(int(f.Fd()))
	}
	return &Status{w: w, tty: tty, quiet: quiet, interval: interval}
}

// TTY reports whether the status is drawn on a terminal.
func (s *Status) TTY() bool { return s.tty }

// Update shows line: at once on a terminal, else if interval has passed.
func (s *Status) Update(line string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.quiet {
		return
	}
	if s.tty {
		fmt.Fprintf(s.w, "\r\x1b[K%s", line)
		s.drawn = true
		return
	}
	if now := time.Now(); now.Sub(s.last) >= s.interval {
		s.last = now
		fmt.Fprintln(s.w, line)
	}
}

// Done ends the status line with line (always shown unless quiet).
func (s *Status) Done(line string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.quiet {
		return
	}
	if s.tty && s.drawn {
		fmt.Fprint(s.w, "\r\x1b[K")
	}
	if line != "" {
		fmt.Fprintln(s.w, line)
	}
}

// Bytes formats n in binary units.
func Bytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit && exp < 5; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// Rate formats bytes per second as MiB/s.
func Rate(bytes int64, d time.Duration) string {
	if d <= 0 {
		return "- MiB/s"
	}
	return fmt.Sprintf("%.1f MiB/s", float64(bytes)/(1<<20)/d.Seconds())
}

// Duration formats d to the second, or to the millisecond below a second.
func Duration(d time.Duration) string {
	if d < time.Second {
		return d.Round(time.Millisecond).String()
	}
	return d.Round(time.Second).String()
}

// Plural writes n and noun, in the plural unless n is 1: "1 block",
// "2 blocks", "0 blocks", "1 retry", "3 retries".
func Plural(n int64, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	if k := len(noun); k >= 2 && noun[k-1] == 'y' && !strings.ContainsRune("aeiou", rune(noun[k-2])) {
		return fmt.Sprintf("%d %sies", n, noun[:k-1])
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

// ETA estimates the time left from recent progress only: a run that
// stops making progress (a block throttled without end) shows "stalled",
// not a time computed from blocks done minutes ago.
type ETA struct {
	// Window is how far back progress counts; zero means 30 seconds.
	Window  time.Duration
	samples []etaSample
}

type etaSample struct {
	at   time.Time
	done int64
}

// Update records done units at now and returns the estimate for
// remaining units: "--" before the first unit is done (or while the
// total is unknown, remaining < 0), "stalled" when none was done within
// the window, "0s" when nothing remains.
func (e *ETA) Update(now time.Time, done, remaining int64) string {
	window := e.Window
	if window <= 0 {
		window = 30 * time.Second
	}
	e.samples = append(e.samples, etaSample{now, done})
	// Keep the newest sample at or before the window's start, and every
	// one after it.
	cut := 0
	for cut+1 < len(e.samples) && now.Sub(e.samples[cut+1].at) >= window {
		cut++
	}
	e.samples = e.samples[cut:]
	switch {
	case remaining == 0:
		return "0s"
	case remaining < 0 || done == 0:
		return "--"
	}
	first := e.samples[0]
	if done <= first.done {
		if now.Sub(first.at) >= window {
			return "stalled"
		}
		return "--"
	}
	rate := float64(done-first.done) / now.Sub(first.at).Seconds()
	return Duration(time.Duration(float64(remaining) / rate * float64(time.Second)))
}
