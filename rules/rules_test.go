package rules

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vigil-sec/vigil/detect"
	"github.com/vigil-sec/vigil/detect/ruletest"
)

func TestDefaultRulesLoad(t *testing.T) {
	rs, err := Load("")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"brute_force_source_ip", "brute_force_user", "credential_stuffing", "distributed_brute_force",
		"success_after_failures", "admin_api_brute_force", "error_spike", "service_outage"}
	var got []string
	for _, r := range rs {
		got = append(got, r.Name)
		if r.File == "" || r.Line == 0 || r.Description == "" || r.Summary == "" {
			t.Errorf("rule %s lacks a location, description or summary", r.Name)
		}
	}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("rules = %v, want %v", got, want)
	}
}

func TestLoadDirErrors(t *testing.T) {
	dir := t.TempDir()
	bad := "rules:\n  - name: x\n    severity: high\n    category: c\n    match: status ==\n    threshold: {count: 1, window: 1m}\n"
	if err := os.WriteFile(filepath.Join(dir, "bad.yaml"), []byte(bad), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := Load(dir)
	if err == nil || !strings.Contains(err.Error(), "bad.yaml:2:") || !strings.Contains(err.Error(), `rule "x"`) {
		t.Fatalf("err = %v, want file:line and rule name", err)
	}
	if _, err := Load(filepath.Join(dir, "missing")); err == nil {
		t.Fatal("missing directory loaded")
	}
}

// TestRuleTests runs every rule test file in tests/ against the embedded set.
func TestRuleTests(t *testing.T) {
	rs, err := Load("")
	if err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob("tests/*.yaml")
	if len(files) == 0 {
		t.Fatal("no rule tests found")
	}
	tested := map[string]bool{}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			var out strings.Builder
			r := ruletest.Runner{Rules: rs, Out: &out, Load: func(l map[string]detect.ListSpec) ([]*detect.Rule, error) {
				return LoadWith("", l)
			}}
			passed, failed, err := r.RunFile(f)
			if err != nil {
				t.Fatal(err)
			}
			if failed > 0 || passed == 0 {
				t.Fatalf("%d passed, %d failed:\n%s", passed, failed, out.String())
			}
		})
		data, _ := os.ReadFile(f)
		for _, r := range rs {
			if strings.Contains(string(data), "rule: "+r.Name) {
				tested[r.Name] = true
			}
		}
	}
	for _, r := range rs {
		if !tested[r.Name] {
			t.Errorf("rule %s has no positive rule test", r.Name)
		}
	}
}
