package dashboards

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
)

// dashboardJSON is the part of a rendered dashboard the tests inspect. It is
// read from the committed files, so the tests check what Grafana will load.
type dashboardJSON struct {
	file       string
	UID        string      `json:"uid"`
	Tags       []string    `json:"tags"`
	Panels     []panelJSON `json:"panels"`
	Templating struct {
		List []variableJSON `json:"list"`
	} `json:"templating"`
}

type panelJSON struct {
	ID          int          `json:"id"`
	Type        string       `json:"type"`
	Title       string       `json:"title"`
	Datasource  dsJSON       `json:"datasource"`
	GridPos     gridPos      `json:"gridPos"`
	Targets     []targetJSON `json:"targets"`
	FieldConfig struct {
		Defaults struct {
			NoValue string `json:"noValue"`
		} `json:"defaults"`
	} `json:"fieldConfig"`
	// A collapsed row holds its panels; Grafana runs their queries only
	// when it is opened.
	Collapsed bool        `json:"collapsed"`
	Panels    []panelJSON `json:"panels"`
}

type targetJSON struct {
	RefID      string `json:"refId"`
	Expr       string `json:"expr"`
	Datasource dsJSON `json:"datasource"`
}

type dsJSON struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

type gridPos struct{ X, Y, W, H int }

type variableJSON struct {
	Name  string `json:"name"`
	Type  string `json:"type"`
	Query string `json:"query"`
}

func loadAll(t *testing.T) []dashboardJSON {
	t.Helper()
	var out []dashboardJSON
	for _, s := range All() {
		b, err := os.ReadFile(filepath.Join("json", s.File))
		if err != nil {
			t.Fatalf("%v; run `go generate ./dashboards`", err)
		}
		d := dashboardJSON{file: s.File}
		if err := json.Unmarshal(b, &d); err != nil {
			t.Fatalf("%s: %v", s.File, err)
		}
		out = append(out, d)
	}
	return out
}

func (d dashboardJSON) variables() map[string]variableJSON {
	vars := map[string]variableJSON{}
	for _, v := range d.Templating.List {
		vars[v.Name] = v
	}
	return vars
}

type panelExpr struct{ panel, expr string }

// allPanels returns the panels of d in reading order, with those inside
// collapsed rows after their row.
func (d dashboardJSON) allPanels() []panelJSON {
	var out []panelJSON
	for _, p := range d.Panels {
		out = append(out, p)
		out = append(out, p.Panels...)
	}
	return out
}

func (d dashboardJSON) exprs() []panelExpr {
	var out []panelExpr
	for _, p := range d.allPanels() {
		for _, tg := range p.Targets {
			out = append(out, panelExpr{p.Title, tg.Expr})
		}
	}
	return out
}
