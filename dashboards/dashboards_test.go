package dashboards

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// TestCommittedJSONIsGenerated fails when the JSON files under json/ differ
// from what the generator produces, or when json/ holds a file it would not
// write.
func TestCommittedJSONIsGenerated(t *testing.T) {
	files, err := Render()
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range All() {
		t.Run(s.File, func(t *testing.T) {
			committed, err := os.ReadFile(filepath.Join("json", s.File))
			if err != nil {
				t.Fatalf("%v; run `go generate ./dashboards`", err)
			}
			if !bytes.Equal(committed, files[s.File]) {
				t.Errorf("json/%s differs from the generator's output; run `go generate ./dashboards` and commit the result\n%s",
					s.File, firstDifference(committed, files[s.File]))
			}
		})
	}
	entries, err := os.ReadDir("json")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if _, ok := files[e.Name()]; !ok {
			t.Errorf("json/%s is not produced by the generator; delete it or add it to All()", e.Name())
		}
	}
}

// TestGeneratorIsDeterministic guards the golden test against map ordering
// or other nondeterminism in rendering.
func TestGeneratorIsDeterministic(t *testing.T) {
	a, err := Render()
	if err != nil {
		t.Fatal(err)
	}
	b, err := Render()
	if err != nil {
		t.Fatal(err)
	}
	for name := range a {
		if !bytes.Equal(a[name], b[name]) {
			t.Errorf("%s renders differently on a second run", name)
		}
	}
}

// firstDifference describes the first line where two renderings differ.
func firstDifference(got, want []byte) string {
	g, w := strings.Split(string(got), "\n"), strings.Split(string(want), "\n")
	for i := range max(len(g), len(w)) {
		var gl, wl string
		if i < len(g) {
			gl = g[i]
		}
		if i < len(w) {
			wl = w[i]
		}
		if gl != wl {
			return "line " + strconv.Itoa(i+1) + ":\n  committed: " + gl + "\n  generated: " + wl
		}
	}
	return "files differ only in length"
}

// grafanaBuiltins are the variables Grafana defines itself.
var grafanaBuiltins = []string{"__rate_interval", "__range", "__interval"}

var variableRef = regexp.MustCompile(`\$\{?(\w+)\}?`)

// TestDashboardStructure checks what Grafana and the issue require of every
// dashboard: a unique uid, a Prometheus datasource variable that every query
// uses, unique panel ids, a grid that fits, queries on every panel, and no
// reference to an undefined variable.
func TestDashboardStructure(t *testing.T) {
	uids := map[string]string{}
	for _, d := range loadAll(t) {
		t.Run(d.file, func(t *testing.T) {
			if d.UID == "" || uids[d.UID] != "" {
				t.Errorf("uid %q is empty or already used by %s", d.UID, uids[d.UID])
			}
			uids[d.UID] = d.file
			if !slices.Contains(d.Tags, Tag) {
				t.Errorf("tags %v lack %q", d.Tags, Tag)
			}
			vars := d.variables()
			if vars["datasource"].Type != "datasource" || vars["datasource"].Query != "prometheus" {
				t.Errorf("no Prometheus datasource variable: %+v", vars["datasource"])
			}
			ids := map[int]bool{}
			for _, p := range d.allPanels() {
				checkPanel(t, p, vars, ids)
			}
		})
	}
}

func checkPanel(t *testing.T, p panelJSON, vars map[string]variableJSON, ids map[int]bool) {
	t.Helper()
	if ids[p.ID] {
		t.Errorf("panel %q: id %d used twice", p.Title, p.ID)
	}
	ids[p.ID] = true
	if p.GridPos.X+p.GridPos.W > 24 || p.GridPos.W <= 0 || p.GridPos.H <= 0 {
		t.Errorf("panel %q: grid position %+v does not fit 24 columns", p.Title, p.GridPos)
	}
	if p.Type == "row" {
		return
	}
	if p.Datasource.UID != "${datasource}" || len(p.Targets) == 0 {
		t.Errorf("panel %q: datasource %+v, %d targets; want ${datasource} and at least one", p.Title, p.Datasource, len(p.Targets))
	}
	for _, tg := range p.Targets {
		if tg.Datasource.UID != "${datasource}" {
			t.Errorf("panel %q target %s: datasource %+v, want ${datasource}", p.Title, tg.RefID, tg.Datasource)
		}
		for _, m := range variableRef.FindAllStringSubmatch(tg.Expr, -1) {
			if _, ok := vars[m[1]]; !ok && !slices.Contains(grafanaBuiltins, m[1]) {
				t.Errorf("panel %q: expression uses undefined variable $%s: %s", p.Title, m[1], tg.Expr)
			}
		}
	}
}

// TestServiceVariable checks that the traffic and security dashboards can be
// narrowed to a service, and that every query there honours the choice.
func TestServiceVariable(t *testing.T) {
	tests := []struct {
		file string
		want bool
	}{
		{"vigil-api-traffic.json", true},
		{"vigil-security.json", true},
		{"vigil-health.json", false},
	}
	byFile := map[string]dashboardJSON{}
	for _, d := range loadAll(t) {
		byFile[d.file] = d
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			d := byFile[tt.file]
			_, has := d.variables()["service"]
			if has != tt.want {
				t.Fatalf("service variable present = %v, want %v", has, tt.want)
			}
			if !has {
				return
			}
			for _, e := range d.exprs() {
				if strings.Contains(e.expr, "vigil_http_") && !strings.Contains(e.expr, `service=~"$service"`) {
					t.Errorf("panel %q ignores $service: %s", e.panel, e.expr)
				}
			}
		})
	}
}

// TestREADMEDocumentsEveryMetric keeps README.md's metric list in step with
// the queries: every metric a panel uses is named there.
func TestREADMEDocumentsEveryMetric(t *testing.T) {
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range loadAll(t) {
		for _, e := range d.exprs() {
			for _, name := range MetricNames(e.expr) {
				if !bytes.Contains(readme, []byte("`"+name+"`")) {
					t.Errorf("%s panel %q uses %s, which README.md does not list", d.file, e.panel, name)
				}
			}
		}
	}
}

// TestMetricNames pins the small PromQL scanner the README test relies on.
func TestMetricNames(t *testing.T) {
	tests := []struct {
		name, expr string
		want       []string
	}{
		{"rate by", `sum by (service) (rate(vigil_http_requests_total{service=~"$service",code=~"5.."}[$__rate_interval]))`, []string{"vigil_http_requests_total"}},
		{"histogram bucket", `histogram_quantile(0.95, sum by (le) (rate(vigil_http_request_duration_seconds_bucket{a="b"}[1m])))`, []string{"vigil_http_request_duration_seconds"}},
		{"binary and time", `time() - min(process_start_time_seconds{job=~"x"})`, []string{"process_start_time_seconds"}},
		{"two metrics", `max by (instance) (a_bytes / b_bytes)`, []string{"a_bytes", "b_bytes"}},
		{"label in string", `x{quantile="1",name="y_total"}`, []string{"x"}},
		{"set operators", "a > 0\nand\nb == 0 or c unless d", []string{"a", "b", "c", "d"}},
		{"function with space", `sum (rate(x[5m])) > bool 1`, []string{"x"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := MetricNames(tt.expr); !slices.Equal(got, tt.want) {
				t.Errorf("MetricNames(%s) = %v, want %v", tt.expr, got, tt.want)
			}
		})
	}
}
