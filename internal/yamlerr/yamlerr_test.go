package yamlerr

import (
	"bytes"
	"errors"
	"io"
	"testing"

	"go.yaml.in/yaml/v3"
)

// TestMessagesLine decodes broken documents and checks that each message
// names the line an editor shows for the problem.
func TestMessagesLine(t *testing.T) {
	cases := []struct {
		name string
		doc  string
		want string
	}{
		{"key at the wrong indent", "a:\n  b: 1\n c: 2\n", "line 3: did not find expected key"},
		{"stray list item in a mapping", "listen: x\nlog:\n  level: info\n - a\n", "line 4: did not find expected key"},
		{"unclosed flow sequence (reported where it opens)", "listen: x\ningest:\n  fetch_batch: [1\nlog:\n  level: info\n", "line 3: did not find expected ',' or ']'"},
		{"unclosed flow mapping", "a: 1\nb: {x: 1\nc: 2\n", "line 2: did not find expected ',' or '}'"},
		{"scanner error: tab indent", "listen: x\nlog:\n\tlevel: info\n", "line 3: found character that cannot start any token"},
		{"scanner error: mapping value in a plain scalar", "listen: x\n  bad: [\n", "line 2: mapping values are not allowed in this context"},
		{"decode error", "a: 1\nb: [x]\n", "line 2: cannot unmarshal !!seq into int"},
		{"duplicate key", "a: 1\n\na: 2\n", `line 3: mapping key "a" already defined at line 1`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var v map[string]int
			dec := yaml.NewDecoder(bytes.NewReader([]byte(tc.doc)))
			err := dec.Decode(&v)
			if err == nil || errors.Is(err, io.EOF) {
				t.Fatalf("decoding %q succeeded", tc.doc)
			}
			msgs := Messages(err)
			if len(msgs) != 1 || msgs[0] != tc.want {
				t.Fatalf("Messages = %q, want [%q]", msgs, tc.want)
			}
		})
	}
}
