// Package secret holds configuration values that must never be printed: tokens,
// webhook signing keys, passwords. A Secret comes from "${ENV_VAR}" or from a
// file; one written inline in a config file is remembered as inline so the
// config loader can refuse it unless inline secrets are explicitly allowed.
// Every way of printing a Secret (fmt, slog, JSON, YAML) prints "<secret>";
// JSON and YAML print an unset Secret as empty, so that a config dump does not
// claim a value that is not there. Secret and key files should be readable
// by Vigil's user only: CheckFileMode says when one is not.
package secret

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"regexp"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Redacted is what a Secret prints as.
const Redacted = "<secret>"

// Secret is a sensitive string. The zero value is empty.
type Secret struct {
	value  string
	inline bool   // written literally in a config file
	source string // "env FOO", "file /run/x", "inline": never the value
}

// New returns a Secret holding v, with a description of where it came from
// (shown in errors instead of the value).
func New(v, source string) Secret { return Secret{value: v, source: source} }

// Value returns the secret's content. Call it only where the value is used.
func (s Secret) Value() string { return s.value }

// IsZero reports whether the secret is empty.
func (s Secret) IsZero() bool { return s.value == "" }

// Inline reports whether the value was written literally in a config file.
func (s Secret) Inline() bool { return s.inline }

// Source describes where the secret came from without revealing it.
func (s Secret) Source() string { return s.source }

// File returns the file the secret was read from, or "".
func (s Secret) File() string {
	f, _ := strings.CutPrefix(s.source, "file ")
	if f == s.source {
		return ""
	}
	return f
}

// String implements fmt.Stringer.
func (s Secret) String() string { return Redacted }

// GoString implements fmt.GoStringer, so %#v is redacted too.
func (s Secret) GoString() string { return Redacted }

// Format implements fmt.Formatter: every verb prints "<secret>".
func (s Secret) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(Redacted)) }

// LogValue implements slog.LogValuer.
func (s Secret) LogValue() slog.Value { return slog.StringValue(Redacted) }

// MarshalJSON implements json.Marshaler: "<secret>", or "" when unset.
func (s Secret) MarshalJSON() ([]byte, error) {
	if s.IsZero() {
		return []byte(`""`), nil
	}
	return []byte(`"` + Redacted + `"`), nil
}

// MarshalYAML implements yaml.Marshaler: "<secret>" with a comment saying
// where the value came from (never the value), or "" when unset.
func (s Secret) MarshalYAML() (any, error) {
	if s.IsZero() {
		return "", nil
	}
	n := &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: Redacted}
	if s.source != "" {
		n.LineComment = "from " + s.source
	}
	return n, nil
}

var envRef = regexp.MustCompile(`^\$\{([A-Za-z_][A-Za-z0-9_]*)\}$`)

// UnmarshalYAML reads "${NAME}" from the environment variable NAME (an unset
// or empty variable is an error) and anything else as an inline secret.
func (s *Secret) UnmarshalYAML(n *yaml.Node) error {
	var raw string
	if err := n.Decode(&raw); err != nil {
		return fmt.Errorf("line %d: a secret must be a string such as \"${ENV_VAR}\"", n.Line)
	}
	v, err := FromString(raw, os.LookupEnv)
	if err != nil {
		return fmt.Errorf("line %d: %w", n.Line, err)
	}
	*s = v
	return nil
}

// FromString interprets raw as a config value: "${NAME}" is looked up with
// lookup; any other non-empty text is an inline secret.
func FromString(raw string, lookup func(string) (string, bool)) (Secret, error) {
	if m := envRef.FindStringSubmatch(raw); m != nil {
		v, ok := lookup(m[1])
		if !ok || v == "" {
			return Secret{}, fmt.Errorf("environment variable %s is not set; export it or use the *_file form", m[1])
		}
		return Secret{value: v, source: "env " + m[1]}, nil
	}
	if strings.Contains(raw, "${") {
		return Secret{}, errors.New(`a secret may reference one whole environment variable, written "${NAME}"`)
	}
	if raw == "" {
		return Secret{}, nil
	}
	return Secret{value: raw, inline: true, source: "inline"}, nil
}

// FromFile reads a secret from path, trimming one trailing newline.
func FromFile(path string) (Secret, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Secret{}, fmt.Errorf("read secret file: %w", err)
	}
	v := strings.TrimRight(string(b), "\r\n")
	if v == "" {
		return Secret{}, fmt.Errorf("secret file %s is empty", path)
	}
	return Secret{value: v, source: "file " + path}, nil
}

// Resolve combines a field and its *_file variant (name is the field's YAML
// key, for messages): at most one may be set; the file is read when given.
func Resolve(name string, inline Secret, file string) (Secret, error) {
	switch {
	case !inline.IsZero() && file != "":
		return Secret{}, fmt.Errorf("%s and %s_file are both set; keep one", name, name)
	case file != "":
		s, err := FromFile(file)
		if err != nil {
			return Secret{}, fmt.Errorf("%s_file: %w", name, err)
		}
		return s, nil
	default:
		return inline, nil
	}
}

// CheckInline returns an error naming field when s was written inline and
// inline secrets are not allowed.
func CheckInline(field string, s Secret, allowInline bool) error {
	if s.inline && !allowInline {
		return fmt.Errorf("%s: secret written inline in the config; use \"${ENV_VAR}\" or %s_file, or set allow_inline_secrets: true", field, field)
	}
	return nil
}
