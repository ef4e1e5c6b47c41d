package event

import (
	"encoding/binary"
	"fmt"
	"math/bits"
	"unicode/utf16"
	"unicode/utf8"
)

// The scanner reads JSON from d.buf at d.pos. Its errors are syntax errors:
// they end the decoding of the line at once.

// valueKind is the kind of a JSON value.
type valueKind uint8

// Value kinds.
const (
	kindNumber valueKind = iota // or not a JSON value at all
	kindString
	kindObject
	kindArray
	kindBool
	kindNull
)

// String names k for wrong_type messages.
func (k valueKind) String() string {
	return [...]string{"a number", "a string", "an object", "an array", "a boolean", "null"}[k]
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

func (d *Decoder) skipSpace() {
	for d.pos < len(d.buf) && isSpace(d.buf[d.pos]) {
		d.pos++
	}
}

// peek returns the byte at d.pos, or 0 at the end of input.
func (d *Decoder) peek() byte {
	if d.pos < len(d.buf) {
		return d.buf[d.pos]
	}
	return 0
}

// syntaxError describes what was found at d.pos when want was expected.
func (d *Decoder) syntaxError(want string) *RejectError {
	if d.pos >= len(d.buf) {
		return reject(ReasonMalformedJSON, "", "unexpected end of input, expected "+want)
	}
	return reject(ReasonMalformedJSON, "",
		fmt.Sprintf("unexpected %s at byte %d, expected %s", describeByte(d.buf[d.pos]), d.pos, want))
}

func describeByte(c byte) string {
	if c > ' ' && c < 0x7f {
		return fmt.Sprintf("'%c'", c)
	}
	return fmt.Sprintf("byte 0x%02x", c)
}

// expect consumes c or fails.
func (d *Decoder) expect(c byte, want string) *RejectError {
	if d.peek() != c {
		return d.syntaxError(want)
	}
	d.pos++
	return nil
}

// kind returns the kind of the value starting at d.pos.
func (d *Decoder) kind() valueKind {
	switch c := d.peek(); {
	case c == '"':
		return kindString
	case c == '{':
		return kindObject
	case c == '[':
		return kindArray
	case c == 't' || c == 'f':
		return kindBool
	case c == 'n':
		return kindNull
	}
	return kindNumber
}

// strInfo describes a scanned string's raw content.
type strInfo uint8

const (
	strEscaped strInfo = 1 << iota // holds escape sequences
	strHigh                        // holds a byte >= 0x7f: DEL or non-ASCII
)

// mayHoldControl reports whether the decoded string can hold a control
// character: raw strings hold none below 0x20 (the scanner rejects them), so
// only escapes, DEL and non-ASCII (the C1 controls) can bring one.
func (i strInfo) mayHoldControl() bool { return i != 0 }

// scanString consumes a string whose opening quote is at d.pos and returns
// its raw content (between the quotes) as the span d.buf[start:end].
func (d *Decoder) scanString() (start, end int, info strInfo, err *RejectError) {
	d.pos++ // opening quote
	start = d.pos
	for {
		d.pos = skipPlain(d.buf, d.pos)
		if d.pos >= len(d.buf) {
			return 0, 0, 0, reject(ReasonMalformedJSON, "", "unterminated string")
		}
		switch c := d.buf[d.pos]; {
		case c == '"':
			d.pos++
			return start, d.pos - 1, info, nil
		case c == '\\':
			info |= strEscaped
			if err := d.scanEscape(); err != nil {
				return 0, 0, 0, err
			}
		case c < 0x20:
			return 0, 0, 0, reject(ReasonMalformedJSON, "",
				fmt.Sprintf("control character 0x%02x in a string at byte %d; escape it", c, d.pos))
		default:
			info |= strHigh
			d.high = true
			d.pos++
		}
	}
}

// span locates a string value: d.buf[start:end], or d.dec[start:end] when
// it had to be unescaped.
type span struct {
	start, end int32
	dec        bool
}

// stringValue returns the value of the string just scanned as
// d.buf[start:end], unescaping it into d.dec when needed, and its span.
func (d *Decoder) stringValue(start, end int, info strInfo) ([]byte, span) {
	if info&strEscaped == 0 {
		return d.buf[start:end], span{start: int32(start), end: int32(end)}
	}
	from := len(d.dec)
	d.dec = unescape(d.dec, d.buf[start:end])
	return d.dec[from:], span{start: int32(from), end: int32(len(d.dec)), dec: true}
}

func (d *Decoder) bytes(s span) []byte {
	if s.dec {
		return d.dec[s.start:s.end]
	}
	return d.buf[s.start:s.end]
}

const (
	lsbs = 0x0101010101010101
	msbs = 0x8080808080808080
)

// skipPlain returns the index of the first byte of b at or after i that is
// not plain printable ASCII: '"', '\\', below 0x20 or from 0x7f. It reads
// eight bytes at a time; the bit tricks may flag bytes after the first
// special one, never before it, so the lowest flag is exact.
func skipPlain(b []byte, i int) int {
	for ; i+8 <= len(b); i += 8 {
		x := binary.LittleEndian.Uint64(b[i:])
		q := x ^ (lsbs * '"')
		bs := x ^ (lsbs * '\\')
		m := (q - lsbs) &^ q            // '"'
		m |= (bs - lsbs) &^ bs          // '\\'
		m |= (x - lsbs*0x20) &^ x       // < 0x20
		m |= (x + lsbs*(0x80-0x7f)) | x // >= 0x7f
		if m &= msbs; m != 0 {
			return i + bits.TrailingZeros64(m)/8
		}
	}
	for ; i < len(b); i++ {
		if c := b[i]; c == '"' || c == '\\' || c < 0x20 || c >= 0x7f {
			return i
		}
	}
	return i
}

// scanEscape checks the escape sequence at d.pos and consumes it. A \u
// escape of a UTF-16 surrogate must be a high surrogate directly followed by
// a low one; anything else cannot be UTF-8 and is invalid_utf8.
func (d *Decoder) scanEscape() *RejectError {
	if d.pos+1 >= len(d.buf) {
		return reject(ReasonMalformedJSON, "", "unterminated string")
	}
	switch d.buf[d.pos+1] {
	case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
		d.pos += 2
		return nil
	case 'u':
	default:
		d.pos++
		return d.syntaxError("an escape character (one of \"\\/bfnrtu)")
	}
	r, ok := hex4(d.buf, d.pos+2)
	if !ok {
		return reject(ReasonMalformedJSON, "", fmt.Sprintf("bad \\u escape at byte %d", d.pos))
	}
	d.pos += 6
	if !utf16.IsSurrogate(r) {
		return nil
	}
	if r < 0xdc00 && d.pos+1 < len(d.buf) && d.buf[d.pos] == '\\' && d.buf[d.pos+1] == 'u' {
		if r2, ok := hex4(d.buf, d.pos+2); ok && r2 >= 0xdc00 && r2 <= 0xdfff {
			d.pos += 6
			return nil
		}
	}
	return reject(ReasonInvalidUTF8, "",
		fmt.Sprintf("\\u escape at byte %d is a lone UTF-16 surrogate, which is not Unicode", d.pos-6))
}

// hex4 parses the four hex digits at s[i:].
func hex4(s []byte, i int) (rune, bool) {
	if i+4 > len(s) {
		return 0, false
	}
	var r rune
	for _, c := range s[i : i+4] {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c -= 'a' - 10
		case 'A' <= c && c <= 'F':
			c -= 'A' - 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	return r, true
}

// unescape appends the decoding of raw, string content already checked by
// scanString, to b.
func unescape(b, raw []byte) []byte {
	for i := 0; i < len(raw); {
		c := raw[i]
		if c != '\\' {
			b = append(b, c)
			i++
			continue
		}
		switch c = raw[i+1]; c {
		case 'u':
			r, _ := hex4(raw, i+2)
			i += 6
			if utf16.IsSurrogate(r) {
				r2, _ := hex4(raw, i+2)
				r = utf16.DecodeRune(r, r2)
				i += 6
			}
			b = utf8.AppendRune(b, r)
			continue
		case 'b':
			c = '\b'
		case 'f':
			c = '\f'
		case 'n':
			c = '\n'
		case 'r':
			c = '\r'
		case 't':
			c = '\t'
		}
		b = append(b, c)
		i += 2
	}
	return b
}

// scanNumber consumes a JSON number at d.pos and returns its text and
// whether it is an integer literal (no fraction, no exponent).
func (d *Decoder) scanNumber() (raw []byte, integer bool, err *RejectError) {
	start := d.pos
	if d.peek() == '-' {
		d.pos++
	}
	switch c := d.peek(); {
	case c == '0':
		d.pos++
	case '1' <= c && c <= '9':
		d.skipDigits()
	default:
		return nil, false, d.syntaxError("a digit")
	}
	integer = true
	if d.peek() == '.' {
		integer = false
		d.pos++
		if !isDigit(d.peek()) {
			return nil, false, d.syntaxError("a digit after the decimal point")
		}
		d.skipDigits()
	}
	if c := d.peek(); c == 'e' || c == 'E' {
		integer = false
		d.pos++
		if c := d.peek(); c == '+' || c == '-' {
			d.pos++
		}
		if !isDigit(d.peek()) {
			return nil, false, d.syntaxError("a digit in the exponent")
		}
		d.skipDigits()
	}
	return d.buf[start:d.pos], integer, nil
}

func (d *Decoder) skipDigits() {
	for d.pos < len(d.buf) && isDigit(d.buf[d.pos]) {
		d.pos++
	}
}

// scanLiteral consumes true, false or null.
func (d *Decoder) scanLiteral() *RejectError {
	for _, lit := range [...]string{"true", "false", "null"} {
		if len(d.buf)-d.pos >= len(lit) && string(d.buf[d.pos:d.pos+len(lit)]) == lit {
			d.pos += len(lit)
			return nil
		}
	}
	return d.syntaxError("a JSON value")
}

// scanScalar consumes a string, number or literal.
func (d *Decoder) scanScalar() *RejectError {
	switch c := d.peek(); {
	case c == '"':
		_, _, _, err := d.scanString()
		return err
	case c == '-' || isDigit(c):
		_, _, err := d.scanNumber()
		return err
	}
	return d.scanLiteral()
}

// skipValue consumes any JSON value, checking its syntax. Nesting is
// tracked on d.stack rather than the Go stack, so depth costs no recursion.
func (d *Decoder) skipValue() *RejectError {
	d.stack = d.stack[:0]
	for {
		d.skipSpace()
		opened, err := d.openValue()
		if err != nil {
			return err
		}
		if opened {
			continue
		}
		done, err := d.closeValues()
		if err != nil || done {
			return err
		}
	}
}

// openValue consumes a scalar or an empty container, or opens a non-empty
// container: it consumes the opening bracket (and an object's first key) and
// reports opened, meaning a value must follow.
func (d *Decoder) openValue() (opened bool, err *RejectError) {
	c := d.peek()
	if c != '{' && c != '[' {
		return false, d.scanScalar()
	}
	d.pos++
	d.skipSpace()
	closing := byte(']')
	if c == '{' {
		closing = '}'
	}
	if d.peek() == closing {
		d.pos++
		return false, nil
	}
	d.stack = append(d.stack, closing)
	if c == '{' {
		return true, d.memberKey()
	}
	return true, nil
}

// closeValues runs after a complete value: it consumes closing brackets
// until the outermost value is done, or a ',' (and the next key, in an
// object) after which another value must follow.
func (d *Decoder) closeValues() (done bool, err *RejectError) {
	for len(d.stack) > 0 {
		d.skipSpace()
		top := d.stack[len(d.stack)-1]
		switch d.peek() {
		case top:
			d.pos++
			d.stack = d.stack[:len(d.stack)-1]
		case ',':
			d.pos++
			if top == '}' {
				return false, d.memberKey()
			}
			return false, nil
		default:
			return false, d.syntaxError(fmt.Sprintf("',' or '%c'", top))
		}
	}
	return true, nil
}

// memberKey consumes `"key" :` with the space around it.
func (d *Decoder) memberKey() *RejectError {
	d.skipSpace()
	if d.peek() != '"' {
		return d.syntaxError("a string key")
	}
	if _, _, _, err := d.scanString(); err != nil {
		return err
	}
	d.skipSpace()
	return d.expect(':', "':' after a key")
}
