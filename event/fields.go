package event

import (
	"strconv"
	"unicode"
	"unicode/utf8"
)

// Field indexes, in schema order; the first numRequired are required.
const (
	fTS = iota
	fService
	fRequestID
	fMethod
	fEndpoint
	fStatus
	fPath
	fLatency
	fSourceIP
	fUser
	fClientID
	fUserAgent
	fAttrs

	numFields   = fAttrs + 1
	numRequired = fStatus + 1

	// stringFields are the fields whose value is kept as a string.
	stringFields = 1<<fService | 1<<fRequestID | 1<<fMethod | 1<<fEndpoint |
		1<<fPath | 1<<fSourceIP | 1<<fUser | 1<<fClientID | 1<<fUserAgent
)

// Size limits of fields in wire schema v1, in bytes of UTF-8 (MaxAttrs is
// a count of entries). Emitters use them to trim what they send.
const (
	MaxService   = 64
	MaxRequestID = 128
	MaxMethod    = 32
	MaxEndpoint  = 256
	MaxPath      = 2048
	MaxUser      = 256
	MaxClientID  = 128
	MaxUserAgent = 512
	MaxAttrs     = 32
	MaxAttrKey   = 64
	MaxAttrValue = 256
)

// Messages for invalid values; they never include the value itself.
const (
	msgTS        = "must be an RFC 3339 timestamp with a zone, such as 2025-06-01T12:00:00Z or 2025-06-01T14:00:00.123+02:00"
	msgTSRange   = "must be from 1970-01-01T00:00:00Z to 9999-12-31T23:59:59Z"
	msgService   = "must be 1 to 64 characters of a-z, 0-9, '_', '.' or '-', starting with a letter or digit"
	msgRequestID = "must be 1 to 128 visible ASCII characters (0x21-0x7E)"
	msgMethod    = "must be 1 to 32 characters of A-Z, 0-9, '-' or '_', starting with a letter"
	msgEndpoint  = "must start with '/' and contain no whitespace or control characters"
	msgStatus    = "must be an integer from 100 to 599"
	msgSourceIP  = "must be an IPv4 or IPv6 address without a zone; omit the field when unknown"
	msgControl   = "must not contain control characters"
)

func fieldIndex(key []byte) int {
	switch string(key) {
	case "ts":
		return fTS
	case "service":
		return fService
	case "request_id":
		return fRequestID
	case "method":
		return fMethod
	case "endpoint":
		return fEndpoint
	case "status":
		return fStatus
	case "path":
		return fPath
	case "latency_ms":
		return fLatency
	case "source_ip":
		return fSourceIP
	case "user":
		return fUser
	case "client_id":
		return fClientID
	case "user_agent":
		return fUserAgent
	case "attrs":
		return fAttrs
	}
	return -1
}

func fieldName(f int) string {
	return [...]string{"ts", "service", "request_id", "method", "endpoint", "status",
		"path", "latency_ms", "source_ip", "user", "client_id", "user_agent", "attrs"}[f]
}

// setField sets string field f of ev.
func setField(ev *Event, f int, s string) {
	switch f {
	case fService:
		ev.Service = s
	case fRequestID:
		ev.RequestID = s
	case fMethod:
		ev.Method = s
	case fEndpoint:
		ev.Endpoint = s
	case fPath:
		ev.Path = s
	case fUser:
		ev.User = s
	case fClientID:
		ev.ClientID = s
	case fUserAgent:
		ev.UserAgent = s
	}
}

// stringField decodes the value of string field f. Its string is set
// later, by setStrings; source_ip is parsed then too.
func (d *Decoder) stringField(f int, ev *Event) *RejectError {
	if parse, err := d.expectKind(f, kindString); !parse {
		return err
	}
	valuePos := d.pos
	start, end, info, err := d.scanString()
	if err != nil {
		return err
	}
	s, sp := d.stringValue(start, end, info)
	var reason Reason
	var detail string
	switch f {
	case fTS:
		reason, detail = d.setTime(s, ev)
	case fService:
		reason, detail = d.checkService(s)
	case fSourceIP:
		d.ipPos = valuePos
	default:
		reason, detail = checkText(f, s, info)
	}
	if reason != "" {
		d.fail(reason, fieldName(f), detail)
	}
	d.vals[f], d.has = sp, d.has|1<<f
	return nil
}

