package dashboards

import (
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// clusterMetrics returns the metrics of the table under "Watching it" in
// docs/scaling.md: what an operator of a cluster is told to watch.
func clusterMetrics(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile("../docs/scaling.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(b), "\n## Watching it\n")
	if !ok {
		t.Fatal(`docs/scaling.md has no "## Watching it" section`)
	}
	section, _, _ = strings.Cut(section, "\n## ")
	var names []string
	for _, line := range strings.Split(section, "\n") {
		name, _, _ := strings.Cut(line, " | ") // the table's first column
		if !strings.HasPrefix(name, "| `vigil_") {
			continue
		}
		for _, m := range regexp.MustCompile("`(vigil_[a-z_]+)`").FindAllStringSubmatch(name, -1) {
			names = append(names, m[1])
		}
	}
	if len(names) < 5 {
		t.Fatalf("docs/scaling.md's Watching it lists %v; expected the cluster metrics", names)
	}
	return names
}

// TestHealthShowsClusterMetrics checks that the health dashboard shows
// every metric docs/scaling.md tells a cluster's operator to watch; that
// panels on vigil_cluster_* metrics, which a single instance does not
// export, sit in a collapsed row (Grafana runs no query of a closed row)
// and say what an empty result means instead of "No data"; and that the
// metrics a single instance exports too (the rebuild's) are also shown
// outside that row.
func TestHealthShowsClusterMetrics(t *testing.T) {
	var health dashboardJSON
	for _, d := range loadAll(t) {
		if d.file == "vigil-health.json" {
			health = d
		}
	}
	inRow := map[string]bool{}   // metric -> queried in a collapsed row
	outside := map[string]bool{} // metric -> queried in an open row
	for _, r := range health.Panels {
		check := func(p panelJSON, collapsed bool) {
			for _, tg := range p.Targets {
				for _, name := range MetricNames(tg.Expr) {
					if collapsed {
						inRow[name] = true
						continue
					}
					outside[name] = true
					if strings.HasPrefix(name, "vigil_cluster_") {
						t.Errorf("panel %q queries %s outside a collapsed row: a single instance, which lacks it, would show No data", p.Title, name)
					}
				}
			}
			if collapsed && p.FieldConfig.Defaults.NoValue == "" && slices.ContainsFunc(p.Targets, func(tg targetJSON) bool {
				return strings.Contains(tg.Expr, "vigil_cluster_")
			}) {
				t.Errorf("cluster panel %q has no noValue text: opened on a single instance it would say only No data", p.Title)
			}
		}
		check(r, false)
		for _, p := range r.Panels {
			check(p, r.Collapsed)
		}
	}
	for _, name := range clusterMetrics(t) {
		if !inRow[name] {
			t.Errorf("docs/scaling.md tells operators to watch %s, but no panel of the health dashboard's cluster row shows it", name)
		}
		if !strings.HasPrefix(name, "vigil_cluster_") && !outside[name] {
			t.Errorf("%s is exported by single instances too, but only the collapsed cluster row shows it", name)
		}
	}
}
