package event

import (
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Reason is a bounded, machine-readable rejection reason; it is used as a
// Prometheus label value.
type Reason string

// Rejection reasons. Every rejected event has exactly one.
const (
	ReasonTooLarge        Reason = "too_large"
	ReasonInvalidUTF8     Reason = "invalid_utf8"
	ReasonMalformedJSON   Reason = "malformed_json" // syntax error, not an object, trailing data
	ReasonUnknownField    Reason = "unknown_field"
	ReasonDuplicateField  Reason = "duplicate_field"
	ReasonWrongType       Reason = "wrong_type"
	ReasonMissingField    Reason = "missing_field"
	ReasonInvalidValue    Reason = "invalid_value"
	ReasonFutureTimestamp Reason = "future_timestamp"
	ReasonServiceMismatch Reason = "service_mismatch"
)

// Reasons returns every Reason, for pre-creating metric label values.
func Reasons() []Reason {
	return []Reason{
		ReasonTooLarge, ReasonInvalidUTF8, ReasonMalformedJSON,
		ReasonUnknownField, ReasonDuplicateField, ReasonWrongType,
		ReasonMissingField, ReasonInvalidValue, ReasonFutureTimestamp,
		ReasonServiceMismatch,
	}
}

// RejectError says why an event was rejected. Field is the JSON key ("" when
// not about one field). Detail never holds more than a short, sanitised
// excerpt of the event's own text.
type RejectError struct {
	Reason Reason
	Field  string
	Line   int // 1-based line within an NDJSON message; 0 for a single event
	Detail string
}

// Error reads like `line 2: field "status": invalid_value: must be an
// integer from 100 to 599`.
func (e *RejectError) Error() string {
	var b strings.Builder
	if e.Line > 0 {
		b.WriteString("line ")
		b.WriteString(strconv.Itoa(e.Line))
		b.WriteString(": ")
	}
	if e.Field != "" {
		b.WriteString("field ")
		b.WriteString(quote(e.Field))
		b.WriteString(": ")
	}
	b.WriteString(string(e.Reason))
	if e.Detail != "" {
		b.WriteString(": ")
		b.WriteString(e.Detail)
	}
	return b.String()
}

// maxExcerpt is the most bytes of attacker-written text an error repeats.
const maxExcerpt = 64

// excerpt returns at most maxExcerpt bytes of s with invalid UTF-8 and
// every non-printable rune (controls, format characters such as bidi
// overrides, non-ASCII spaces) replaced by '?'. A cut is marked with "...".
func excerpt(s string) string {
	limit := len(s)
	if limit > maxExcerpt {
		limit = maxExcerpt - len("...")
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		if i+size > limit {
			break
		}
		i += size
		if r == utf8.RuneError || !unicode.IsPrint(r) {
			r = '?'
		}
		b.WriteRune(r)
	}
	if limit < len(s) {
		b.WriteString("...")
	}
	return b.String()
}

// quote returns the excerpt of s in double quotes, with quotes and
// backslashes escaped so that it cannot be mistaken for the text around it.
func quote(s string) string {
	return strconv.Quote(excerpt(s))
}

func reject(reason Reason, field, detail string) *RejectError {
	return &RejectError{Reason: reason, Field: field, Detail: detail}
}
