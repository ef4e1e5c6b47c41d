package event

import "time"

// parseTimestamp parses an RFC 3339 timestamp of the shape
// 2006-01-02T15:04:05[.fraction](Z|±hh:mm) and returns it in UTC. It accepts
// exactly the strings of that shape that time.Parse(time.RFC3339Nano, s)
// accepts, and returns the same instant: a fraction may have any number of
// digits, of which the first nine count (the rest are truncated, as
// time.Parse does). Unlike time.Parse it never allocates.
func parseTimestamp(s []byte) (time.Time, bool) {
	if len(s) < len("2006-01-02T15:04:05Z") ||
		s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':' || s[16] != ':' {
		return time.Time{}, false
	}
	year, ok1 := digits(s[0:4])
	month, ok2 := digits(s[5:7])
	day, ok3 := digits(s[8:10])
	hour, ok4 := digits(s[11:13])
	minute, ok5 := digits(s[14:16])
	sec, ok6 := digits(s[17:19])
	if !(ok1 && ok2 && ok3 && ok4 && ok5 && ok6) ||
		month < 1 || month > 12 || day < 1 || day > daysIn(month, year) ||
		hour > 23 || minute > 59 || sec > 59 {
		return time.Time{}, false
	}
	nsec, rest := fraction(s[19:])
	offset, ok := zoneOffset(rest)
	if !ok {
		return time.Time{}, false
	}
	secs := daysSinceEpoch(year, month, day)*86400 + int64(hour*3600+minute*60+sec-offset)
	return time.Unix(secs, int64(nsec)).UTC(), true
}

// daysSinceEpoch returns the number of days from 1970-01-01 to the given
// proleptic Gregorian date (month 1-12), by the days_from_civil algorithm
// of Howard Hinnant (https://howardhinnant.github.io/date_algorithms.html).
func daysSinceEpoch(year, month, day int) int64 {
	y := int64(year)
	if month <= 2 {
		y--
	}
	era := y / 400
	if y < 0 { // January and February of year 0
		era = (y - 399) / 400
	}
	yoe := y - era*400
	mp := int64((month + 9) % 12) // March = 0
	doy := (153*mp+2)/5 + int64(day) - 1
	doe := yoe*365 + yoe/4 - yoe/100 + doy
	return era*146097 + doe - 719468
}

// fraction parses an optional ".ddd..." and returns its value in
// nanoseconds (digits past the ninth are truncated) and the rest of s.
func fraction(s []byte) (nsec int, rest []byte) {
	if len(s) < 2 || s[0] != '.' || !isDigit(s[1]) {
		return 0, s
	}
	n := 1
	for ; n < len(s) && isDigit(s[n]); n++ {
		if n <= 9 {
			nsec = nsec*10 + int(s[n]-'0')
		}
	}
	for k := n; k <= 9; k++ {
		nsec *= 10
	}
	return nsec, s[n:]
}

// zoneOffset parses "Z" or "±hh:mm" (hh ≤ 23, mm ≤ 59) into seconds east
// of UTC.
func zoneOffset(s []byte) (int, bool) {
	if len(s) == 1 && s[0] == 'Z' {
		return 0, true
	}
	if len(s) != len("+07:00") || (s[0] != '+' && s[0] != '-') || s[3] != ':' {
		return 0, false
	}
	hh, ok1 := digits(s[1:3])
	mm, ok2 := digits(s[4:6])
	if !ok1 || !ok2 || hh > 23 || mm > 59 {
		return 0, false
	}
	off := (hh*60 + mm) * 60
	if s[0] == '-' {
		off = -off
	}
	return off, true
}

// digits parses a short run of ASCII digits.
func digits(s []byte) (int, bool) {
	n := 0
	for i := 0; i < len(s); i++ {
		if !isDigit(s[i]) {
			return 0, false
		}
		n = n*10 + int(s[i]-'0')
	}
	return n, true
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// daysIn returns the number of days in month (1-12) of the proleptic
// Gregorian year.
func daysIn(month, year int) int {
	switch month {
	case 2:
		if year%4 == 0 && (year%100 != 0 || year%400 == 0) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}
