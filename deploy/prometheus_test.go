package deploy

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

const alertsFile = "prometheus/vigil-alerts.yml"

// TestPromtool runs promtool over the Prometheus files of the kit: the rules
// must load, their unit tests pass, and the configurations parse.
func TestPromtool(t *testing.T) {
	t.Parallel()
	promtool := needTool(t, "promtool")
	tests, err := filepath.Glob("prometheus/tests/*.test.yml")
	if err != nil || len(tests) == 0 {
		t.Fatalf("no rule tests in prometheus/tests (err %v)", err)
	}
	cases := []struct {
		name string
		args []string
	}{
		{"check rules", []string{"check", "rules", alertsFile}},
		{"test rules", append([]string{"test", "rules"}, tests...)},
		{"check example config", []string{"check", "config", "prometheus/prometheus.yml"}},
		// The compose file names the rules by their path inside the container.
		{"check compose config", []string{"check", "config", "--syntax-only", "compose/prometheus.yml"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			out, err := run(t, time.Minute, ".", nil, promtool, tc.args...)
			if err != nil {
				t.Fatalf("promtool %s: %v\n%s", strings.Join(tc.args, " "), err, out)
			}
		})
	}
}

type ruleFile struct {
	Groups []struct {
		Rules []struct {
			Alert string `yaml:"alert"`
			Expr  string `yaml:"expr"`
		} `yaml:"rules"`
	} `yaml:"groups"`
}

type ruleTestFile struct {
	Tests []struct {
		AlertRuleTest []struct {
			Alertname string `yaml:"alertname"`
			ExpAlerts []any  `yaml:"exp_alerts"`
		} `yaml:"alert_rule_test"`
	} `yaml:"tests"`
}

// TestEveryAlertIsTested requires, for every alert, a promtool test where it
// fires and one where it must not, so no alert ships untested.
func TestEveryAlertIsTested(t *testing.T) {
	var rules ruleFile
	readYAML(t, alertsFile, &rules)
	fires, silent := map[string]bool{}, map[string]bool{}
	files, _ := filepath.Glob("prometheus/tests/*.test.yml")
	for _, f := range files {
		var rt ruleTestFile
		readYAML(t, f, &rt)
		for _, tc := range rt.Tests {
			for _, a := range tc.AlertRuleTest {
				if len(a.ExpAlerts) > 0 {
					fires[a.Alertname] = true
				} else {
					silent[a.Alertname] = true
				}
			}
		}
	}
	names := alertNames(rules)
	if len(names) < 6 {
		t.Fatalf("only %d alerts in %s", len(names), alertsFile)
	}
	for _, name := range names {
		if !fires[name] || !silent[name] {
			t.Errorf("alert %s: a test where it fires = %v, a test where it stays silent = %v; want both", name, fires[name], silent[name])
		}
	}
}

// TestRequiredAlerts checks that the health alerts the issue asks for exist.
func TestRequiredAlerts(t *testing.T) {
	var rules ruleFile
	readYAML(t, alertsFile, &rules)
	names := alertNames(rules)
	for _, want := range []string{
		"VigilIngestStalled", "VigilRejectShareHigh", "VigilNotificationsFailing",
		"VigilOutboxGrowing", "VigilStateStoreNearFull", "VigilNATSDisconnected",
	} {
		if !slices.Contains(names, want) {
			t.Errorf("alert %s missing from %s", want, alertsFile)
		}
	}
}

func alertNames(rules ruleFile) []string {
	var names []string
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			if r.Alert != "" {
				names = append(names, r.Alert)
			}
		}
	}
	return names
}

func readYAML(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}
