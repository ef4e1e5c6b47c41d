package rules

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/vigil-sec/vigil/detect"
	"github.com/vigil-sec/vigil/detect/ruletest"
)

// TestDefaultRulesLoad checks what operators and their tools read from every
// rule of the default set: where it is defined, a description and summary for
// the alert, references a SIEM can map (AppSensor detection points, ATT&CK
// techniques for every security rule), and the categories that
// docs/notifications.md tells operators to route on. Which rules the set has
// is up to the rule tests in tests/, which every rule must appear in.
func TestDefaultRulesLoad(t *testing.T) {
	rs, err := Load("")
	if err != nil {
		t.Fatal(err)
	}
	if len(rs) == 0 {
		t.Fatal("the embedded default set has no rules")
	}
	categories := map[string]bool{}
	for _, r := range rs {
		categories[r.Category] = true
		for _, problem := range packProblems(r) {
			t.Errorf("rule %s (%s:%d): %s", r.Name, r.File, r.Line, problem)
		}
	}
	for _, c := range []string{"brute_force", "credential_stuffing", "account_takeover", "availability"} {
		if !categories[c] {
			t.Errorf("no default rule has category %s, which docs/notifications.md names for routes", c)
		}
	}
}

// appSensorPoints holds the number of detection points in each category of
// the OWASP AppSensor guide (RE1 to RE8, AE1 to AE13, ...).
var appSensorPoints = map[string]int{"RE": 8, "AE": 13, "SE": 6, "ACE": 4, "IE": 7, "EE": 2, "CIE": 4,
	"FIO": 2, "HT": 3, "UT": 4, "STE": 3, "RP": 4}

var (
	appSensorRE = regexp.MustCompile(`^([A-Z]+)([1-9][0-9]?)$`)
	attackRE    = regexp.MustCompile(`^T[0-9]{4}(\.[0-9]{3})?$`)
)

// packProblems lists what a rule of the default set lacks.
func packProblems(r *detect.Rule) []string {
	var out []string
	if r.File == "" || r.Line == 0 {
		out = append(out, "no file and line")
	}
	if strings.TrimSpace(r.Description) == "" || strings.TrimSpace(r.Summary) == "" {
		out = append(out, "no description or summary for its alerts")
	}
	for _, p := range r.AppSensor {
		if !isAppSensorPoint(p) {
			out = append(out, fmt.Sprintf("appsensor %q is not an OWASP AppSensor detection point", p))
		}
	}
	for _, a := range r.Attack {
		if !attackRE.MatchString(a) {
			out = append(out, fmt.Sprintf("attack %q is not a MITRE ATT&CK technique id (T1110 or T1110.001)", a))
		}
	}
	if r.Category != "availability" && len(r.Attack) == 0 {
		out = append(out, "a security rule names no MITRE ATT&CK technique (attack:)")
	}
	return out
}

func isAppSensorPoint(p string) bool {
	m := appSensorRE.FindStringSubmatch(p)
	if m == nil {
		return false
	}
	n, err := strconv.Atoi(m[2])
	return err == nil && n <= appSensorPoints[m[1]]
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
