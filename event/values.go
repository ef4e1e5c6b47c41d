package event

import (
	"bytes"
	"strconv"
)

// status decodes "status": an integer literal from 100 to 599.
func (d *Decoder) status(ev *Event) *RejectError {
	if parse, err := d.expectKind(fStatus, kindNumber); !parse {
		return err
	}
	raw, integer, err := d.scanNumber()
	if err != nil {
		return err
	}
	if !integer {
		d.fail(ReasonWrongType, "status", "must be an integer literal such as 200, without fraction or exponent")
		return nil
	}
	n, ok := digits(raw) // a '-' makes ok false
	if !ok || len(raw) != 3 || n < 100 || n > 599 {
		d.fail(ReasonInvalidValue, "status", msgStatus)
		return nil
	}
	ev.Status = n
	return nil
}

// latency decodes "latency_ms": a finite number >= 0.
func (d *Decoder) latency(ev *Event) *RejectError {
	if parse, err := d.expectKind(fLatency, kindNumber); !parse {
		return err
	}
	raw, _, err := d.scanNumber()
	if err != nil {
		return err
	}
	// The JSON number grammar is a subset of ParseFloat's, so the only
	// possible error is a value beyond float64's range.
	v, perr := strconv.ParseFloat(string(raw), 64)
	switch {
	case perr != nil:
		d.fail(ReasonInvalidValue, "latency_ms", "must be a finite number of milliseconds")
	case v < 0:
		d.fail(ReasonInvalidValue, "latency_ms", "must not be negative")
	default:
		ev.LatencyMS, ev.HasLatency = v, true
	}
	return nil
}

// attrsField decodes "attrs": an object of at most MaxAttrs string values.
func (d *Decoder) attrsField() *RejectError {
	if parse, err := d.expectKind(fAttrs, kindObject); !parse {
		return err
	}
	d.pos++ // '{'
	d.skipSpace()
	if d.peek() == '}' {
		d.pos++
		return nil
	}
	for {
		d.skipSpace()
		if d.peek() != '"' {
			return d.syntaxError("a string key")
		}
		start, end, info, err := d.scanString()
		if err != nil {
			return err
		}
		d.skipSpace()
		if err := d.expect(':', "':' after a key"); err != nil {
			return err
		}
		d.skipSpace()
		if err := d.attr(start, end, info); err != nil {
			return err
		}
		d.skipSpace()
		if d.peek() != ',' {
			return d.expect('}', "',' or '}'")
		}
		d.pos++
	}
}

// attr decodes the value of one attrs entry whose key was just scanned.
func (d *Decoder) attr(keyStart, keyEnd int, keyInfo strInfo) *RejectError {
	if d.first != nil {
		return d.skipValue()
	}
	key, keySpan := d.stringValue(keyStart, keyEnd, keyInfo)
	if kind := d.kind(); kind != kindString {
		d.fail(ReasonWrongType, "attrs", "value of key "+quote(string(key))+" must be a string, not "+kind.String())
		return d.skipValue()
	}
	start, end, info, err := d.scanString()
	if err != nil {
		return err
	}
	value, valueSpan := d.stringValue(start, end, info)
	switch {
	case len(key) == 0 || len(key) > MaxAttrKey:
		d.fail(ReasonInvalidValue, "attrs", "keys must be 1 to 64 bytes of UTF-8")
	case keyInfo.mayHoldControl() && hasControl(key):
		d.fail(ReasonInvalidValue, "attrs", "keys "+msgControl)
	case len(value) > MaxAttrValue:
		d.fail(ReasonInvalidValue, "attrs", "value of key "+quote(string(key))+" "+tooLong(MaxAttrValue))
	case info.mayHoldControl() && hasControl(value):
		d.fail(ReasonInvalidValue, "attrs", "value of key "+quote(string(key))+" "+msgControl)
	case d.hasAttr(key):
		d.fail(ReasonDuplicateField, "attrs", "key "+quote(string(key))+" appears more than once")
	case len(d.attrs) == MaxAttrs:
		d.fail(ReasonInvalidValue, "attrs", "must have at most 32 entries")
	default:
		d.attrs = append(d.attrs, attrSpan{keySpan, valueSpan})
	}
	return nil
}

// hasAttr reports whether key is among the attrs entries read so far.
func (d *Decoder) hasAttr(key []byte) bool {
	for _, a := range d.attrs {
		if bytes.Equal(d.bytes(a.key), key) {
			return true
		}
	}
	return false
}
