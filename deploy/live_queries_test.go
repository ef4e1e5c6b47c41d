package deploy

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vigil-sec/vigil/dashboards"
	"github.com/vigil-sec/vigil/internal/testkit"
)

// promResponse is the envelope of Prometheus's HTTP API.
type promResponse struct {
	Status    string          `json:"status"`
	ErrorType string          `json:"errorType"`
	Error     string          `json:"error"`
	Data      json.RawMessage `json:"data"`
}

// api GETs a Prometheus API path and decodes its data into v.
func (s *stack) api(path string, params url.Values, v any) error {
	status, body, err := httpGet(s.prom+path+"?"+params.Encode(), "")
	if err != nil {
		return err
	}
	var r promResponse
	if err := json.Unmarshal(body, &r); err != nil {
		return fmt.Errorf("HTTP %d, undecodable body: %w", status, err)
	}
	if r.Status != "success" {
		return fmt.Errorf("%s: %s", r.ErrorType, r.Error)
	}
	return json.Unmarshal(r.Data, v)
}

// series evaluates an instant query now and returns how many series (or
// scalars) it returned.
func (s *stack) series(query string) (int, error) {
	var data struct {
		ResultType string          `json:"resultType"`
		Result     json.RawMessage `json:"result"`
	}
	if err := s.api("/api/v1/query", url.Values{"query": {query}}, &data); err != nil {
		return 0, err
	}
	if data.ResultType == "scalar" || data.ResultType == "string" {
		return 1, nil
	}
	var result []json.RawMessage
	err := json.Unmarshal(data.Result, &result)
	return len(result), err
}

func (s *stack) waitSeries(t *testing.T, query, what string) {
	t.Helper()
	testkit.WaitFor(t, 30*time.Second, what+" ("+query+")", func() error {
		n, err := s.series(query)
		if err != nil {
			return err
		}
		if n == 0 {
			return errors.New("no series yet")
		}
		return nil
	})
}

// panelQuery is one target of one panel, with its variables substituted.
type panelQuery struct {
	where, expr string
	// needData says whether the query must return a series; otherwise it
	// must only evaluate without error.
	needData bool
}

// dashboardPanel is a panel of a dashboard file; a collapsed row holds its
// panels.
type dashboardPanel struct {
	Title   string `json:"title"`
	Targets []struct {
		RefID string `json:"refId"`
		Expr  string `json:"expr"`
	} `json:"targets"`
	Panels []dashboardPanel `json:"panels"`
}

// dashboardFile is the part of a dashboard JSON file the live test needs.
type dashboardFile struct {
	Title      string           `json:"title"`
	Panels     []dashboardPanel `json:"panels"`
	Templating struct {
		List []struct {
			Name  string `json:"name"`
			Type  string `json:"type"`
			Query string `json:"query"`
		} `json:"list"`
	} `json:"templating"`
}

// Grafana's built-in interval variables, as it would set them for a short
// time range on a Prometheus scraping every second.
var builtins = map[string]string{"__rate_interval": "1m", "__interval": "1m", "__range": "5m"}

var (
	varRef      = regexp.MustCompile(`\$\{?(\w+)\}?`)
	labelValues = regexp.MustCompile(`^label_values\((.+),\s*(\w+)\)$`)
)

// clusterOnly says whether a metric is exported only by cluster members
// (cluster.enabled).
func clusterOnly(metric string) bool { return strings.HasPrefix(metric, "vigil_cluster_") }

// checkPanels evaluates the panel queries of every committed dashboard.
// On a single instance every query must return data except those on
// cluster-only metrics, which must only evaluate; on a cluster (s.cluster)
// only the queries on cluster-only metrics are checked, and they must
// return data: the single instance's test covers the rest, with the attack
// traffic and edge cases they need.
func (s *stack) checkPanels(t *testing.T) {
	files, err := filepath.Glob("../dashboards/json/*.json")
	if err != nil || len(files) < 3 {
		t.Fatalf("dashboards: %v %v", files, err)
	}
	var queries []panelQuery
	for _, f := range files {
		queries = append(queries, s.dashboardQueries(t, f)...)
	}
	failures := map[panelQuery]error{}
	for _, q := range queries {
		failures[q] = errors.New("not evaluated")
	}
	// Some series appear only once Vigil has processed the attacks and
	// Prometheus has scraped twice; retry until every query has data.
	deadline := time.Now().Add(30 * time.Second)
	for len(failures) > 0 && time.Now().Before(deadline) {
		for q := range failures {
			n, err := s.series(q.expr)
			switch {
			case err != nil:
				failures[q] = err
			case n == 0 && q.needData:
				failures[q] = errors.New("no series")
			default:
				delete(failures, q)
			}
		}
		if len(failures) > 0 {
			time.Sleep(500 * time.Millisecond)
		}
	}
	for q, err := range failures {
		t.Errorf("%s: %v\n    %s", q.where, err, q.expr)
	}
	t.Logf("%d panel queries evaluated, %d failed", len(queries), len(failures))
	if len(queries) == 0 {
		t.Error("no panel query to check")
	}
}

