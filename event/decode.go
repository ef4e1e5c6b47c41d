package event

import (
	"bytes"
	"fmt"
	"math/bits"
	"net/netip"
	"strings"
	"time"
	"unicode/utf8"
	"unsafe"
)

// Decoder decodes and validates events. Not safe for concurrent use; reuse
// one per goroutine.
//
// The decoder copies the string values of each event (unescaped) into one
// new string and slices the event's string fields out of it, so a decoded
// event costs one allocation. A field therefore keeps all of its event's
// strings alive: clone strings (strings.Clone) that are kept for long, such
// as map keys or metric label values. With SetAliasing, values that need no
// unescaping point into the input instead, and a typical event costs no
// allocation.
type Decoder struct {
	limits Limits
	alias  bool   // see SetAliasing
	buf    []byte // the line being decoded (the caller's bytes)
	pos    int    // read position in buf
	dec    []byte // unescaped string values of the line
	stack  []byte // closing brackets of the containers skipValue is in

	// Field errors: the first one in document order, and its position.
	first    *RejectError
	firstPos int

	seen  uint16          // bit f: field f was present
	has   uint16          // bit f: vals[f] holds field f's string
	vals  [numFields]span // string values of fields, where bit f of has is set
	attrs []attrSpan      // attrs entries, in document order
	ipPos int             // position of source_ip's value, checked last
	high  bool            // a string held a byte >= 0x7f
	want  string          // service the subject names, or ""
	now   time.Time
	ev    Event // reused by DecodeMessage
}

type attrSpan struct{ key, value span }

// NewDecoder returns a Decoder enforcing l. Zero fields of l take their
// defaults; l must pass Validate (NewDecoder panics otherwise, as a
// configuration error should have been reported before).
func NewDecoder(l Limits) *Decoder {
	if err := l.Validate(); err != nil {
		panic("event.NewDecoder: " + err.Error())
	}
	return &Decoder{limits: l.withDefaults()}
}

// SetAliasing lets decoded events' strings point into the bytes passed to
// Decode or DecodeMessage instead of copies, which saves an allocation and a
// copy per event. The caller must then never modify those bytes again (Go
// keeps them alive while a string points into them), and should clone
// strings it keeps for long: one such string keeps its whole input alive.
func (d *Decoder) SetAliasing(on bool) { d.alias = on }

// Decode decodes one JSON object into ev (ev.Reset() first). wantService,
// when non-empty, is the service the subject names (everything after
// vigil.events.) that ev.Service must equal. now
// is used for the future-skew check; a zero now skips it. Returns nil or a
// *RejectError; after an error ev holds partial data.
//
// When an event breaks several rules, the reason reported is the first of:
// too_large, invalid_utf8, the first syntax error (malformed_json, or
// invalid_utf8 for a lone surrogate escape), the first field error in
// document order, the first missing required field in schema order.
func (d *Decoder) Decode(data []byte, wantService string, now time.Time, ev *Event) error {
	if err := d.decode(data, wantService, now, ev); err != nil {
		return err
	}
	return nil
}

// DecodeMessage judges each non-blank line of an NDJSON message (a message
// with one object and no newline is the common case) on its own: ok is called
// with each valid event (ev is reused between calls, its Attrs map included:
// callers copy what they keep), reject with each invalid line's error (Line
// set) and raw line (without its line ending; it aliases data). Returns the
// number of valid and rejected events.
//
// Lines end in "\n" or "\r\n"; blank lines (only spaces, tabs, CR) are
// skipped but counted for Line. A message with no non-blank line is one
// rejection (malformed_json, Line 1), so that every message yields at least
// one verdict.
func (d *Decoder) DecodeMessage(data []byte, wantService string, now time.Time,
	ok func(ev *Event), reject func(err *RejectError, line []byte)) (valid, rejected int) {
	rest := data
	for lineNo := 1; ; lineNo++ {
		line := rest
		i := bytes.IndexByte(rest, '\n')
		if i >= 0 {
			line, rest = rest[:i], rest[i+1:]
		}
		if n := len(line); n > 0 && line[n-1] == '\r' {
			line = line[:n-1]
		}
		if !blank(line) {
			if err := d.decode(line, wantService, now, &d.ev); err != nil {
				err.Line = lineNo
				reject(err, line)
				rejected++
			} else {
				ok(&d.ev)
				valid++
			}
		}
		if i < 0 {
			break
		}
	}
	d.ev.Reset() // do not keep strings pointing into data
	if valid+rejected == 0 {
		err := &RejectError{Reason: ReasonMalformedJSON, Line: 1,
			Detail: "message holds no event; expected one JSON object per line"}
		reject(err, data)
		rejected = 1
	}
	return valid, rejected
}

