package casework

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"time"
)

// WriteText renders the case for people (case.txt): the case, then one
// paragraph per volume.
func (c *Case) WriteText(w io.Writer) error {
	var done int
	for _, v := range c.Volumes {
		if v.Status == StatusComplete {
			done++
		}
	}
	fmt.Fprintf(w, "ebsimager case: %d of %s complete, status %s (exit %d)\n", done, plural(int64(len(c.Volumes)), "volume"), c.Status, c.ExitCode)
	fmt.Fprintf(w, "  targets       %s\n", strings.Join(c.Targets, " "))
	if c.Preservation != "" {
		fmt.Fprintf(w, "  preservation  %s\n", c.Preservation)
	}
	if c.PreservationError != "" {
		fmt.Fprintf(w, "  preservation  stopped part way: %s\n", strings.ReplaceAll(c.PreservationError, "\n", "\n                "))
	}
	if c.AccountRate > 0 {
		fmt.Fprintf(w, "  account       %g GetSnapshotBlock requests/s shared by every volume\n", c.AccountRate)
	} else {
		fmt.Fprintf(w, "  account       no account-wide limit\n")
	}
	fmt.Fprintf(w, "  created       %s\n", stamp(c.Created))
	fmt.Fprintf(w, "  run %-9d started %s", c.Runs, stamp(c.Started))
	if !c.Finished.IsZero() {
		fmt.Fprintf(w, ", finished %s", stamp(c.Finished))
	}
	fmt.Fprintln(w)
	for _, v := range c.Volumes {
		fmt.Fprintln(w)
		v.writeText(w)
	}
	return nil
}

func (v *Volume) writeText(w io.Writer) {
	fmt.Fprintf(w, "%s  %s\n", v.SnapshotID, v.Status)
	if v.InstanceID != "" || v.VolumeID != "" {
		var from []string
		if v.InstanceID != "" {
			from = append(from, "instance "+v.InstanceID)
		}
		if v.Device != "" {
			from = append(from, "device "+v.Device)
		}
		if v.VolumeID != "" {
			from = append(from, "volume "+v.VolumeID)
		}
		fmt.Fprintf(w, "  of            %s\n", strings.Join(from, ", "))
	}
	fmt.Fprintf(w, "  directory     %s/\n", v.Directory)
	if v.ManifestSHA256 != "" {
		fmt.Fprintf(w, "  manifest      sha256 %s\n", v.ManifestSHA256)
	}
	if v.Status == StatusPending {
		return
	}
	fmt.Fprintf(w, "  blocks        %d listed, %d fetched now, %d kept from an earlier run, %d failed\n", v.Blocks, v.Fetched, v.Kept, v.FailedBlocks)
	fmt.Fprintf(w, "  data          %s in %.1f s\n", plural(v.Bytes, "byte"), v.Seconds)
	fmt.Fprintf(w, "  requests      %d List, %d Get, %s; %s of the account limiter\n", v.ListCalls, v.GetCalls, RetriesText(v.RetriesByKind), plural(v.AccountTurns, "turn"))
	if v.Error != "" {
		fmt.Fprintf(w, "  error         (exit %d) %s\n", v.ExitCode, strings.ReplaceAll(v.Error, "\n", "\n                "))
	}
}

func stamp(t time.Time) string { return t.UTC().Format(time.RFC3339) }

func plural(n int64, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	if strings.HasSuffix(noun, "y") {
		return fmt.Sprintf("%d %sies", n, noun[:len(noun)-1])
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

// RetriesText renders retries by kind: "no retries", or "12 retries
// (9 throttle, 3 server-error)", the most frequent kind first.
func RetriesText(byKind map[string]int64) string {
	var total int64
	kinds := make([]string, 0, len(byKind))
	for k, n := range byKind {
		if n > 0 {
			total += n
			kinds = append(kinds, k)
		}
	}
	if total == 0 {
		return "no retries"
	}
	sort.Slice(kinds, func(i, j int) bool {
		if byKind[kinds[i]] != byKind[kinds[j]] {
			return byKind[kinds[i]] > byKind[kinds[j]]
		}
		return kinds[i] < kinds[j]
	})
	parts := make([]string, len(kinds))
	for i, k := range kinds {
		parts[i] = fmt.Sprintf("%d %s", byKind[k], k)
	}
	return fmt.Sprintf("%s (%s)", plural(total, "retry"), strings.Join(parts, ", "))
}
