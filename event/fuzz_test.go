package event

import (
	"bytes"
	"errors"
	"slices"
	"testing"
	"unicode"
)

// FuzzDecode feeds arbitrary lines to the decoder, seeded with the sample
// table. It must never panic; a rejection must be a tidy *RejectError; an
// accepted event must round-trip through AppendJSON and be accepted by the
// JSON Schema too (the Go validator is the stricter of the two); and
// DecodeMessage must agree with Decode on a one-line message, and a
// decoder with SetAliasing with one without.
func FuzzDecode(f *testing.F) {
	samples := loadSamples(f)
	for _, s := range samples.Samples {
		if b := s.bytes(f); len(b) <= 4<<10 { // big seeds make minimizing slow
			f.Add(b, s.Subject)
		}
	}
	sch := compileSchema(f)
	d := NewDecoder(DefaultLimits())
	da := NewDecoder(DefaultLimits())
	da.SetAliasing(true)
	f.Fuzz(func(t *testing.T, data []byte, subject string) {
		var ev, aliased Event
		err := d.Decode(data, subject, samples.Now, &ev)
		aerr := da.Decode(data, subject, samples.Now, &aliased)
		if reasonOf(aerr) != reasonOf(err) || (err == nil && !eventsEqual(&aliased, &ev)) {
			t.Fatalf("with aliasing: %+v, %v; without: %+v, %v", aliased, aerr, ev, err)
		}
		if err == nil {
			assertRoundTrip(t, d, &ev, subject, samples.Now)
			if ok, verr := schemaCheck(sch, data); !ok {
				t.Fatalf("Go accepts what the schema rejects: %v", verr)
			}
		} else {
			checkRejectError(t, err)
		}
		if bytes.ContainsAny(data, "\r\n") || blank(data) {
			return
		}
		valid, rejected := d.DecodeMessage(data, subject, samples.Now, func(*Event) {},
			func(rej *RejectError, line []byte) {
				if rej.Line != 1 || !bytes.Equal(line, data) || rej.Reason != reasonOf(err) {
					t.Fatalf("DecodeMessage rejected line %d %q with %v; Decode said %v", rej.Line, line, rej, err)
				}
			})
		if (err == nil) != (valid == 1) || valid+rejected != 1 {
			t.Fatalf("DecodeMessage: %d valid, %d rejected; Decode said %v", valid, rejected, err)
		}
	})
}

func checkRejectError(t *testing.T, err error) {
	t.Helper()
	var rej *RejectError
	if !errors.As(err, &rej) {
		t.Fatalf("Decode returned %T %v, want a *RejectError", err, err)
	}
	if !slices.Contains(Reasons(), rej.Reason) {
		t.Fatalf("unknown reason %q", rej.Reason)
	}
	if len(rej.Field) > maxExcerpt {
		t.Fatalf("Field is %d bytes", len(rej.Field))
	}
	msg := rej.Error()
	if len(msg) > 512 {
		t.Fatalf("error is %d bytes: %s", len(msg), msg)
	}
	for _, r := range msg {
		if !unicode.IsPrint(r) {
			t.Fatalf("error holds non-printable %U: %q", r, msg)
		}
	}
}