func blank(line []byte) bool {
	for _, c := range line {
		if c != ' ' && c != '\t' && c != '\r' {
			return false
		}
	}
	return true
}

func (d *Decoder) decode(line []byte, want string, now time.Time, ev *Event) *RejectError {
	ev.Reset()
	if len(line) > d.limits.MaxEventBytes {
		return reject(ReasonTooLarge, "",
			fmt.Sprintf("event is %d bytes, over the limit of %d", len(line), d.limits.MaxEventBytes))
	}
	d.buf, d.pos, d.dec, d.want, d.now = line, 0, d.dec[:0], want, now
	d.first, d.firstPos, d.seen, d.has, d.attrs, d.ipPos = nil, 0, 0, 0, d.attrs[:0], -1
	d.high = false
	defer func() { d.buf = nil }() // do not keep the caller's bytes
	err := d.object(ev)
	// UTF-8 is checked last but reported first. A line the scanner accepts
	// holds non-ASCII bytes only in strings, so an ASCII line needs no check.
	if (err != nil || d.first != nil || d.high) && !utf8.Valid(line) {
		return reject(ReasonInvalidUTF8, "",
			fmt.Sprintf("byte %d does not start valid UTF-8", invalidUTF8At(line)))
	}
	if err != nil {
		return err
	}
	if d.first != nil {
		if d.ipPos >= 0 && d.ipPos < d.firstPos && !validIP(string(d.bytes(d.vals[fSourceIP]))) {
			return reject(ReasonInvalidValue, "source_ip", msgSourceIP)
		}
		return d.first
	}
	ipText := d.setStrings(ev)
	if d.ipPos >= 0 {
		ip, err := netip.ParseAddr(ipText)
		if err != nil || ip.Zone() != "" {
			return reject(ReasonInvalidValue, "source_ip", msgSourceIP)
		}
		ev.SourceIP = ip
	}
	for f := range numRequired {
		if d.seen&(1<<f) == 0 {
			return reject(ReasonMissingField, fieldName(f), "is required")
		}
	}
	return nil
}

func validIP(s string) bool {
	ip, err := netip.ParseAddr(s)
	return err == nil && ip.Zone() == ""
}

func invalidUTF8At(b []byte) int {
	for i := 0; i < len(b); {
		r, size := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && size == 1 {
			return i
		}
		i += size
	}
	return len(b)
}

// fail records a field error unless an earlier one was recorded.
func (d *Decoder) fail(reason Reason, field, detail string) {
	if d.first == nil {
		d.first, d.firstPos = reject(reason, field, detail), d.pos
	}
}

// object decodes the event's object, which must be all of d.buf apart from
// surrounding space.
func (d *Decoder) object(ev *Event) *RejectError {
	d.skipSpace()
	if err := d.expect('{', "'{': an event is one JSON object"); err != nil {
		return err
	}
	d.skipSpace()
	if d.peek() == '}' {
		d.pos++
	} else {
		for {
			if err := d.objectMember(ev); err != nil {
				return err
			}
			d.skipSpace()
			if d.peek() != ',' {
				break
			}
			d.pos++
		}
		if err := d.expect('}', "',' or '}'"); err != nil {
			return err
		}
	}
	d.skipSpace()
	if d.pos != len(d.buf) {
		return reject(ReasonMalformedJSON, "",
			fmt.Sprintf("unexpected data after the object at byte %d; send one event per line", d.pos))
	}
	return nil
}

// objectMember decodes one `"key": value` member of the event's object.
func (d *Decoder) objectMember(ev *Event) *RejectError {
	d.skipSpace()
	if d.peek() != '"' {
		return d.syntaxError("a string key")
	}
	f, key, err := d.memberName()
	if err != nil {
		return err
	}
	d.skipSpace()
	if err := d.expect(':', "':' after a key"); err != nil {
		return err
	}
	d.skipSpace()
	if d.first != nil {
		return d.skipValue()
	}
	switch {
	case f < 0:
		d.fail(ReasonUnknownField, excerpt(string(key)), "is not a field of event schema v1")
		return d.skipValue()
	case d.seen&(1<<f) != 0:
		d.fail(ReasonDuplicateField, fieldName(f), "appears more than once")
		return d.skipValue()
	}
	d.seen |= 1 << f
	switch f {
	case fStatus:
		return d.status(ev)
	case fLatency:
		return d.latency(ev)
	case fAttrs:
		return d.attrsField()
	}
	return d.stringField(f, ev)
}