// dashboardQueries reads a dashboard file and returns the panel queries
// checkPanels checks, panels of collapsed rows included, with the
// variables substituted; it resolves the variables through Prometheus
// (label_values queries must return values) when it returns any query.
func (s *stack) dashboardQueries(t *testing.T, path string) []panelQuery {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var d dashboardFile
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	var out []panelQuery
	var walk func([]dashboardPanel)
	walk = func(ps []dashboardPanel) {
		for _, p := range ps {
			for _, tg := range p.Targets {
				cluster := slices.ContainsFunc(dashboards.MetricNames(tg.Expr), clusterOnly)
				if s.cluster && !cluster {
					continue
				}
				out = append(out, panelQuery{
					where:    fmt.Sprintf("%s / %s / %s", d.Title, p.Title, tg.RefID),
					expr:     tg.Expr,
					needData: s.cluster || !cluster,
				})
			}
			walk(p.Panels)
		}
	}
	walk(d.Panels)
	if len(out) == 0 {
		return nil
	}
	values := map[string]string{}
	for k, v := range builtins {
		values[k] = v
	}
	for _, v := range d.Templating.List {
		if v.Type != "query" {
			continue
		}
		values[v.Name] = s.resolveVariable(t, d.Title, v.Name, substitute(v.Query, values))
	}
	for i := range out {
		out[i].expr = substitute(out[i].expr, values)
	}
	return out
}

// resolveVariable runs a label_values(selector, label) variable query and
// returns its values as Grafana formats a multi-value selection for a
// Prometheus regex matcher: (a|b|c), each value regex-escaped and its
// backslashes doubled for the PromQL string literal.
func (s *stack) resolveVariable(t *testing.T, dashboard, name, query string) string {
	t.Helper()
	m := labelValues.FindStringSubmatch(query)
	if m == nil {
		t.Fatalf("%s: variable %s: unsupported query %q", dashboard, name, query)
	}
	var vals []string
	var err error
	for deadline := time.Now().Add(20 * time.Second); len(vals) == 0 && time.Now().Before(deadline); {
		if err = s.api("/api/v1/label/"+m[2]+"/values", url.Values{"match[]": {m[1]}}, &vals); err != nil || len(vals) == 0 {
			time.Sleep(500 * time.Millisecond)
		}
	}
	if len(vals) == 0 {
		// Go on with "All", so the panels are still checked.
		t.Errorf("%s: variable %s: %s returned no values (%v)", dashboard, name, query, err)
		return ".*"
	}
	quoted := make([]string, len(vals))
	for i, v := range vals {
		quoted[i] = strings.ReplaceAll(regexp.QuoteMeta(v), `\`, `\\`)
	}
	return "(" + strings.Join(quoted, "|") + ")"
}

// substitute replaces $name and ${name} with their values; an unknown name
// is left as it is, so Prometheus rejects the query and the test names it.
func substitute(expr string, values map[string]string) string {
	return varRef.ReplaceAllStringFunc(expr, func(ref string) string {
		name := varRef.FindStringSubmatch(ref)[1]
		if v, ok := values[name]; ok {
			return v
		}
		return ref
	})
}

// checkRules waits until Prometheus has evaluated every alerting rule of
// deploy/prometheus on Vigil's data without error, and checks that every
// metric a rule uses exists (the cluster's only on a cluster).
func (s *stack) checkRules(t *testing.T) {
	type rule struct {
		Name           string    `json:"name"`
		Query          string    `json:"query"`
		Health         string    `json:"health"`
		LastError      string    `json:"lastError"`
		LastEvaluation time.Time `json:"lastEvaluation"`
	}
	var data struct {
		Groups []struct {
			Rules []rule `json:"rules"`
		} `json:"groups"`
	}
	var rules []rule
	testkit.WaitFor(t, 30*time.Second, "every alerting rule evaluated", func() error {
		if err := s.api("/api/v1/rules", url.Values{}, &data); err != nil {
			return err
		}
		rules = rules[:0]
		for _, g := range data.Groups {
			for _, r := range g.Rules {
				if !r.LastEvaluation.After(s.started) {
					return fmt.Errorf("rule %s not evaluated yet", r.Name)
				}
				rules = append(rules, r)
			}
		}
		if len(rules) == 0 {
			return errors.New("no rules loaded yet")
		}
		return nil
	})
	for _, r := range rules {
		if r.Health != "ok" {
			t.Errorf("rule %s: health %q: %s", r.Name, r.Health, r.LastError)
		}
		for _, metric := range dashboards.MetricNames(r.Query) {
			if !s.cluster && clusterOnly(metric) {
				continue // a single instance has none: the cluster test checks them
			}
			if n, err := s.series(`count({__name__="` + metric + `"})`); n == 0 || err != nil {
				t.Errorf("rule %s uses %s, which Vigil does not export (%v)", r.Name, metric, err)
			}
		}
	}
}
