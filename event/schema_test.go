package event

import (
	"encoding/json"
	"math/rand/v2"
	"os"
	"regexp"
	"strings"
	"testing"
	"unicode/utf8"
)

// schemaPatterns compiles the "pattern" of each string property of
// docs/event-schema.json, as github.com/santhosh-tekuri/jsonschema does (Go
// regexp), keyed by property name; attrs' key and value patterns are
// "attrs.key" and "attrs.value".
func schemaPatterns(t testing.TB) map[string]*regexp.Regexp {
	t.Helper()
	data, err := os.ReadFile(schemaPath)
	if err != nil {
		t.Fatal(err)
	}
	type prop struct {
		Pattern               string `json:"pattern"`
		PropertyNames         *prop  `json:"propertyNames"`
		AdditionalProperties_ *prop  `json:"additionalProperties"`
	}
	var doc struct {
		Properties map[string]prop `json:"properties"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	res := map[string]*regexp.Regexp{}
	add := func(name, pattern string) {
		if pattern != "" {
			res[name] = regexp.MustCompile(pattern)
		}
	}
	for name, p := range doc.Properties {
		add(name, p.Pattern)
	}
	attrs := doc.Properties["attrs"]
	add("attrs.key", attrs.PropertyNames.Pattern)
	add("attrs.value", attrs.AdditionalProperties_.Pattern)
	return res
}

// checkPatterns asserts that the schema's patterns agree with the Go
// validators on s, wherever the schema claims to express the rule (byte
// lengths are left to maxLength, and checked by the sample table).
func checkPatterns(t *testing.T, pat map[string]*regexp.Regexp, s string) {
	t.Helper()
	if !utf8.ValidString(s) {
		return // no JSON string holds invalid UTF-8
	}
	b := []byte(s)
	_, tsOK := parseTimestamp(b)
	noControl := !hasControl(b)
	checks := []struct {
		field string
		goOK  bool
	}{
		{"service", validService(b)},
		{"request_id", validRequestID(b)},
		{"method", validMethod(b)},
		{"endpoint", validEndpoint(b)},
		{"source_ip", validIP(s)},
		{"path", noControl},
		{"user", noControl},
		{"client_id", noControl},
		{"user_agent", noControl},
		{"attrs.key", noControl},
		{"attrs.value", noControl},
	}
	for _, c := range checks {
		if got := pat[c.field].MatchString(s); got != c.goOK {
			t.Fatalf("%s: schema pattern says %v, Go says %v for %q", c.field, got, c.goOK, s)
		}
	}
	// The ts pattern cannot know month lengths: it may accept more, never less.
	if tsOK && !pat["ts"].MatchString(s) {
		t.Fatalf("ts: schema pattern rejects %q, which Go accepts", s)
	}
}

func TestSchemaPatternsEveryRune(t *testing.T) {
	pat := schemaPatterns(t)
	textFields := []string{"path", "user", "client_id", "user_agent", "attrs.key", "attrs.value"}
	// Every white-space and control rune is below U+3100; above it a
	// sample of runes (all planes) keeps the test quick under -race.
	for r := rune(0); r <= utf8.MaxRune; r = nextRune(r) {
		if !utf8.ValidRune(r) {
			continue
		}
		c := string(r)
		if r < 0x400 {
			checkPatterns(t, pat, c)
			checkPatterns(t, pat, "A"+c)
		}
		if got, want := pat["endpoint"].MatchString("/"+c), validEndpoint([]byte("/"+c)); got != want {
			t.Fatalf("endpoint: schema pattern says %v, Go says %v for %U", got, want, r)
		}
		for _, f := range textFields {
			if got, want := pat[f].MatchString(c), !hasControl([]byte(c)); got != want {
				t.Fatalf("%s: schema pattern says %v, Go says %v for %U", f, got, want, r)
			}
		}
	}
}

func nextRune(r rune) rune {
	if r < 0x3100 {
		return r + 1
	}
	return r + 61
}

func TestSchemaPatternsAddresses(t *testing.T) {
	pat := schemaPatterns(t)
	for _, s := range addressSeeds() {
		checkPatterns(t, pat, s)
	}
	// Random strings built from address-like pieces.
	pieces := []string{"0", "1", "9", "a", "F", "ff", "fFfF", "12345", "01", "00", "255", "256",
		"199", "249", ":", ":", "::", ".", ".", "%eth0", "%", "1.2.3.4", "g", "-", "/", " "}
	rng := rand.New(rand.NewPCG(1, 2))
	var b strings.Builder
	for range 30_000 { // FuzzSchemaPatterns goes further
		b.Reset()
		for n := 1 + rng.IntN(14); n > 0; n-- {
			b.WriteString(pieces[rng.IntN(len(pieces))])
		}
		checkPatterns(t, pat, b.String())
	}
}

func addressSeeds() []string {
	return []string{
		"1.2.3.4", "0.0.0.0", "255.255.255.255", "256.1.1.1", "1.2.3", "1.2.3.4.5", "01.2.3.4",
		"1.2.3.04", "1..3.4", ".1.2.3", "::", "::1", "1::", "1:2:3:4:5:6:7:8", "1:2:3:4:5:6:7::",
		"::2:3:4:5:6:7:8", "1:2:3:4:5:6:7:8:9", "1::2::3", "12345::", "::ffff:1.2.3.4",
		"1:2:3:4:5:6:1.2.3.4", "1:2:3:4:5::1.2.3.4", "1:2:3:4:5:6::1.2.3.4", "::1:2:3:4:5:1.2.3.4",
		"::1:2:3:4:5:6:1.2.3.4", "1:2:3:4:5:6:7:1.2.3.4", "::1.2.3.4", "::01.2.3.4", "fe80::1%eth0",
		"fe80::1%", "::1.2.3.4:5", ":1::", "1:::2", "2001:DB8::68", "",
	}
}

// FuzzSchemaPatterns checks the schema's patterns against the Go validators.
func FuzzSchemaPatterns(f *testing.F) {
	for _, s := range addressSeeds() {
		f.Add(s)
	}
	for _, s := range timestampSeeds() {
		f.Add(s)
	}
	for _, s := range []string{"api", "GET", "M-SEARCH", "/v1/x/{id}", "req-1", "a\u00a0b", "a\u0085b"} {
		f.Add(s)
	}
	pat := schemaPatterns(f)
	f.Fuzz(func(t *testing.T, s string) { checkPatterns(t, pat, s) })
}
