package report

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/ebsimager/ebsimager/internal/block"
)

// Text writes report.txt: the record as a log an examiner reads top to
// bottom, in the spirit of FTK Imager's acquisition log.
func (r *Report) Text(w io.Writer) error {
	r.derive()
	bw := bufio.NewWriter(w)
	t := &textWriter{w: bw}
	t.line("ebsimager chain-of-custody report (%s)", r.Format)
	t.blank()
	t.section("Case Information")
	t.field("Case Number", r.Case.CaseNumber)
	t.field("Evidence Number", r.Case.EvidenceNumber)
	t.field("Examiner", r.Case.Examiner)
	t.field("Description", r.Case.Description)
	t.field("Notes", r.Case.Notes)
	t.rule()

	e := r.Evidence
	t.section("Evidence")
	t.field("Snapshot", e.SnapshotID)
	t.field("Volume size", fmt.Sprintf("%d GiB (%d bytes)", e.VolumeSizeGiB, e.VolumeSizeBytes))
	t.field("Block size", fmt.Sprintf("%d bytes, %d block slots", e.BlockSize, e.BlockSlots))
	t.field("Kind", e.Kind)
	t.field("Location", e.Location)
	if l := e.ObjectLock; l != nil {
		lock := "legal hold"
		if l.Mode != "" {
			lock = fmt.Sprintf("%s retention until %s", strings.ToLower(l.Mode), l.RetainUntil.UTC().Format(time.RFC3339))
			if l.LegalHold {
				lock += ", and a legal hold"
			}
		}
		t.field("Object Lock", lock)
	}

	if a := r.Acquisition; a != nil {
		t.blank()
		if imp := a.Import; imp != nil {
			t.section("Source folder (imported, not fetched from AWS)")
			t.field("Provenance", "imported from a folder of Snapshot 4n6ir Imager ("+imp.Provenance+")")
			t.field("Folder", imp.Source)
			t.field("Form", imp.Form)
			t.field("Hashes", "from the original tool's file names ("+imp.HashSource+"); no AWS checksum")
			t.field("Block files", fmt.Sprintf("%d, %d imported by this run", imp.Blocks, imp.ImportedBlocks))
			if imp.IgnoredCount > 0 {
				t.field("Ignored", fmt.Sprintf("%d other entries: %s", imp.IgnoredCount, strings.Join(imp.Ignored, ", ")))
			}
		} else {
			t.section("Source snapshot (EC2 DescribeSnapshots)")
			if s := a.AWS.Snapshot; s != nil {
				t.field("Volume", s.VolumeID)
				t.field("Owner", s.OwnerID)
				t.field("Started", timeText(s.StartTime))
				t.field("State", fmt.Sprintf("%s (%s)", s.State, s.Progress))
				t.field("Volume size", fmt.Sprintf("%d GiB", s.VolumeSizeGiB))
				if s.Encrypted {
					t.field("Encrypted", "yes, KMS key "+orNone(s.KMSKeyID))
				} else {
					t.field("Encrypted", "no")
				}
				t.field("Description", s.Description)
				t.field("Storage tier", s.StorageTier)
				if len(s.Tags) == 0 {
					t.field("Tags", "none")
				}
				for i, tag := range s.Tags {
					label := ""
					if i == 0 {
						label = "Tags"
					}
					t.field(label, tag.Key+"="+tag.Value)
				}
			} else {
				t.field("", "not recorded: "+callText(findCall(a.AWS.Calls, APIDescribeSnapshots)))
			}
		}
		t.blank()
		t.section("Acquisition")
		t.run(a.Run)
		switch id := a.AWS.CallerIdentity; {
		case a.Import != nil:
			// Nothing was asked of AWS.
		case id != nil:
			t.field("AWS caller", fmt.Sprintf("%s (account %s, user id %s)", id.ARN, id.Account, id.UserID))
		default:
			t.field("AWS caller", "not recorded: "+callText(findCall(a.AWS.Calls, APIGetCallerIdentity)))
		}
		t.field("Region", a.AWS.Region)
		t.field("Endpoint", a.AWS.Endpoint)
		t.field("Duration", durationText(a.Seconds))
		if a.Import != nil {
			t.field("Blocks", fmt.Sprintf("%d held (%s), %d imported by this run, %d kept from earlier runs; none fetched from AWS",
				a.Blocks, bytesText(a.Bytes), a.Import.ImportedBlocks, a.ResumedBlocks))
		} else {
			t.field("Blocks", fmt.Sprintf("%d listed and held (%s)", a.Blocks, bytesText(a.Bytes)))
			t.field("", fmt.Sprintf("%d fetched by this run (%s), %d kept from earlier runs", a.FetchedBlocks, bytesText(a.FetchedBytes), a.ResumedBlocks))
			t.field("Throughput", fmt.Sprintf("%s/s, %.1f blocks/s", shortBytes(int64(a.BytesPerSecond)), a.BlocksPerSecond))
			t.field("Requests", fmt.Sprintf("%d List, %d Get", a.Requests.ListCalls, a.Requests.GetCalls))
			t.field("Retries", countsText(a.Requests.RetriesByKind))
			t.field("Errors", countsText(a.Requests.ErrorsByKind))
		}
		if a.ManifestSHA256 != "" {
			t.field("Manifest SHA-256", a.ManifestSHA256)
		}
		if b := a.Base; b != nil {
			t.field("Base evidence", fmt.Sprintf("%s (%s), manifest SHA-256 %s", b.Directory, b.SnapshotID, b.ManifestSHA256))
			t.field("", fmt.Sprintf("%s listed; %s reused (%d linked, %d copied)", plural(b.ChangedBlocks, "changed block"), plural(b.ReusedBlocks, "block"), b.LinkedBlocks, b.CopiedBlocks))
		}
		if n := int64(len(a.FailedBlocks)) + a.FailedBlocksUnlisted; n > 0 {
			t.field("INCOMPLETE", fmt.Sprintf("%s failed after every retry; the evidence has no manifest yet", plural(n, "block")))
			for _, f := range a.FailedBlocks {
				t.field("", fmt.Sprintf("block %d: %s", f.Index, f.Error))
			}
			if a.FailedBlocksUnlisted > 0 {
				t.field("", fmt.Sprintf("and %d more: the run stopped because too many blocks failed", a.FailedBlocksUnlisted))
			}
		}
		if a.AdoptedBlocks > 0 || a.RejectedBlocks > 0 {
			t.field("Checked", fmt.Sprintf("%d block files of earlier runs kept without a journal line (they matched their SHA-256); %d did not match and were fetched again",
				a.AdoptedBlocks, a.RejectedBlocks))
		}
		t.unverified(a.Unverified)
		for i, run := range a.Runs {
			label := ""
			if i == 0 {
				label = "Earlier runs"
			}
			t.field(label, fmt.Sprintf("%s, SHA-256 %s", run.Key, run.SHA256))
		}
		if r := a.Replaced; r != nil {
			t.field("Replaced", replacedText(r))
		}
		t.hashes("Image", a.ImageFiles, a.ImageHashes)
		if a.Import == nil {
			t.blank()
			t.section("AWS context calls")
			for _, c := range a.AWS.Calls {
				t.field(c.API, callText(&c))
			}
			if len(a.AWS.Calls) == 0 {
				t.field("", "none made")
			}
		}
	}

	t.blank()
	t.section("Partitions and file systems")
	switch {
	case r.Layout != nil:
		var b bytes.Buffer
		r.Layout.Text(&b)
		for _, l := range strings.Split(strings.TrimRight(b.String(), "\n"), "\n") {
			t.line("  %s", l)
		}
	case r.LayoutError != "":
		t.field("", "not inspected: "+r.LayoutError)
	default:
		t.field("", "not inspected")
	}

	if m := r.BlockMap; m != nil {
		t.blank()
		t.section("Block map")
		t.blockMap(m)
	}

	if len(r.Notes) > 0 {
		t.blank()
		t.section("Notes")
		for _, n := range r.Notes {
			t.wrapped("  - ", "    ", n)
		}
	}

	t.rule()
	t.section(r.StepsHeading())
	if len(r.Steps) == 0 {
		t.field("", "none")
	}
	for i, s := range r.Steps {
		if i > 0 {
			t.blank()
		}
		t.line("%d. %s: %s", i+1, s.Kind, s.Outcome)
		t.run(s.Run)
		if s.Error != "" {
			t.field("Error", s.Error)
		}
		switch {
		case s.Export != nil:
			x := s.Export
			t.field("Format", x.Format)
			t.field("Size", fmt.Sprintf("%s, %s written", bytesText(x.Size), plural(x.Blocks, "block")))
			t.hashes("Image", x.Segments, x.Hashes)
			if x.FileSystemCheck != "" {
				t.field("File system", x.FileSystemCheck)
			}
		case s.Verify != nil:
			v := s.Verify
			t.field("Target", v.Target)
			result := "verified: everything matched"
			if !v.OK {
				result = "FAILED: " + plural(int64(len(v.Problems))+v.MoreProblems, "problem")
			}
			t.field("Result", result)
			t.field("Checked", fmt.Sprintf("%d blocks in the manifest, %d stored files matched, %d contents matched %s, %d needed a key",
				v.Blocks, v.StoredChecked, v.ContentChecked, r.ContentSource(), v.Encrypted))
			if v.ManifestSHA256 != "" {
				t.field("Manifest SHA-256", v.ManifestSHA256)
			}
			t.hashes("Image", nil, v.Hashes)
			for _, p := range v.Problems {
				where := p.Name
				if p.Index >= 0 {
					where = fmt.Sprintf("block %d %s", p.Index, p.Name)
				}
				t.field("Problem", fmt.Sprintf("%s %s: %s", p.Kind, where, p.Detail))
			}
			if v.MoreProblems > 0 {
				t.field("", fmt.Sprintf("and %d more problems", v.MoreProblems))
			}
			for _, c := range v.Compared {
				line := c.Record + ": " + c.Outcome
				if c.Detail != "" {
					line += " (" + c.Detail + ")"
				}
				t.field("Compared with", line)
			}
			if sc := v.Snapshot; sc != nil {
				what := "listing"
				if sc.Full {
					what = "listing and every block's AWS checksum"
				}
				t.field("Snapshot", fmt.Sprintf("%s %s: %d listed, %d fetched; %d missing, %d extra, %d differ, %d not fetched; %d List + %d Get calls (estimated $%.4f)",
					sc.SnapshotID, what, sc.Listed, sc.Fetched, sc.MissingCount, sc.ExtraCount, sc.DifferCount, sc.FailedCount,
					sc.Requests.ListCalls, sc.Requests.GetCalls, sc.EstimatedCostUSD))
			}
		case s.Acquire != nil:
			x := s.Acquire
			result := "complete: nothing fetched, the manifest kept as it was"
			if !x.Complete {
				result = fmt.Sprintf("%d blocks fetched again, the manifest kept as it was", x.FetchedBlocks)
			}
			t.field("Result", result)
			t.field("Checked", fmt.Sprintf("%d blocks in the manifest, %d stored files matched their SHA-256 (%d without a journal line), %d did not",
				x.Blocks, x.CheckedBlocks, x.AdoptedBlocks, x.RejectedBlocks))
			t.field("Manifest SHA-256", x.ManifestSHA256)
			t.field("Requests", fmt.Sprintf("%d List, %d Get", x.Requests.ListCalls, x.Requests.GetCalls))
			t.unverified(x.Unverified)
		case s.ReadLive != nil:
			x := s.ReadLive
			t.field("Snapshot", x.SnapshotID+" read live")
			t.field("Stored", plural(x.StoredBlocks, "block")+" fetched, verified and stored")
			t.field("Requests", fmt.Sprintf("%d List, %d Get", x.Requests.ListCalls, x.Requests.GetCalls))
		case s.Transform != nil:
			x := s.Transform
			t.field("Operation", x.Operation)
			t.field("Source", x.Source)
			t.field("Destination", x.Destination)
			if x.SourceEvidence != "" {
				t.field("Converted from", x.SourceEvidence)
			}
			t.field("Stored as", fmt.Sprintf("codec %s, encryption %s", x.Codec, x.Encryption))
			t.field("Blocks", fmt.Sprintf("%d (%s)", x.Blocks, bytesText(x.Bytes)))
			if x.SourceManifestSHA256 != "" {
				t.field("From manifest", x.SourceManifestSHA256)
			}
			if x.ManifestSHA256 != "" {
				t.field("Manifest SHA-256", x.ManifestSHA256)
			}
		}
	}
	return bw.Flush()
}

