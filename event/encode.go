package event

import (
	"slices"
	"strconv"
	"time"
	"unicode/utf8"
)

// AppendJSON appends e as one JSON object in wire schema v1 (no trailing
// newline) and returns the extended buffer. Optional fields that are absent
// are omitted, and attrs keys are written in sorted order, so the output is
// deterministic.
func (e *Event) AppendJSON(b []byte) []byte {
	b = append(b, `{"ts":`...)
	b = appendString(b, e.Time.UTC().Format(time.RFC3339Nano))
	b = append(b, `,"service":`...)
	b = appendString(b, e.Service)
	b = append(b, `,"request_id":`...)
	b = appendString(b, e.RequestID)
	b = append(b, `,"method":`...)
	b = appendString(b, e.Method)
	b = append(b, `,"endpoint":`...)
	b = appendString(b, e.Endpoint)
	b = append(b, `,"status":`...)
	b = strconv.AppendInt(b, int64(e.Status), 10)
	b = appendOptional(b, `,"path":`, e.Path)
	if e.HasLatency {
		b = append(b, `,"latency_ms":`...)
		b = strconv.AppendFloat(b, e.LatencyMS, 'f', -1, 64)
	}
	if e.SourceIP.IsValid() {
		b = append(b, `,"source_ip":`...)
		b = appendString(b, e.SourceIP.String())
	}
	b = appendOptional(b, `,"user":`, e.User)
	b = appendOptional(b, `,"client_id":`, e.ClientID)
	b = appendOptional(b, `,"user_agent":`, e.UserAgent)
	if len(e.Attrs) > 0 {
		keys := make([]string, 0, len(e.Attrs))
		for k := range e.Attrs {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		b = append(b, `,"attrs":{`...)
		for i, k := range keys {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendString(b, k)
			b = append(b, ':')
			b = appendString(b, e.Attrs[k])
		}
		b = append(b, '}')
	}
	return append(b, '}')
}

func appendOptional(b []byte, key, v string) []byte {
	if v == "" {
		return b
	}
	b = append(b, key...)
	return appendString(b, v)
}

const hexDigits = "0123456789abcdef"

// appendString appends s as a JSON string. Invalid UTF-8 becomes U+FFFD;
// control characters, quotes, backslashes and the HTML-significant <, > and &
// are escaped.
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
