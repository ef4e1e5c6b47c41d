package event

import (
	"regexp"
	"testing"
	"time"
)

// rfc3339Shape is the strict shape parseTimestamp accepts, written
// independently of it (and of the schema) as a test oracle. It bounds the
// zone offset because RFC 3339 does (hours 00-23, minutes 00-59) while
// time.Parse's general fallback accepts +24:00 or +02:60.
var rfc3339Shape = regexp.MustCompile(`^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])$`)

// checkTimestamp asserts that parseTimestamp accepts s exactly when
// time.Parse(time.RFC3339Nano) does and s has the strict shape, and that
// both give the same instant, in UTC.
func checkTimestamp(t *testing.T, s string) {
	t.Helper()
	got, ok := parseTimestamp([]byte(s))
	want, err := time.Parse(time.RFC3339Nano, s)
	wantOK := err == nil && rfc3339Shape.MatchString(s)
	if ok != wantOK {
		t.Fatalf("parseTimestamp(%q) ok = %v; time.Parse err = %v, strict shape %v", s, ok, err, rfc3339Shape.MatchString(s))
	}
	if ok && (!got.Equal(want) || got.Location() != time.UTC) {
		t.Fatalf("parseTimestamp(%q) = %v, time.Parse = %v", s, got, want)
	}
}

func TestParseTimestamp(t *testing.T) {
	for _, s := range timestampSeeds() {
		t.Run(s, func(t *testing.T) { checkTimestamp(t, s) })
	}
}

func timestampSeeds() []string {
	return []string{
		"2025-06-01T12:00:00Z",
		"2025-06-01T12:00:00.5Z",
		"2025-06-01T12:00:00.123456789Z",
		"2025-06-01T12:00:00.1234567891234Z",
		"2025-06-01T14:00:00+02:00",
		"2025-06-01T06:30:00-05:30",
		"2025-06-01T12:00:00-00:00",
		"2025-06-01T12:00:00+23:59",
		"2025-06-01T12:00:00+24:00",
		"2025-06-01T12:00:00+02:60",
		"2024-02-29T00:00:00Z",
		"2023-02-29T00:00:00Z",
		"2000-02-29T00:00:00Z",
		"1900-02-29T00:00:00Z",
		"2025-04-31T00:00:00Z",
		"2025-12-31T23:59:59.999999999Z",
		"2025-13-01T00:00:00Z",
		"2025-00-01T00:00:00Z",
		"2025-06-00T00:00:00Z",
		"2025-06-01T24:00:00Z",
		"2025-06-01T12:60:00Z",
		"2025-06-01T12:00:60Z",
		"2025-06-01T12:00:00",
		"2025-06-01t12:00:00Z",
		"2025-06-01T12:00:00z",
		"2025-06-01 12:00:00Z",
		"2025-06-01T12:00:00.Z",
		"2025-06-01T12:00:00,5Z",
		"2025-06-01T1:00:00Z",
		"2025-6-01T12:00:00Z",
		"+2025-06-01T12:00:00Z",
		"2025-06-01T12:00:00+0200",
		"2025-06-01T12:00:00+02",
		"2025-06-01T12:00:00Z ",
		"0000-01-01T00:00:00Z",
		"9999-12-31T23:59:59Z",
		"",
	}
}

// FuzzParseTimestamp checks the fast path against time.Parse.
func FuzzParseTimestamp(f *testing.F) {
	for _, s := range timestampSeeds() {
		f.Add(s)
	}
	f.Fuzz(checkTimestamp)
}

// TestDaysSinceEpoch checks every date of years 0000-9999 against time.Date.
func TestDaysSinceEpoch(t *testing.T) {
	for year := 0; year <= 9999; year++ {
		for month := 1; month <= 12; month++ {
			for day := 1; day <= daysIn(month, year); day++ {
				want := time.Date(year, time.Month(month), day, 0, 0, 0, 0, time.UTC).Unix()
				if got := daysSinceEpoch(year, month, day); got*86400 != want {
					t.Fatalf("daysSinceEpoch(%04d-%02d-%02d) = %d days, want %d s", year, month, day, got, want)
				}
			}
		}
		if daysIn(2, year) != time.Date(year, 3, 0, 0, 0, 0, 0, time.UTC).Day() {
			t.Fatalf("daysIn(2, %d) = %d", year, daysIn(2, year))
		}
	}
}
