package event

import (
	"errors"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"
	"unsafe"
)

var testNow = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

const typicalEvent = `{"ts":"2025-06-01T11:59:58.123Z","service":"api","request_id":"5f0c1a9e-8d2b-4c1e-9a77-3b2f0e6d4c21",` +
	`"method":"POST","endpoint":"/v1/login","status":401,"path":"/v1/login?next=%2Fdashboard","latency_ms":12.7,` +
	`"source_ip":"203.0.113.42","user":"alice@example.com","client_id":"web-frontend",` +
	`"user_agent":"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36"}`

func TestDecodeFields(t *testing.T) {
	d := NewDecoder(DefaultLimits())
	var ev Event
	if err := d.Decode([]byte(typicalEvent), "api", testNow, &ev); err != nil {
		t.Fatal(err)
	}
	want := Event{
		Time:    time.Date(2025, 6, 1, 11, 59, 58, 123e6, time.UTC),
		Service: "api", RequestID: "5f0c1a9e-8d2b-4c1e-9a77-3b2f0e6d4c21", Method: "POST",
		Endpoint: "/v1/login", Status: 401, Path: "/v1/login?next=%2Fdashboard",
		LatencyMS: 12.7, HasLatency: true, SourceIP: netip.MustParseAddr("203.0.113.42"),
		User: "alice@example.com", ClientID: "web-frontend",
		UserAgent: "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36",
	}
	if !eventsEqual(&ev, &want) || ev.Time.Location() != time.UTC {
		t.Fatalf("got %+v\nwant %+v", ev, want)
	}
}

func TestDecodeEscapes(t *testing.T) {
	tests := []struct {
		name, json, want string
	}{
		{"plain", `"alice"`, "alice"},
		{"short escapes", `"a\"b\\c\/d"`, `a"b\c/d`},
		{"latin-1", `"\u00e9ric"`, "éric"},
		{"upper-case hex", `"\u00C9"`, "É"},
		{"three-byte", `"\u20ac"`, "€"},
		{"surrogate pair", `"\ud83d\ude00!"`, "😀!"},
		{"raw multi-byte", `"naïve 😀"`, "naïve 😀"},
		{"escape at the end", `"x\u0041"`, "xA"},
	}
	d := NewDecoder(DefaultLimits())
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			line := strings.Replace(typicalEvent, `"alice@example.com"`, tt.json, 1)
			var ev Event
			if err := d.Decode([]byte(line), "", testNow, &ev); err != nil {
				t.Fatal(err)
			}
			if ev.User != tt.want {
				t.Fatalf("user = %q, want %q", ev.User, tt.want)
			}
		})
	}
}

func TestDecodeMessage(t *testing.T) {
	ev := func(id string) string {
		return strings.Replace(typicalEvent, "5f0c1a9e-8d2b-4c1e-9a77-3b2f0e6d4c21", id, 1)
	}
	type rejection struct {
		line   int
		reason Reason
		raw    string
	}
	tests := []struct {
		name      string
		msg       string
		wantValid []string // request ids
		wantRej   []rejection
	}{
		{"one event, no newline", ev("a"), []string{"a"}, nil},
		{"one event, trailing newline", ev("a") + "\n", []string{"a"}, nil},
		{"three events", ev("a") + "\n" + ev("b") + "\n" + ev("c"), []string{"a", "b", "c"}, nil},
		{"CRLF", ev("a") + "\r\n" + ev("b") + "\r\n", []string{"a", "b"}, nil},
		{"blank lines", "\n  \n" + ev("a") + "\n\t\r\n\n" + ev("b"), []string{"a", "b"}, nil},
		{"mixed valid and invalid", ev("a") + "\n{\"ts\":1}\r\n" + ev("b") + "\nnot json\n" + ev("a b"),
			[]string{"a", "b"}, []rejection{
				{2, ReasonWrongType, `{"ts":1}`},
				{4, ReasonMalformedJSON, "not json"},
				{5, ReasonInvalidValue, ev("a b")},
			}},
		{"pretty-printed event is one rejection per line", "{\n\"ts\":1\n}",
			nil, []rejection{{1, ReasonMalformedJSON, "{"}, {2, ReasonMalformedJSON, `"ts":1`}, {3, ReasonMalformedJSON, "}"}}},
		{"empty message", "", nil, []rejection{{1, ReasonMalformedJSON, ""}}},
		{"blank message", "\r\n \n", nil, []rejection{{1, ReasonMalformedJSON, "\r\n \n"}}},
		{"invalid UTF-8 line", ev("a") + "\n{\"x\":\"\xff\"}", []string{"a"}, []rejection{{2, ReasonInvalidUTF8, "{\"x\":\"\xff\"}"}}},
	}
	d := NewDecoder(DefaultLimits())
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var gotValid []string
			var gotRej []rejection
			valid, rejected := d.DecodeMessage([]byte(tt.msg), "api", testNow,
				func(ev *Event) { gotValid = append(gotValid, ev.RequestID) },
				func(err *RejectError, line []byte) {
					gotRej = append(gotRej, rejection{err.Line, err.Reason, string(line)})
				})
			if !slices.Equal(gotValid, tt.wantValid) || !slices.Equal(gotRej, tt.wantRej) {
				t.Fatalf("valid %q rejected %+v\nwant valid %q rejected %+v", gotValid, gotRej, tt.wantValid, tt.wantRej)
			}
			if valid != len(tt.wantValid) || rejected != len(tt.wantRej) {
				t.Fatalf("counts %d, %d; want %d, %d", valid, rejected, len(tt.wantValid), len(tt.wantRej))
			}
		})
	}
}

