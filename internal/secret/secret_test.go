package secret

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

const canary = "canary-5e1f0d"

func TestEveryWayOfPrintingIsRedacted(t *testing.T) {
	s := New(canary, "test")
	var logs bytes.Buffer
	slog.New(slog.NewJSONHandler(&logs, nil)).Info("x", "secret", s, "struct", struct{ S Secret }{s})
	js, _ := json.Marshal(struct{ S Secret }{s})
	y, _ := yaml.Marshal(struct{ S Secret }{s})
	outputs := map[string]string{
		"%v": fmt.Sprintf("%v", s), "%s": fmt.Sprintf("%s", s), "%q": fmt.Sprintf("%q", s),
		"%#v": fmt.Sprintf("%#v", s), "%+v struct": fmt.Sprintf("%+v", struct{ S Secret }{s}),
		"%x": fmt.Sprintf("%x", s), "slog": logs.String(), "json": string(js), "yaml": string(y),
	}
	for how, out := range outputs {
		if strings.Contains(out, canary) || !strings.Contains(out, "secret") {
			t.Errorf("%s prints %q; want %s and never the value", how, out, Redacted)
		}
	}
	if s.Value() != canary {
		t.Fatalf("Value() = %q", s.Value())
	}
}

func TestFromString(t *testing.T) {
	env := map[string]string{"TOKEN": canary, "EMPTY": ""}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	cases := []struct {
		raw, want string
		inline    bool
		err       string
	}{
		{raw: "${TOKEN}", want: canary},
		{raw: "literal", want: "literal", inline: true},
		{raw: "", want: ""},
		{raw: "${MISSING}", err: "MISSING is not set"},
		{raw: "${EMPTY}", err: "EMPTY is not set"},
		{raw: "prefix-${TOKEN}", err: "one whole environment variable"},
	}
	for _, tc := range cases {
		t.Run(tc.raw, func(t *testing.T) {
			s, err := FromString(tc.raw, lookup)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) || strings.Contains(err.Error(), canary) {
					t.Fatalf("err = %v, want %q without the value", err, tc.err)
				}
				return
			}
			if err != nil || s.Value() != tc.want || s.Inline() != tc.inline {
				t.Fatalf("got %q inline=%v err=%v; want %q inline=%v", s.Value(), s.Inline(), err, tc.want, tc.inline)
			}
		})
	}
}

func TestResolveAndCheckInline(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "tok")
	if err := os.WriteFile(file, []byte(canary+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := Resolve("token", Secret{}, file)
	if err != nil || s.Value() != canary || s.Inline() {
		t.Fatalf("Resolve from file = %q, %v", s.Value(), err)
	}
	if _, err := Resolve("token", New("x", "env X"), file); err == nil || !strings.Contains(err.Error(), "token and token_file are both set") {
		t.Fatalf("both set: err = %v", err)
	}
	if _, err := Resolve("token", Secret{}, filepath.Join(dir, "missing")); err == nil || !strings.Contains(err.Error(), "token_file") {
		t.Fatalf("missing file: err = %v", err)
	}
	inline, _ := FromString("hunter2", func(string) (string, bool) { return "", false })
	if err := CheckInline("slack.token", inline, false); err == nil || !strings.Contains(err.Error(), "allow_inline_secrets") || strings.Contains(err.Error(), "hunter2") {
		t.Fatalf("inline refused: err = %v", err)
	}
	if err := CheckInline("slack.token", inline, true); err != nil {
		t.Fatalf("inline allowed: err = %v", err)
	}
}