func (d *Decoder) setTime(s []byte, ev *Event) (Reason, string) {
	t, ok := parseTimestamp(s)
	switch {
	case !ok:
		return ReasonInvalidValue, msgTS
	case t.Unix() < 0 || t.Year() > 9999: // 9999 plus a negative offset
		return ReasonInvalidValue, msgTSRange
	case !d.now.IsZero() && t.After(d.now.Add(d.limits.MaxFutureSkew)):
		return ReasonFutureTimestamp, "is more than " + d.limits.MaxFutureSkew.String() +
			" ahead of the receiver's clock; check the sender's clock"
	}
	ev.Time = t
	return "", ""
}

func (d *Decoder) checkService(s []byte) (Reason, string) {
	if !validService(s) {
		return ReasonInvalidValue, msgService
	}
	if d.want != "" && string(s) != d.want {
		return ReasonServiceMismatch, "is " + quote(string(s)) + " but the subject names " + quote(d.want)
	}
	return "", ""
}

// checkText checks request_id, method, endpoint and the free-form fields.
func checkText(f int, s []byte, info strInfo) (Reason, string) {
	switch f {
	case fRequestID:
		return orInvalid(validRequestID(s), msgRequestID)
	case fMethod:
		return orInvalid(validMethod(s), msgMethod)
	case fEndpoint:
		if len(s) > MaxEndpoint {
			return ReasonInvalidValue, tooLong(MaxEndpoint)
		}
		return orInvalid(validEndpoint(s), msgEndpoint)
	case fPath:
		return checkFree(s, info, MaxPath)
	case fUser:
		return checkFree(s, info, MaxUser)
	case fClientID:
		return checkFree(s, info, MaxClientID)
	default: // fUserAgent
		return checkFree(s, info, MaxUserAgent)
	}
}

func orInvalid(ok bool, detail string) (Reason, string) {
	if ok {
		return "", ""
	}
	return ReasonInvalidValue, detail
}

func tooLong(limit int) string {
	return "must be at most " + strconv.Itoa(limit) + " bytes of UTF-8"
}

// checkFree checks a free-form string: at most limit bytes, no control
// characters.
func checkFree(s []byte, info strInfo, limit int) (Reason, string) {
	switch {
	case len(s) > limit:
		return ReasonInvalidValue, tooLong(limit)
	case info.mayHoldControl() && hasControl(s):
		return ReasonInvalidValue, msgControl
	}
	return "", ""
}

// hasControl reports whether valid UTF-8 s holds a control character:
// U+0000-U+001F or U+007F-U+009F (the C1 controls are 0xC2 0x80-0x9F).
func hasControl(s []byte) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c == 0x7f || (c == 0xc2 && i+1 < len(s) && s[i+1] <= 0x9f) {
			return true
		}
	}
	return false
}

func validService(s []byte) bool {
	if len(s) == 0 || len(s) > MaxService || !isLowerAlnum(s[0]) {
		return false
	}
	for i := 1; i < len(s); i++ {
		if c := s[i]; !isLowerAlnum(c) && c != '_' && c != '.' && c != '-' {
			return false
		}
	}
	return true
}

func isLowerAlnum(c byte) bool { return ('a' <= c && c <= 'z') || isDigit(c) }

func validRequestID(s []byte) bool {
	if len(s) == 0 || len(s) > MaxRequestID {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 0x21 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

func validMethod(s []byte) bool {
	if len(s) == 0 || len(s) > MaxMethod || s[0] < 'A' || s[0] > 'Z' {
		return false
	}
	for i := 1; i < len(s); i++ {
		if c := s[i]; !('A' <= c && c <= 'Z') && !isDigit(c) && c != '-' && c != '_' {
			return false
		}
	}
	return true
}

// validEndpoint: starts with '/', no white space (Unicode White_Space) and
// no control characters.
func validEndpoint(s []byte) bool {
	if len(s) == 0 || s[0] != '/' {
		return false
	}
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c <= ' ' || c == 0x7f {
				return false
			}
			i++
			continue
		}
		r, size := utf8.DecodeRune(s[i:])
		if unicode.IsSpace(r) || unicode.IsControl(r) {
			return false
		}
		i += size
	}
	return true
}