func TestDecodeMessageReusesEvent(t *testing.T) {
	msg := `{"ts":"2025-06-01T11:00:00Z","service":"api","request_id":"a","method":"GET","endpoint":"/","status":200,"attrs":{"k":"1","x":"y"}}` + "\n" +
		`{"ts":"2025-06-01T11:00:00Z","service":"api","request_id":"b","method":"GET","endpoint":"/","status":200,"attrs":{"k":"2"}}` + "\n" +
		`{"ts":"2025-06-01T11:00:00Z","service":"api","request_id":"c","method":"GET","endpoint":"/","status":200}`
	var got []map[string]string
	NewDecoder(DefaultLimits()).DecodeMessage([]byte(msg), "", testNow,
		func(ev *Event) { got = append(got, maps.Clone(ev.Attrs)) },
		func(err *RejectError, _ []byte) { t.Fatal(err) })
	want := []map[string]string{{"k": "1", "x": "y"}, {"k": "2"}, {}}
	if len(got) != len(want) {
		t.Fatalf("got %d events", len(got))
	}
	for i := range want {
		if !maps.Equal(got[i], want[i]) {
			t.Errorf("event %d attrs = %v, want %v", i, got[i], want[i])
		}
	}
}

func TestDecodeSizeLimit(t *testing.T) {
	limits := Limits{MaxEventBytes: 1024}
	pad := func(n int) string { // a valid event of exactly n bytes
		base := strings.Replace(typicalEvent, `"/v1/login?next=%2Fdashboard"`, `"/"`, 1)
		return strings.Replace(base, `"path":"/"`, `"path":"/`+strings.Repeat("p", n-len(base))+`"`, 1)
	}
	tests := []struct {
		name   string
		line   string
		reason Reason
	}{
		{"at the limit", pad(1024), ""},
		{"one byte over", pad(1025), ReasonTooLarge},
		{"over, even if not JSON", strings.Repeat("x", 1025), ReasonTooLarge},
		{"space counts", pad(1020) + "     ", ReasonTooLarge},
	}
	d := NewDecoder(limits)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var ev Event
			err := d.Decode([]byte(tt.line), "", testNow, &ev)
			if tt.reason == "" {
				if err != nil || len(ev.Path) < 600 {
					t.Fatalf("Decode = %v, path %d bytes", err, len(ev.Path))
				}
				return
			}
			if r := reasonOf(err); r != tt.reason {
				t.Fatalf("Decode = %v, want %s", err, tt.reason)
			}
		})
	}
}

func reasonOf(err error) Reason {
	var rej *RejectError
	if errors.As(err, &rej) {
		return rej.Reason
	}
	return ""
}

