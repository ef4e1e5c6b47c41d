package secret

import (
	"bytes"
	"encoding/json"
	"errors"
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

func TestYAMLAndJSONOfUnsetSecret(t *testing.T) {
	type doc struct {
		Set   Secret `yaml:"set" json:"set"`
		Unset Secret `yaml:"unset" json:"unset"`
	}
	d := doc{Set: New(canary, "env VIGIL_TEST_TOKEN")}
	y, err := yaml.Marshal(d)
	if err != nil {
		t.Fatal(err)
	}
	if want := "set: <secret> # from env VIGIL_TEST_TOKEN\nunset: \"\"\n"; string(y) != want {
		t.Errorf("YAML:\n%s\nwant:\n%s", y, want)
	}
	j, _ := json.Marshal(d)
	var back map[string]string
	if err := json.Unmarshal(j, &back); err != nil || back["set"] != Redacted || back["unset"] != "" {
		t.Errorf("JSON %s, want set %s and unset empty", j, Redacted)
	}
}

func TestFile(t *testing.T) {
	for _, tc := range []struct {
		s    Secret
		want string
	}{
		{New("x", "file /run/secrets/a"), "/run/secrets/a"},
		{New("x", "env FILE"), ""},
		{Secret{}, ""},
	} {
		if got := tc.s.File(); got != tc.want {
			t.Errorf("File() of source %q = %q, want %q", tc.s.Source(), got, tc.want)
		}
	}
}

// TestCheckFileMode writes real files with real modes.
func TestCheckFileMode(t *testing.T) {
	dir := t.TempDir()
	cases := []struct {
		name string
		mode os.FileMode
		who  string // "" for no problem
	}{
		{"owner only", 0o600, ""},
		{"owner read-only", 0o400, ""},
		{"world readable", 0o644, "other users"},
		{"others write only", 0o602, "other users"},
		{"group readable, owned by Vigil's user", 0o640, "its group"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "_"))
			if err := os.WriteFile(p, []byte(canary), 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(p, tc.mode); err != nil {
				t.Fatal(err)
			}
			err := CheckFileMode(p)
			if tc.who == "" {
				if err != nil {
					t.Fatalf("CheckFileMode = %v, want nil", err)
				}
				return
			}
			var me *FileModeError
			if !errors.As(err, &me) || me.Who != tc.who || me.Mode != tc.mode ||
				!strings.Contains(err.Error(), "chmod 600 "+p) || strings.Contains(err.Error(), canary) {
				t.Fatalf("CheckFileMode = %v, want a FileModeError for %s with the chmod to run", err, tc.who)
			}
		})
	}
	t.Run("missing file is left to the reader", func(t *testing.T) {
		if err := CheckFileMode(filepath.Join(dir, "missing")); err != nil {
			t.Fatalf("CheckFileMode = %v", err)
		}
	})
	t.Run("group readable, owned by root", func(t *testing.T) {
		if os.Geteuid() != 0 {
			t.Skip("needs root to give a file to another owner")
		}
		p := filepath.Join(dir, "root-owned")
		if err := os.WriteFile(p, []byte(canary), 0o640); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(p, 65534, 0); err != nil {
			t.Fatal(err)
		}
		if err := CheckFileMode(p); err != nil {
			t.Fatalf("a file owned by another user and readable through its group: %v", err)
		}
	})
}
