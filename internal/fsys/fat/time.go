package fat

import "time"

// dosTime decodes a FAT date and time (fatgen103, "Date and Time
// Formats"): the date packs day (bits 0-4), month (5-8) and years since
// 1980 (9-15); the time packs two-second units (0-4), minutes (5-10) and
// hours (11-15). centis adds hundredths of a second (0-199, the creation
// time's "tenths" byte, which counts 10 ms units). FAT records no time
// zone: the time is returned as UTC, which is what Sleuth Kit shows with
// TZ=UTC. An invalid date or time (a zero date, month 13, hour 24) is
// the zero time, as Sleuth Kit shows it (0).
func dosTime(date, tm uint16, centis uint8, loc *time.Location) time.Time {
	day := int(date & 0x1F)
	month := int(date>>5) & 0x0F
	year := 1980 + int(date>>9)
	sec := int(tm&0x1F) * 2
	min := int(tm>>5) & 0x3F
	hour := int(tm >> 11)
	if day < 1 || month < 1 || month > 12 || sec > 59 || min > 59 || hour > 23 || centis > 199 {
		return time.Time{}
	}
	if day > daysIn(month, year) {
		return time.Time{}
	}
	return time.Date(year, time.Month(month), day, hour, min, sec, int(centis)*10_000_000, loc).UTC()
}

func daysIn(month, year int) int {
	return time.Date(year, time.Month(month)+1, 0, 0, 0, 0, 0, time.UTC).Day()
}

// exfatTime decodes an exFAT timestamp (exFAT specification section
// 7.4.8: the DOS date in the high 16 bits, the DOS time in the low 16),
// its 10 ms increment (0-199) and its UTC offset byte (section 7.4.10:
// bit 7 set when valid, bits 0-6 a signed count of 15-minute intervals).
// Without a valid offset the time is taken as UTC.
func exfatTime(ts uint32, centis, utcOff uint8) time.Time {
	loc := time.UTC
	if utcOff&0x80 != 0 {
		quarters := int(int8(utcOff<<1) >> 1) // sign-extend the 7-bit field
		loc = time.FixedZone("", quarters*15*60)
	}
	return dosTime(uint16(ts>>16), uint16(ts), centis, loc)
}