func TestDecodeFutureSkew(t *testing.T) {
	tests := []struct {
		name string
		skew time.Duration
		now  time.Time
		ts   string
		want Reason
	}{
		{"default skew, inside", 0, testNow, "2025-06-01T12:05:00Z", ""},
		{"default skew, 1ns over", 0, testNow, "2025-06-01T12:05:00.000000001Z", ReasonFutureTimestamp},
		{"offset counts", 0, testNow, "2025-06-01T14:06:00+02:00", ReasonFutureTimestamp},
		{"custom skew", time.Hour, testNow, "2025-06-01T12:59:00Z", ""},
		{"custom skew, over", time.Hour, testNow, "2025-06-01T13:01:00Z", ReasonFutureTimestamp},
		{"past is fine", 0, testNow, "2001-01-01T00:00:00Z", ""},
		{"zero now skips the check", 0, time.Time{}, "2999-01-01T00:00:00Z", ""},
		{"past year 9999 in UTC", 0, time.Time{}, "9999-12-31T23:59:59-00:01", ReasonInvalidValue},
		{"last second of 9999", 0, time.Time{}, "9999-12-31T23:59:59.999999999Z", ""},
		{"before 1970 in UTC", 0, testNow, "1970-01-01T00:30:00+01:00", ReasonInvalidValue},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := NewDecoder(Limits{MaxFutureSkew: tt.skew})
			line := strings.Replace(typicalEvent, "2025-06-01T11:59:58.123Z", tt.ts, 1)
			var ev Event
			err := d.Decode([]byte(line), "", tt.now, &ev)
			if r := reasonOf(err); r != tt.want || (tt.want == "" && err != nil) {
				t.Fatalf("Decode = %v, want reason %q", err, tt.want)
			}
		})
	}
}

func TestDecodeDeepNesting(t *testing.T) {
	deep := strings.Repeat("[", 5000) + strings.Repeat("]", 5000)
	tests := []struct {
		name, extra string
		want        Reason
	}{
		{"deep array in an unknown field", `"x":` + deep, ReasonUnknownField},
		{"deep object in an unknown field", `"x":` + strings.Repeat(`{"a":`, 2000) + "1" + strings.Repeat("}", 2000), ReasonUnknownField},
		{"unbalanced", `"x":` + strings.Repeat("[", 5000) + strings.Repeat("]", 4999), ReasonMalformedJSON},
		{"mismatched brackets", `"x":[{"a":1]}`, ReasonMalformedJSON},
		{"nested value in a wrong-typed field", `"user":[1,{"a":[true,false,null,"s"]},-0.5e+3]`, ReasonWrongType},
	}
	d := NewDecoder(Limits{MaxEventBytes: maxEventBytes})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			line := strings.Replace(typicalEvent, `"user":"alice@example.com"`, tt.extra, 1)
			var ev Event
			if r := reasonOf(d.Decode([]byte(line), "", testNow, &ev)); r != tt.want {
				t.Fatalf("reason %q, want %q", r, tt.want)
			}
		})
	}
}

func TestDecodeOrder(t *testing.T) {
	tests := []struct {
		name, line string
		reason     Reason
		field      string
	}{
		{"size beats everything", strings.Repeat("\xff", DefaultMaxEventBytes+1), ReasonTooLarge, ""},
		{"UTF-8 beats syntax", "{\xff", ReasonInvalidUTF8, ""},
		{"UTF-8 after a syntax error", `{"ts":1,` + "\xff", ReasonInvalidUTF8, ""},
		{"UTF-8 after a field error", `{"status":1,"user":"` + "\xc3" + `"}`, ReasonInvalidUTF8, ""},
		{"UTF-8 in an attrs key", `{"attrs":{"` + "\xed\xa0\x80" + `":"x"}}`, ReasonInvalidUTF8, ""},
		{"valid UTF-8 outside a string is syntax", `{"ts":1,é}`, ReasonMalformedJSON, ""},
		{"syntax beats an earlier field error", `{"ts":1,"service":}`, ReasonMalformedJSON, ""},
		{"lone surrogate is invalid_utf8", `{"x":1,"user":"\udc00"}`, ReasonInvalidUTF8, ""},
		{"first field error in document order", `{"status":1,"ts":true}`, ReasonInvalidValue, "status"},
		{"field error beats missing", `{"ts":"x"}`, ReasonInvalidValue, "ts"},
		{"first missing in schema order", `{"status":200,"method":"GET"}`, ReasonMissingField, "ts"},
		{"bad source_ip before a bad status", `{"source_ip":"x","status":1}`, ReasonInvalidValue, "source_ip"},
		{"bad status before a bad source_ip", `{"status":1,"source_ip":"x"}`, ReasonInvalidValue, "status"},
		{"bad source_ip beats missing", `{"source_ip":"1.2.3.4%x"}`, ReasonInvalidValue, "source_ip"},
		{"attrs entries in order", `{"attrs":{"a":"1","a":"2","b":3}}`, ReasonDuplicateField, "attrs"},
	}
	d := NewDecoder(DefaultLimits())
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var ev Event
			err := d.Decode([]byte(tt.line), "", testNow, &ev)
			var rej *RejectError
			if !errors.As(err, &rej) || rej.Reason != tt.reason || rej.Field != tt.field {
				t.Fatalf("Decode = %v, want %s on %q", err, tt.reason, tt.field)
			}
		})
	}
}