func (t *textWriter) unverified(us []Unverified) {
	for _, u := range us {
		t.field("Set aside", fmt.Sprintf("%s → %s: %s", u.Name, u.MovedTo, u.Reason))
	}
}

func replacedText(r *Replaced) string {
	if r.ManifestSHA256 == "" {
		return "the incomplete evidence of " + r.SnapshotID + " that this directory held"
	}
	return fmt.Sprintf("the evidence of %s that this directory held (manifest SHA-256 %s)", r.SnapshotID, r.ManifestSHA256)
}

// textWriter writes aligned "  Label: value" lines.
type textWriter struct{ w io.Writer }

// labelWidth aligns values after the longest label, "Manifest SHA-256:".
const labelWidth = 19

func (t *textWriter) line(format string, args ...any) { fmt.Fprintf(t.w, format+"\n", args...) }
func (t *textWriter) blank()                          { io.WriteString(t.w, "\n") }
func (t *textWriter) section(name string)             { t.line("%s:", name) }
func (t *textWriter) rule() {
	t.blank()
	t.line("%s", strings.Repeat("-", 72))
	t.blank()
}

func (t *textWriter) field(label, value string) {
	if label != "" {
		label += ":"
	}
	t.line("  %-*s %s", labelWidth, label, strings.ReplaceAll(value, "\n", " "))
}