// memberName consumes the key string at d.pos and returns its field index
// (-1 for an unknown key) and its value. A plain key of schema v1, the common
// case, is recognised without the general string scan.
func (d *Decoder) memberName() (f int, key []byte, err *RejectError) {
	const longest = len("request_id")
	i, limit := d.pos+1, min(len(d.buf), d.pos+2+longest)
	for i < limit && d.buf[i] != '"' && d.buf[i] != '\\' {
		i++
	}
	if i < limit && d.buf[i] == '"' {
		if f := fieldIndex(d.buf[d.pos+1 : i]); f >= 0 {
			key, d.pos = d.buf[d.pos+1:i], i+1
			return f, key, nil
		}
	}
	start, end, info, err := d.scanString()
	if err != nil {
		return 0, nil, err
	}
	key, _ = d.stringValue(start, end, info)
	return fieldIndex(key), key, nil
}

// expectKind checks that the value at d.pos is of kind want. If not, it
// consumes the value: null means absent (missing_field when f is required),
// anything else is wrong_type.
func (d *Decoder) expectKind(f int, want valueKind) (parse bool, err *RejectError) {
	got := d.kind()
	if got == want {
		return true, nil
	}
	if got == kindNull {
		if f < numRequired {
			d.fail(ReasonMissingField, fieldName(f), "is required and must not be null")
		}
		return false, d.scanLiteral()
	}
	d.fail(ReasonWrongType, fieldName(f), "must be "+want.String()+", not "+got.String())
	return false, d.skipValue()
}

// setStrings sets the string fields and attrs of a valid event and returns
// source_ip's text. Values that were unescaped, and every value unless the
// decoder aliases its input, are copied into one new string that the
// fields are sliced out of; with aliasing, the other values point into
// the line itself.
func (d *Decoder) setStrings(ev *Event) (sourceIP string) {
	n := 0
	for m := d.has & stringFields; m != 0; m &= m - 1 {
		if sp := d.vals[bits.TrailingZeros16(m)]; d.copies(sp) {
			n += int(sp.end - sp.start)
		}
	}
	for _, a := range d.attrs {
		for _, sp := range [2]span{a.key, a.value} {
			if d.copies(sp) {
				n += int(sp.end - sp.start)
			}
		}
	}
	// Copy: afterwards a span with dec set is in s, any other in d.buf.
	var b strings.Builder
	b.Grow(n)
	for m := d.has & stringFields; m != 0; m &= m - 1 {
		if f := bits.TrailingZeros16(m); d.copies(d.vals[f]) {
			d.vals[f] = d.copyTo(&b, d.vals[f])
		}
	}
	for i, a := range d.attrs {
		if d.copies(a.key) {
			d.attrs[i].key = d.copyTo(&b, a.key)
		}
		if d.copies(a.value) {
			d.attrs[i].value = d.copyTo(&b, a.value)
		}
	}
	s := b.String()
	str := func(sp span) string {
		if sp.dec {
			return s[sp.start:sp.end]
		}
		if sp.end == sp.start {
			return ""
		}
		return unsafe.String(&d.buf[sp.start], sp.end-sp.start) // aliasing: the caller keeps d.buf unchanged
	}
	for m := d.has & stringFields; m != 0; m &= m - 1 {
		f := bits.TrailingZeros16(m)
		setField(ev, f, str(d.vals[f]))
	}
	if len(d.attrs) > 0 && ev.Attrs == nil {
		ev.Attrs = make(map[string]string, len(d.attrs))
	}
	for _, a := range d.attrs {
		ev.Attrs[str(a.key)] = str(a.value)
	}
	if d.ipPos >= 0 {
		sourceIP = str(d.vals[fSourceIP])
	}
	return sourceIP
}

// copies reports whether setStrings copies the value of sp.
func (d *Decoder) copies(sp span) bool { return !d.alias || sp.dec }

// copyTo writes the bytes of sp to b and returns where they are in b.
func (d *Decoder) copyTo(b *strings.Builder, sp span) span {
	start := b.Len()
	b.Write(d.bytes(sp))
	return span{start: int32(start), end: int32(b.Len()), dec: true}
}
