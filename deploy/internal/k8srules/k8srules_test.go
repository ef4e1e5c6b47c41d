package k8srules

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

func TestRuleFiles(t *testing.T) {
	dir := t.TempDir()
	for _, name := range []string{"b.yaml", "a.yml", "c_test.yaml", "d.test.yml", "rules.go", "README.md"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte("x: 1\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(dir, "tests.yaml"), 0o700); err != nil {
		t.Fatal(err)
	}
	got, err := RuleFiles(dir)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"a.yml", "b.yaml"}; !slices.Equal(got, want) {
		t.Errorf("RuleFiles = %v, want %v", got, want)
	}
}

func TestRenderRoundTrips(t *testing.T) {
	tests := []struct {
		name    string
		files   map[string]string
		wantErr bool
	}{
		{"two files", map[string]string{"a.yaml": "rules:\n  - name: x\n    summary: '{{ .Value }}: a: b'\n", "b.yaml": "# comment\nrules: []\n"}, false},
		{"trailing spaces and no final newline", map[string]string{"a.yaml": "rules: []  \n# end"}, false},
		{"no rule files", map[string]string{"notes.txt": "x"}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			for name, content := range tt.files {
				if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			b, err := Render(dir, "vigil-rules")
			if (err != nil) != tt.wantErr {
				t.Fatalf("Render error = %v, wantErr %v", err, tt.wantErr)
			}
			if err != nil {
				return
			}
			if !strings.HasPrefix(string(b), "# Code generated") {
				t.Error("no generated-code header")
			}
			var cm struct {
				Kind     string `yaml:"kind"`
				Metadata struct{ Name string }
				Data     map[string]string `yaml:"data"`
			}
			if err := yaml.Unmarshal(b, &cm); err != nil {
				t.Fatal(err)
			}
			if cm.Kind != "ConfigMap" || cm.Metadata.Name != "vigil-rules" {
				t.Errorf("kind %q name %q", cm.Kind, cm.Metadata.Name)
			}
			for name, content := range tt.files {
				if strings.HasSuffix(name, ".yaml") && cm.Data[name] != content {
					t.Errorf("%s: got %q, want %q", name, cm.Data[name], content)
				}
			}
		})
	}
}