// wrapped writes s in lines of at most 76 columns.
func (t *textWriter) wrapped(first, rest, s string) {
	prefix := first
	line := ""
	for _, word := range strings.Fields(s) {
		if line != "" && len(prefix)+len(line)+1+len(word) > 76 {
			t.line("%s%s", prefix, line)
			prefix, line = rest, ""
		}
		if line != "" {
			line += " "
		}
		line += word
	}
	t.line("%s%s", prefix, line)
}

func (t *textWriter) run(r Run) {
	t.field("Tool", "ebsimager "+r.ToolVersion)
	t.field("Command line", shellJoin(r.CommandLine))
	h := r.Host
	host := fmt.Sprintf("%s (%s/%s", orNone(h.Hostname), h.OS, h.Arch)
	if h.Kernel != "" {
		host += ", kernel " + h.Kernel
	}
	t.field("Host", host+")")
	user := fmt.Sprintf("%s (uid %s", orNone(h.User), h.UID)
	if h.UserName != "" && h.UserName != h.User {
		user += ", " + h.UserName
	}
	t.field("OS user", user+")")
	t.field("Started", timeText(r.StartedAt))
	t.field("Finished", timeText(r.FinishedAt))
}

func (t *textWriter) hashes(what string, files []string, hashes map[string]string) {
	for _, r := range hashRows(what, files, hashes) {
		t.field(r.Label, r.Value)
	}
}

