package event

import (
	"errors"
	"strings"
	"testing"
	"time"
	"unicode"
)

func TestLimitsValidate(t *testing.T) {
	tests := []struct {
		name    string
		limits  Limits
		wantErr string
	}{
		{"defaults", DefaultLimits(), ""},
		{"zero means default", Limits{}, ""},
		{"smallest", Limits{MaxEventBytes: 1024, MaxFutureSkew: time.Second}, ""},
		{"largest", Limits{MaxEventBytes: 1 << 20, MaxFutureSkew: 24 * time.Hour}, ""},
		{"event bytes too small", Limits{MaxEventBytes: 100}, "max event bytes is 100: set it between 1024"},
		{"event bytes negative", Limits{MaxEventBytes: -1}, "max event bytes is -1"},
		{"event bytes too large", Limits{MaxEventBytes: 2 << 20}, "max event bytes is 2097152"},
		{"skew negative", Limits{MaxFutureSkew: -time.Minute}, "max future skew is -1m0s: set it between 1s and 24h0m0s"},
		{"skew too large", Limits{MaxFutureSkew: 48 * time.Hour}, "max future skew is 48h0m0s"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.limits.Validate()
			if tt.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Validate() = %v, want it to contain %q", err, tt.wantErr)
			}
		})
	}
}

func TestNewDecoderLimits(t *testing.T) {
	d := NewDecoder(Limits{})
	if d.limits != DefaultLimits() {
		t.Fatalf("zero limits became %+v, want the defaults", d.limits)
	}
	defer func() {
		if recover() == nil {
			t.Fatal("NewDecoder accepted invalid limits")
		}
	}()
	NewDecoder(Limits{MaxEventBytes: 1})
}

func TestReasons(t *testing.T) {
	seen := map[Reason]bool{}
	for _, r := range Reasons() {
		if seen[r] {
			t.Errorf("%s listed twice", r)
		}
		seen[r] = true
		for _, c := range r {
			if !('a' <= c && c <= 'z') && !('0' <= c && c <= '9') && c != '_' {
				t.Errorf("%q is not a tidy label value", r)
			}
		}
	}
	if len(seen) != 10 {
		t.Errorf("%d reasons, want 10", len(seen))
	}
}

func TestRejectErrorString(t *testing.T) {
	tests := []struct {
		name string
		err  *RejectError
		want string
	}{
		{"field", &RejectError{Reason: ReasonInvalidValue, Field: "status", Detail: msgStatus},
			`field "status": invalid_value: must be an integer from 100 to 599`},
		{"line and field", &RejectError{Reason: ReasonMissingField, Field: "ts", Line: 3, Detail: "is required"},
			`line 3: field "ts": missing_field: is required`},
		{"no field", &RejectError{Reason: ReasonTooLarge, Detail: "event is 20000 bytes, over the limit of 16384"},
			`too_large: event is 20000 bytes, over the limit of 16384`},
		{"no detail", &RejectError{Reason: ReasonMalformedJSON}, `malformed_json`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.err.Error(); got != tt.want {
				t.Fatalf("got  %s\nwant %s", got, tt.want)
			}
		})
	}
}

// TestRejectErrorEchoesLittle feeds attacker-written keys and values into
// errors and checks that what comes out is short and printable.
func TestRejectErrorEchoesLittle(t *testing.T) {
	long := strings.Repeat("A", 5000)
	tests := []struct {
		name      string
		line      string
		wantField string
	}{
		{"unknown key with controls", `{"a\u001b[2Jb\nc\u202e":1}`, `a?[2Jb?c?`},
		{"long unknown key", `{"` + long + `":1}`, strings.Repeat("A", 61) + "..."},
		{"long service, mismatched", `{"ts":"2025-06-01T11:59:58Z","service":"` + strings.Repeat("s", 64) + `"}`, "service"},
		{"attrs key with controls", `{"attrs":{"k\u0007` + long + `":1}}`, "attrs"},
		{"lots of garbage", `{"ts":` + long, ""},
	}
	d := NewDecoder(DefaultLimits())
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var ev Event
			err := d.Decode([]byte(tt.line), "subject", testNow, &ev)
			var rej *RejectError
			if !errors.As(err, &rej) {
				t.Fatalf("Decode = %v", err)
			}
			if rej.Field != tt.wantField {
				t.Errorf("Field = %q, want %q", rej.Field, tt.wantField)
			}
			msg := rej.Error()
			if strings.Count(msg, "A") > maxExcerpt || strings.Count(msg, "s") > maxExcerpt+10 {
				t.Errorf("error repeats too much input: %s", msg)
			}
			for _, r := range msg {
				if !unicode.IsPrint(r) {
					t.Errorf("error holds non-printable %U: %q", r, msg)
				}
			}
		})
	}
}

func TestExcerpt(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"short", "hello", "hello"},
		{"exactly 64", strings.Repeat("x", 64), strings.Repeat("x", 64)},
		{"65 is cut", strings.Repeat("x", 65), strings.Repeat("x", 61) + "..."},
		{"cut on a rune boundary", strings.Repeat("é", 40), strings.Repeat("é", 30) + "..."},
		{"controls", "a\x00b\tc\u0085d", "a?b?c?d"},
		{"bidi override and invalid UTF-8", "x\u202ey\xffz", "x?y?z"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := excerpt(tt.in); got != tt.want {
				t.Fatalf("excerpt = %q, want %q", got, tt.want)
			}
		})
	}
}