// TestDecodeOwnsStrings checks that a decoded event does not alias the
// caller's buffer, which NATS may reuse.
func TestDecodeOwnsStrings(t *testing.T) {
	line := strings.Replace(typicalEvent, `"user":"alice@example.com"`,
		`"user":"\u00e9ve","attrs":{"k\u0031":"v1","k2":"v2"}`, 1)
	data := []byte(line)
	d := NewDecoder(DefaultLimits())
	var ev Event
	if err := d.Decode(data, "api", testNow, &ev); err != nil {
		t.Fatal(err)
	}
	want := ev
	want.Attrs = maps.Clone(ev.Attrs)
	for i := range data {
		data[i] = 'X'
	}
	if !eventsEqual(&ev, &want) || ev.User != "éve" || ev.Attrs["k1"] != "v1" || ev.Attrs["k2"] != "v2" {
		t.Fatalf("event changed with its input: %+v", ev)
	}
}

// TestDecodeAliasing checks SetAliasing: the event is the same as with
// copies, the values that needed no unescaping point into the input, the
// unescaped ones do not, and a typical event costs no allocation.
func TestDecodeAliasing(t *testing.T) {
	line := strings.Replace(typicalEvent, `"user":"alice@example.com"`,
		`"user":"\u00e9ve","attrs":{"k\u0031":"v1","k2":"v2"}`, 1)
	data := []byte(line)
	var copied, aliased Event
	if err := NewDecoder(DefaultLimits()).Decode(data, "api", testNow, &copied); err != nil {
		t.Fatal(err)
	}
	d := NewDecoder(DefaultLimits())
	d.SetAliasing(true)
	if err := d.Decode(data, "api", testNow, &aliased); err != nil {
		t.Fatal(err)
	}
	if !eventsEqual(&aliased, &copied) {
		t.Fatalf("aliasing decoded %+v\nwithout it: %+v", aliased, copied)
	}
	inData := func(s string) bool {
		p := uintptr(unsafe.Pointer(unsafe.StringData(s)))
		first := uintptr(unsafe.Pointer(&data[0]))
		return p >= first && p < first+uintptr(len(data))
	}
	keys := map[string]string{} // attrs key -> the key string the map holds
	for k := range aliased.Attrs {
		keys[k] = k
	}
	for name, s := range map[string]string{"service": aliased.Service, "endpoint": aliased.Endpoint,
		"request_id": aliased.RequestID, "attrs key k2": keys["k2"], "attrs value v2": aliased.Attrs["k2"]} {
		if !inData(s) {
			t.Errorf("%s %q is a copy, want it to point into the input", name, s)
		}
	}
	for name, s := range map[string]string{"user": aliased.User, "attrs key k1": keys["k1"]} {
		if inData(s) {
			t.Errorf("%s %q points into the input, want its unescaped copy", name, s)
		}
	}

	typical := []byte(typicalEvent)
	if n := testing.AllocsPerRun(100, func() {
		if err := d.Decode(typical, "api", testNow, &aliased); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Errorf("decoding a typical event with aliasing allocates %v times, want 0", n)
	}
}

// TestDecoderReuse runs several events through one Decoder and one Event:
// nothing of an earlier event may show in a later one.
func TestDecoderReuse(t *testing.T) {
	full := strings.TrimSuffix(typicalEvent, "}") + `,"attrs":{"a":"1"}}`
	bare := `{"ts":"2025-06-01T11:00:00Z","service":"api","request_id":"r2","method":"GET","endpoint":"/x","status":200,` +
		`"user":null,"source_ip":null,"attrs":null,"latency_ms":null}`
	d := NewDecoder(DefaultLimits())
	var ev Event
	for i, line := range []string{full, `{"ts":1}`, bare} {
		err := d.Decode([]byte(line), "api", testNow, &ev)
		if (err != nil) != (i == 1) {
			t.Fatalf("line %d: Decode = %v", i, err)
		}
	}
	want := Event{Time: time.Date(2025, 6, 1, 11, 0, 0, 0, time.UTC), Service: "api", RequestID: "r2",
		Method: "GET", Endpoint: "/x", Status: 200}
	if !eventsEqual(&ev, &want) {
		t.Fatalf("got %+v\nwant %+v", ev, want)
	}
}
