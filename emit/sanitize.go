package emit

import (
	"maps"
	"math"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/nats-io/nuid"

	"github.com/vigil-sec/vigil/event"
)

// validService reports whether s matches ^[a-z0-9][a-z0-9_.-]{0,63}$.
func validService(s string) bool {
	if len(s) == 0 || len(s) > event.MaxService || !isLowerAlnum(s[0]) {
		return false
	}
	for i := 1; i < len(s); i++ {
		if c := s[i]; !isLowerAlnum(c) && c != '_' && c != '.' && c != '-' {
			return false
		}
	}
	return true
}

func isLowerAlnum(c byte) bool { return ('a' <= c && c <= 'z') || ('0' <= c && c <= '9') }

// validRequestID reports whether s is 1-128 visible ASCII characters.
func validRequestID(s string) bool {
	if len(s) == 0 || len(s) > event.MaxRequestID {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 0x21 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

// cleanMethod returns m as the schema wants it: upper case, 1-32 characters of
// A-Z, 0-9, '-' or '_' starting with a letter. Go's server accepts any token
// as a method; one that cannot be made valid becomes "OTHER".
func cleanMethod(m string) string {
	if m == "" {
		return "GET" // net/http: "" means GET
	}
	if validMethod(m) {
		return m
	}
	if up := strings.ToUpper(m); validMethod(up) {
		return up
	}
	return "OTHER"
}

func validMethod(s string) bool {
	if len(s) == 0 || len(s) > event.MaxMethod || s[0] < 'A' || s[0] > 'Z' {
		return false
	}
	for i := 1; i < len(s); i++ {
		if c := s[i]; !('A' <= c && c <= 'Z') && !('0' <= c && c <= '9') && c != '-' && c != '_' {
			return false
		}
	}
	return true
}

// cleanText makes attacker-written text fit the schema: invalid UTF-8 and
// control characters become U+FFFD, and the result is cut at a character
// boundary to at most limit bytes. Printable ASCII within the limit, the
// common case, is returned as is without allocating.
func cleanText(s string, limit int) string {
	if len(s) <= limit && plainASCII(s) {
		return s
	}
	return rebuild(s, limit, func(r rune) rune {
		if unicode.IsControl(r) {
			return utf8.RuneError
		}
		return r
	})
}

// cleanEndpoint makes a route template valid: it starts with '/', white
// space and control characters become '_', and it is at most 256 bytes.
func cleanEndpoint(s string) string {
	if len(s) > 0 && s[0] == '/' && len(s) <= event.MaxEndpoint && plainASCII(s) && !strings.ContainsRune(s, ' ') {
		return s
	}
	if len(s) == 0 || s[0] != '/' {
		s = "/" + s
	}
	return rebuild(s, event.MaxEndpoint, func(r rune) rune {
		if unicode.IsControl(r) || unicode.IsSpace(r) || r == utf8.RuneError {
			return '_'
		}
		return r
	})
}

// plainASCII reports whether s is printable ASCII (space included).
func plainASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

// rebuild maps every rune of s (invalid bytes arrive as utf8.RuneError)
// and stops before the result would pass limit bytes.
func rebuild(s string, limit int, mapRune func(rune) rune) string {
	var b strings.Builder
	b.Grow(min(len(s), limit))
	for _, r := range s {
		r = mapRune(r)
		if b.Len()+utf8.RuneLen(r) > limit {
			break
		}
		b.WriteRune(r)
	}
	return b.String()
}

// UnmatchedEndpoint is the endpoint of a request that matched no route.
const UnmatchedEndpoint = "/{unmatched}"

// normalize makes ev valid for the wire schema where that can be done
// without guessing: it fills the time, the service and a missing request id,
// cleans and cuts text fields, and drops a bad latency or IP zone. It returns
// false when ev cannot be published: no valid service, or no valid status.
func normalize(ev *event.Event, defaultService string, now func() time.Time) bool {
	if ev.Service == "" {
		ev.Service = defaultService
	}
	if !validService(ev.Service) || ev.Status < 100 || ev.Status > 599 {
		return false
	}
	if ev.Time.IsZero() || ev.Time.Unix() < 0 {
		ev.Time = now()
	}
	if !validRequestID(ev.RequestID) {
		ev.RequestID = nuid.Next()
	}
	ev.Method = cleanMethod(ev.Method)
	if ev.Endpoint == "" {
		ev.Endpoint = UnmatchedEndpoint
	}
	ev.Endpoint = cleanEndpoint(ev.Endpoint)
	ev.Path = cleanText(ev.Path, event.MaxPath)
	ev.User = cleanText(ev.User, event.MaxUser)
	ev.ClientID = cleanText(ev.ClientID, event.MaxClientID)
	ev.UserAgent = cleanText(ev.UserAgent, event.MaxUserAgent)
	if ev.HasLatency && !(ev.LatencyMS >= 0 && ev.LatencyMS <= math.MaxFloat64) {
		ev.HasLatency, ev.LatencyMS = false, 0
	}
	ev.SourceIP = ev.SourceIP.WithZone("")
	if len(ev.Attrs) > 0 {
		ev.Attrs = cleanAttrs(ev.Attrs)
	}
	return true
}

// cleanAttrs returns attrs within the schema's limits: at most 32 entries
// (the first keys in sorted order are kept), keys of 1-64 bytes and values
// of at most 256 bytes, without control characters. attrs is returned as is
// when it is already valid.
func cleanAttrs(attrs map[string]string) map[string]string {
	if len(attrs) <= event.MaxAttrs && attrsValid(attrs) {
		return attrs
	}
	keys := slices.Sorted(maps.Keys(attrs))
	out := make(map[string]string, min(len(keys), event.MaxAttrs))
	for _, k := range keys {
		if len(out) == event.MaxAttrs {
			break
		}
		ck := cleanText(k, event.MaxAttrKey)
		if _, dup := out[ck]; ck == "" || dup {
			continue
		}
		out[ck] = cleanText(attrs[k], event.MaxAttrValue)
	}
	return out
}

func attrsValid(attrs map[string]string) bool {
	for k, v := range attrs {
		if k == "" || len(k) > event.MaxAttrKey || len(v) > event.MaxAttrValue || !plainASCII(k) || !plainASCII(v) {
			if k == "" || cleanText(k, event.MaxAttrKey) != k || cleanText(v, event.MaxAttrValue) != v {
				return false
			}
		}
	}
	return true
}