// textMapChars bounds the text block map: 32 lines of 64 characters.
const (
	textMapColumns = 64
	textMapChars   = 32 * textMapColumns
)

// blockMap draws the map with one character per group of cells: "." for
// no data, ":" for under half, "+" for half or more, "#" for full, "C"
// where blocks changed.
func (t *textWriter) blockMap(m *BlockMap) {
	group := max(1, (m.Cells+textMapChars-1)/textMapChars)
	chars := (m.Cells + group - 1) / group
	blocksPerChar := int64(group) * m.SlotsPerCell
	pct := 0.0
	if m.Slots > 0 {
		pct = 100 * float64(m.AllocatedBlocks) / float64(m.Slots)
	}
	t.field("Allocated", fmt.Sprintf("%d of %d block slots (%.2f%%)", m.AllocatedBlocks, m.Slots, pct))
	if m.Changed != nil {
		t.field("Changed", fmt.Sprintf("%d blocks since %s", m.ChangedBlocks, orNone(m.ChangedBase)))
	}
	per := "1 block"
	if blocksPerChar > 1 {
		per = fmt.Sprintf("%d blocks", blocksPerChar)
	}
	t.field("Legend", fmt.Sprintf("one character per %s (%s): . none  : under half  + half or more  # full  C changed",
		per, shortBytes(blocksPerChar*block.Size)))
	for row := 0; row*textMapColumns < chars; row++ {
		var b strings.Builder
		for c := row * textMapColumns; c < min(chars, (row+1)*textMapColumns); c++ {
			var alloc, slots, changed int64
			for i := c * group; i < min(m.Cells, (c+1)*group); i++ {
				alloc += m.Allocated[i]
				slots += m.CellSlots(i)
				if m.Changed != nil {
					changed += m.Changed[i]
				}
			}
			switch {
			case changed > 0:
				b.WriteByte('C')
			case alloc == 0:
				b.WriteByte('.')
			case alloc == slots:
				b.WriteByte('#')
			case 2*alloc < slots:
				b.WriteByte(':')
			default:
				b.WriteByte('+')
			}
		}
		offset := int64(row*textMapColumns) * blocksPerChar * block.Size
		t.line("  %10s  %s", shortBytes(offset), b.String())
	}
}

