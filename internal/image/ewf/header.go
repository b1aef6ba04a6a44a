package ewf

import (
	"encoding/binary"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf16"
)

// Metadata is the case information an E01 carries in its header2 and
// header sections.
type Metadata struct {
	CaseNumber     string // c
	EvidenceNumber string // n
	Examiner       string // e
	Description    string // a
	Notes          string // t
	Model          string // md: the media model
	SerialNumber   string // sn: the media serial number
	ToolVersion    string // av: the acquiring software and version
	OS             string // ov: the platform the acquisition ran on
	AcquiredAt     time.Time
	SystemAt       time.Time
}

// The header2 text EnCase 6 (and libewf's encase6 format) write: three
// categories separated by newlines, values separated by tabs. "main" holds
// the case metadata; "srce" and "sub" are the empty source and subject
// records EnCase always includes. See the spec's "Header2 section, EnCase 5
// to 7 (EWF-E01)".
var header2Keys = []string{"a", "c", "n", "e", "t", "md", "sn", "av", "ov", "m", "u", "p", "dc"}

const header2Tail = "srce\n0\t1\np\tn\tid\tev\ttb\tlo\tpo\tah\tgu\taq\n0\t0\n\t\t\t\t\t-1\t-1\t\t\t\n\n" +
	"sub\n0\t1\np\tn\tid\tnu\tco\tgu\n0\t0\n\t\t\t\t1\t\n\n"

// The header text for EnCase 4 to 7: one category, lines ending in CR LF.
var headerKeys = []string{"c", "n", "a", "e", "t", "av", "ov", "m", "u", "p"}

// clean makes s fit in a tab-separated header value: tabs and line breaks
// become spaces, since neither format can escape them.
func clean(s string) string {
	return strings.Map(func(r rune) rune {
		switch r {
		case '\t', '\r', '\n':
			return ' '
		}
		return r
	}, s)
}

// asciiOnly replaces what the header section's ASCII codepage cannot hold.
func asciiOnly(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r > 0x7e {
			return '?'
		}
		return r
	}, s)
}

func (m Metadata) values(date func(time.Time) string) map[string]string {
	return map[string]string{
		"a": m.Description, "c": m.CaseNumber, "n": m.EvidenceNumber, "e": m.Examiner,
		"t": m.Notes, "md": m.Model, "sn": m.SerialNumber, "av": m.ToolVersion, "ov": m.OS,
		"m": date(m.AcquiredAt), "u": date(m.SystemAt),
		"p": "0", // no password: "it should be simply the character '0'"
	}
}

// header2Text returns the header2 text: UTF-16 little-endian with a byte
// order mark, dates as POSIX timestamps.
func header2Text(m Metadata) []byte {
	vals := m.values(func(t time.Time) string { return strconv.FormatInt(t.Unix(), 10) })
	var sb strings.Builder
	sb.WriteString("3\nmain\n")
	sb.WriteString(strings.Join(header2Keys, "\t"))
	sb.WriteString("\n")
	for i, k := range header2Keys {
		if i > 0 {
			sb.WriteString("\t")
		}
		sb.WriteString(clean(vals[k]))
	}
	sb.WriteString("\n\n")
	sb.WriteString(header2Tail)
	units := utf16.Encode([]rune(sb.String()))
	b := make([]byte, 2+2*len(units))
	b[0], b[1] = 0xff, 0xfe // UTF-16 little-endian byte order mark
	for i, u := range units {
		binary.LittleEndian.PutUint16(b[2+2*i:], u)
	}
	return b
}

// headerText returns the header text: ASCII, CR LF line ends, dates as
// "year month day hour minute second" (in UTC here; EnCase writes its
// local time, which the format does not record).
func headerText(m Metadata) []byte {
	vals := m.values(func(t time.Time) string {
		t = t.UTC()
		return fmt.Sprintf("%d %d %d %d %d %d", t.Year(), t.Month(), t.Day(), t.Hour(), t.Minute(), t.Second())
	})
	var sb strings.Builder
	sb.WriteString("1\r\nmain\r\n")
	sb.WriteString(strings.Join(headerKeys, "\t"))
	sb.WriteString("\r\n")
	for i, k := range headerKeys {
		if i > 0 {
			sb.WriteString("\t")
		}
		sb.WriteString(asciiOnly(clean(vals[k])))
	}
	sb.WriteString("\r\n\r\n")
	return []byte(sb.String())
}

// decodeHeader2 turns header2 bytes into text: UTF-16 with a byte order
// mark (little-endian when it is missing).
func decodeHeader2(b []byte) string {
	bo := binary.ByteOrder(binary.LittleEndian)
	if len(b) >= 2 {
		switch {
		case b[0] == 0xff && b[1] == 0xfe:
			b = b[2:]
		case b[0] == 0xfe && b[1] == 0xff:
			bo, b = binary.BigEndian, b[2:]
		}
	}
	units := make([]uint16, len(b)/2)
	for i := range units {
		units[i] = bo.Uint16(b[2*i:])
	}
	return string(utf16.Decode(units))
}

// parseHeaderText reads the "main" category of header or header2 text.
func parseHeaderText(text string) (Metadata, error) {
	var m Metadata
	lines := strings.Split(strings.ReplaceAll(text, "\r\n", "\n"), "\n")
	i := 0
	for i < len(lines) && lines[i] != "main" {
		i++
	}
	if i+2 >= len(lines) {
		return m, fmt.Errorf("no main category")
	}
	keys := strings.Split(lines[i+1], "\t")
	vals := strings.Split(lines[i+2], "\t")
	if len(keys) != len(vals) {
		return m, fmt.Errorf("main category: %d names, %d values", len(keys), len(vals))
	}
	for j, k := range keys {
		if j >= len(vals) {
			break
		}
		v := vals[j]
		switch k {
		case "a":
			m.Description = v
		case "c":
			m.CaseNumber = v
		case "n":
			m.EvidenceNumber = v
		case "e":
			m.Examiner = v
		case "t":
			m.Notes = v
		case "md":
			m.Model = v
		case "sn":
			m.SerialNumber = v
		case "av":
			m.ToolVersion = v
		case "ov":
			m.OS = v
		case "m":
			m.AcquiredAt = parseHeaderDate(v)
		case "u":
			m.SystemAt = parseHeaderDate(v)
		}
	}
	return m, nil
}

// parseHeaderDate reads a POSIX timestamp (header2, linen) or
// "year month day hour minute second" (header), taken as UTC. A value it
// cannot read gives the zero time.
func parseHeaderDate(v string) time.Time {
	v = strings.TrimSpace(v)
	if v == "" {
		return time.Time{}
	}
	if sec, err := strconv.ParseInt(v, 10, 64); err == nil {
		if sec == 0 {
			return time.Time{}
		}
		return time.Unix(sec, 0).UTC()
	}
	f := strings.Fields(v)
	if len(f) != 6 {
		return time.Time{}
	}
	var n [6]int
	for i, s := range f {
		x, err := strconv.Atoi(s)
		if err != nil {
			return time.Time{}
		}
		n[i] = x
	}
	return time.Date(n[0], time.Month(n[1]), n[2], n[3], n[4], n[5], 0, time.UTC)
}
