package dashboards

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/common"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
)

// Tag is set on every Vigil dashboard; the dashboards link to each other by it.
const Tag = "vigil"

// Spec names one dashboard and how to build it.
type Spec struct {
	File  string // file name under json/, e.g. "vigil-api-traffic.json"
	Build func() (dashboard.Dashboard, error)
}

// All returns every Vigil dashboard, in a stable order.
func All() []Spec {
	return []Spec{
		{File: "vigil-api-traffic.json", Build: apiTraffic},
		{File: "vigil-security.json", Build: security},
		{File: "vigil-health.json", Build: health},
	}
}

// Render builds every dashboard and returns its JSON by file name.
func Render() (map[string][]byte, error) {
	out := make(map[string][]byte, len(All()))
	for _, s := range All() {
		d, err := s.Build()
		if err != nil {
			return nil, fmt.Errorf("build %s: %w", s.File, err)
		}
		numberPanels(&d)
		b, err := marshal(d)
		if err != nil {
			return nil, fmt.Errorf("render %s: %w", s.File, err)
		}
		out[s.File] = b
	}
	return out, nil
}

// WriteFiles renders every dashboard into dir, replacing existing files.
func WriteFiles(dir string) error {
	files, err := Render()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			return fmt.Errorf("write %s: %w", name, err)
		}
	}
	return nil
}

// marshal renders a dashboard as indented JSON with a trailing newline and
// without HTML escaping, so PromQL such as `a > 0` stays readable.
func marshal(d dashboard.Dashboard) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(d); err != nil {
		return nil, fmt.Errorf("encode dashboard: %w", err)
	}
	return buf.Bytes(), nil
}

// numberPanels gives every panel, including those inside rows, a unique id
// in reading order, as Grafana expects.
func numberPanels(d *dashboard.Dashboard) {
	var id uint32
	for _, p := range d.Panels {
		id++
		switch {
		case p.Panel != nil:
			p.Panel.Id = cog.ToPtr(id)
		case p.RowPanel != nil:
			p.RowPanel.Id = id
			for i := range p.RowPanel.Panels {
				id++
				p.RowPanel.Panels[i].Id = cog.ToPtr(id)
			}
		}
	}
}

// newDashboard returns a builder with the settings every Vigil dashboard
// shares: its uid and title, a refresh, a time range, links to its siblings,
// and the datasource variable.
func newDashboard(uid, title, description string) *dashboard.DashboardBuilder {
	return dashboard.NewDashboardBuilder(title).
		Uid(uid).
		Description(description).
		Tags([]string{Tag}).
		Editable().
		Tooltip(dashboard.DashboardCursorSyncCrosshair).
		Refresh("30s").
		Time("now-1h", "now").
		Timezone(common.TimeZoneBrowser).
		Link(dashboard.NewDashboardLinkBuilder("Vigil dashboards").
			Type(dashboard.DashboardLinkTypeDashboards).
			Tags([]string{Tag}).
			AsDropdown(true).
			IncludeVars(false).
			KeepTime(true)).
		WithVariable(dashboard.NewDatasourceVariableBuilder("datasource").
			Label("Data source").
			Type("prometheus"))
}

// labelVariable is a multi-value variable listing the values of a label, as
// Grafana's label_values() query returns them; "All" matches any value.
func labelVariable(name, label, query string) *dashboard.QueryVariableBuilder {
	return dashboard.NewQueryVariableBuilder(name).
		Label(label).
		Query(dashboard.StringOrMap{String: cog.ToPtr(query)}).
		Definition(query).
		Datasource(datasourceRef()).
		Current(dashboard.VariableOption{
			Selected: cog.ToPtr(true),
			Text:     dashboard.StringOrArrayOfString{ArrayOfString: []string{"All"}},
			Value:    dashboard.StringOrArrayOfString{ArrayOfString: []string{"$__all"}},
		}).
		Refresh(dashboard.VariableRefreshOnTimeRangeChanged).
		Sort(dashboard.VariableSortAlphabeticalAsc).
		Multi(true).
		IncludeAll(true).
		AllValue(".*")
}