func findCall(calls []Call, api string) *Call {
	for i := range calls {
		if calls[i].API == api {
			return &calls[i]
		}
	}
	return nil
}

func callText(c *Call) string {
	if c == nil {
		return "not called"
	}
	attempts := fmt.Sprintf("%d attempts", c.Attempts)
	if c.Attempts == 1 {
		attempts = "1 attempt"
	}
	if c.Outcome == OutcomeOK {
		return "ok (" + attempts + ")"
	}
	msg := c.Error
	if c.Code != "" && !strings.Contains(msg, c.Code) {
		msg = c.Code + ": " + msg
	}
	return fmt.Sprintf("%s: %s (%s)", c.Outcome, msg, attempts)
}

func countsText(m map[string]int64) string {
	if len(m) == 0 {
		return "none"
	}
	var parts []string
	for _, k := range sortedKeys(m) {
		parts = append(parts, fmt.Sprintf("%s %d", k, m[k]))
	}
	return strings.Join(parts, ", ")
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}

func timeText(t time.Time) string {
	if t.IsZero() {
		return "(not recorded)"
	}
	return t.UTC().Format("2006-01-02 15:04:05.000 UTC")
}

func durationText(seconds float64) string {
	return (time.Duration(seconds * float64(time.Second))).Round(time.Millisecond).String()
}

// bytesText gives a byte count exactly and in binary units.
func bytesText(n int64) string {
	return fmt.Sprintf("%d bytes, %s", n, shortBytes(n))
}

// shortBytes gives a byte count in binary units with one decimal.
func shortBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	v, i := float64(n), -1
	for v >= unit && i < 5 {
		v /= unit
		i++
	}
	return fmt.Sprintf("%.1f %ciB", v, "KMGTPE"[i])
}

// hashOrder lists hash algorithms as imaging logs give them: MD5, SHA-1,
// SHA-256, then any other by name.
func hashOrder(m map[string]string) []string {
	known := []string{"md5", "sha1", "sha256"}
	var out []string
	for _, k := range known {
		if _, ok := m[k]; ok {
			out = append(out, k)
		}
	}
	for _, k := range sortedKeys(m) {
		if k != "md5" && k != "sha1" && k != "sha256" {
			out = append(out, k)
		}
	}
	return out
}

func hashName(alg string) string {
	switch alg {
	case "md5":
		return "MD5"
	case "sha1":
		return "SHA-1"
	case "sha256":
		return "SHA-256"
	}
	return strings.ToUpper(alg)
}

// shellJoin quotes a command line so it can be pasted into a POSIX
// shell.
func shellJoin(args []string) string {
	out := make([]string, len(args))
	for i, a := range args {
		if a != "" && strings.IndexFunc(a, func(r rune) bool {
			return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./=:,+@%", r))
		}) < 0 {
			out[i] = a
			continue
		}
		out[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
	}
	return strings.Join(out, " ")
}

// plural writes n and noun, with an s unless n is 1.
func plural(n int64, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
