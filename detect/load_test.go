package detect

import (
	"strings"
	"testing"
	"testing/fstest"
)

const validRule = `rules:
  - name: ok_rule
    description: d
    severity: low
    category: test
    match: status == 401
    threshold: {count: 3, window: 1m}
`

func TestParseRulesErrors(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want []string // substrings of the error
	}{
		{"unknown key", "rules:\n  - name: a\n    severty: high\n", []string{"t.yaml:3:", "severty"}},
		{"unknown top-level key", "rule:\n  - name: a\n", []string{"t.yaml:1:", "rule"}},
		{"bad yaml", "rules: [\n", []string{"t.yaml:"}},
		// The parser reports this one on a zero-based line; the message names
		// the line an editor shows, where the unclosed list starts.
		{"unknown key in a condition", strings.Replace(validRule, "threshold: {count: 3, window: 1m}", "when: {window: 1m, count: 3, sahre: 0.9}", 1), []string{"t.yaml:7:", `unknown key "sahre"`, "share"}},
		{"unknown key in a check", strings.Replace(validRule, "threshold: {count: 3, window: 1m}", "when:\n      - {window: 1m, count: {min: 3, mx: 9}}", 1), []string{"t.yaml:8:", `unknown key "mx"`}},
		{"unknown key in a baseline", strings.Replace(validRule, "threshold: {count: 3, window: 1m}", "when: [{window: 1m, count: {baseline: {factr: 3}}}]", 1), []string{"t.yaml:7:", `unknown key "factr"`, "factor"}},
		{"unclosed list", "rules:\n  - name: a\n    severity: high\n    match: [x\n    z: 1\n", []string{"t.yaml:4:", "did not find expected ',' or ']'"}},
		{"bad duration", strings.Replace(validRule, "1m", "300", 1), []string{"t.yaml:7:", "invalid duration"}},
		{"expr compile error", strings.Replace(validRule, "status == 401", "status == ", 1), []string{"t.yaml:2:", `rule "ok_rule"`, "match"}},
		{"expr unknown field", strings.Replace(validRule, "status == 401", "statuss == 401", 1), []string{`rule "ok_rule"`, "statuss"}},
		{"expr not boolean", strings.Replace(validRule, "status == 401", "status", 1), []string{"match", "bool"}},
		{"bad severity", strings.Replace(validRule, "low", "urgent", 1), []string{"severity", "critical"}},
		{"no kind", strings.Replace(validRule, "    threshold: {count: 3, window: 1m}\n", "", 1), []string{"exactly one"}},
		{"two kinds", validRule + "    ratio: {ratio: 0.5, min_events: 3, window: 1m}\n", []string{"exactly one", "found 2"}},
		{"zero count", strings.Replace(validRule, "count: 3", "count: 0", 1), []string{"threshold.count"}},
		{"tiny window", strings.Replace(validRule, "1m", "10ms", 1), []string{"threshold.window"}},
		{"bad group_by", strings.Replace(validRule, "    match", "    group_by: [ip]\n    match", 1), []string{"group_by", `"ip"`}},
		{"bad name", strings.Replace(validRule, "ok_rule", "Bad Name", 1), []string{"name"}},
		{"bad template", validRule + "    summary: '{{ .Nope'\n", []string{"summary template"}},
		{"template field missing", validRule + "    summary: '{{ .Nope }}'\n", []string{"summary template"}},
		{"template label the rule lacks", strings.Replace(validRule, "    match", "    group_by: [user]\n    match", 1) + "    summary: '{{ .Labels.usr }}'\n", []string{"summary template", ".Labels", `"usr"`, "group_by and event_labels fields (user)"}},
		{"ratio out of range", strings.Replace(validRule, "threshold: {count: 3, window: 1m}", "ratio: {ratio: 1.5, min_events: 3, window: 1m}", 1), []string{"ratio.ratio"}},
		{"spike baseline shorter than window", strings.Replace(validRule, "threshold: {count: 3, window: 1m}", "spike: {window: 5m, baseline: 1m, factor: 3, min_events: 3}", 1), []string{"spike.baseline"}},
		{"sequence without then", strings.Replace(validRule, "threshold: {count: 3, window: 1m}", "sequence: {first: 'true', count: 3, window: 1m}", 1), []string{"then"}},
		{"sequence bad then", strings.Replace(validRule, "threshold: {count: 3, window: 1m}", "sequence: {first: 'true', then: 'x ==', count: 3, window: 1m}", 1), []string{"sequence.then"}},
		{"distinct bad field", strings.Replace(validRule, "threshold: {count: 3, window: 1m}", "distinct: {field: ts, count: 3, window: 1m}", 1), []string{"distinct.field"}},
		{"duplicate key", validRule + "    severity: high\n", []string{"t.yaml:"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseRules("t.yaml", []byte(tc.src))
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

func TestParseRulesValid(t *testing.T) {
	rs, err := ParseRules("t.yaml", []byte(validRule))
	if err != nil {
		t.Fatal(err)
	}
	if len(rs) != 1 || rs[0].Line != 2 || rs[0].File != "t.yaml" || rs[0].Kind() != KindThreshold {
		t.Fatalf("rule = %+v", rs[0])
	}
}

func TestLoadFS(t *testing.T) {
	other := strings.Replace(validRule, "ok_rule", "other_rule", 1)
	tests := []struct {
		name  string
		files map[string]string
		rules int
		want  string
	}{
		{"two files", map[string]string{"a.yaml": validRule, "b.yml": other, "README.md": "x"}, 2, ""},
		{"duplicate across files", map[string]string{"a.yaml": validRule, "b.yaml": validRule}, 0, "dir/b.yaml:2: rule \"ok_rule\" is already defined at dir/a.yaml:2"},
		{"empty dir", map[string]string{"README.md": "x"}, 0, "no rules"},
		{"error names the file", map[string]string{"a.yaml": validRule, "bad.yaml": "rules: [\n"}, 0, "dir/bad.yaml"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fsys := fstest.MapFS{}
			for n, s := range tc.files {
				fsys[n] = &fstest.MapFile{Data: []byte(s)}
			}
			rs, err := LoadFS(fsys, ".", "dir", nil)
			if tc.want != "" {
				if err == nil || !strings.Contains(err.Error(), tc.want) {
					t.Fatalf("err = %v, want %q", err, tc.want)
				}
				return
			}
			if err != nil || len(rs) != tc.rules {
				t.Fatalf("rules = %d, err = %v", len(rs), err)
			}
		})
	}
}

func TestConfig(t *testing.T) {
	tests := []struct {
		name string
		size string
		want ByteSize
		err  bool
	}{
		{"MiB", "256MiB", 256 << 20, false},
		{"GiB", "1GiB", 1 << 30, false},
		{"MB", "512MB", 512e6, false},
		{"plain", "67108864", 64 << 20, false},
		{"space", "64 MiB", 64 << 20, false},
		{"negative", "-1", 0, true},
		{"junk", "lots", 0, true},
		{"fraction", "1.5GiB", 0, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseByteSize(tc.size)
			if (err != nil) != tc.err || got != tc.want {
				t.Fatalf("ParseByteSize(%q) = %v, %v", tc.size, got, err)
			}
		})
	}
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatalf("default config invalid: %v", err)
	}
	bad := Config{StateMemory: 1 << 20, Lateness: -1}
	if err := bad.Validate(); err == nil || !strings.Contains(err.Error(), "state_memory") || !strings.Contains(err.Error(), "lateness") {
		t.Fatalf("Validate = %v", err)
	}
}
