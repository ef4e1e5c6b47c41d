package dashboards

import (
	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/cog/variants"
	"github.com/grafana/grafana-foundation-sdk/go/common"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
	"github.com/grafana/grafana-foundation-sdk/go/prometheus"
	"github.com/grafana/grafana-foundation-sdk/go/stat"
	"github.com/grafana/grafana-foundation-sdk/go/statetimeline"
	"github.com/grafana/grafana-foundation-sdk/go/table"
	"github.com/grafana/grafana-foundation-sdk/go/timeseries"
)

// query is one PromQL expression of a panel and the legend of its series.
type query struct {
	expr   string
	legend string
}

// q is shorthand for a query literal.
func q(expr, legend string) query { return query{expr: expr, legend: legend} }

// datasourceRef points a panel or query at the dashboard's datasource variable.
func datasourceRef() dashboard.DataSourceRef {
	return dashboard.DataSourceRef{
		Type: cog.ToPtr("prometheus"),
		Uid:  cog.ToPtr("${datasource}"),
	}
}

// queryKind says how Grafana runs a panel's queries.
type queryKind int

const (
	rangeQuery   queryKind = iota // over the time range, for graphs
	instantValue                  // once at the end of the range, for stats
	instantTable                  // once, one table row per series
)

// promTargets turns queries into Prometheus targets with refIds A, B, C...
func promTargets(kind queryKind, queries []query) []cog.Builder[variants.Dataquery] {
	targets := make([]cog.Builder[variants.Dataquery], 0, len(queries))
	for i, qu := range queries {
		t := prometheus.NewDataqueryBuilder().
			Datasource(datasourceRef()).
			RefId(string(rune('A' + i))).
			Expr(qu.expr).
			LegendFormat(qu.legend)
		switch kind {
		case rangeQuery:
			t = t.Range()
		case instantValue:
			t = t.Instant()
		case instantTable:
			t = t.Instant().Format(prometheus.PromQueryFormatTable)
		}
		targets = append(targets, t)
	}
	return targets
}

// thresholds builds absolute thresholds: the base color below the first
// step, then each step's color from its value upwards.
func thresholds(base string, steps ...dashboard.Threshold) *dashboard.ThresholdsConfigBuilder {
	all := append([]dashboard.Threshold{{Value: nil, Color: base}}, steps...)
	return dashboard.NewThresholdsConfigBuilder().
		Mode(dashboard.ThresholdsModeAbsolute).
		Steps(all)
}

// step is one threshold step.
func step(value float64, color string) dashboard.Threshold {
	return dashboard.Threshold{Value: cog.ToPtr(value), Color: color}
}

// graph is a time series panel with Vigil's common look.
func graph(title, description, unit string, queries ...query) *timeseries.PanelBuilder {
	return timeseries.NewPanelBuilder().
		Title(title).
		Description(description).
		Datasource(datasourceRef()).
		Targets(promTargets(rangeQuery, queries)).
		Unit(unit).
		Min(0).
		Height(8).
		Span(12).
		LineWidth(1).
		FillOpacity(10).
		ShowPoints(common.VisibilityModeNever).
		SpanNulls(common.BoolOrFloat64{Bool: cog.ToPtr(false)}).
		Legend(common.NewVizLegendOptionsBuilder().
			DisplayMode(common.LegendDisplayModeTable).
			Placement(common.LegendPlacementBottom).
			Calcs([]string{"mean", "max", "lastNotNull"}).
			ShowLegend(true)).
		Tooltip(common.NewVizTooltipOptionsBuilder().
			Mode(common.TooltipDisplayModeMulti).
			Sort(common.SortOrderDescending))
}

// stacked is a graph whose series are stacked, for breakdowns of one total.
func stacked(title, description, unit string, queries ...query) *timeseries.PanelBuilder {
	return graph(title, description, unit, queries...).
		FillOpacity(60).
		Stacking(common.NewStackingConfigBuilder().Mode(common.StackingModeNormal))
}

// bars is a graph drawn as bars, for counts per interval.
func bars(title, description, unit string, queries ...query) *timeseries.PanelBuilder {
	return stacked(title, description, unit, queries...).
		DrawStyle(common.GraphDrawStyleBars).
		FillOpacity(80)
}

// single is a stat panel showing the last value of an instant query.
func single(title, description, unit string, queries ...query) *stat.PanelBuilder {
	return stat.NewPanelBuilder().
		Title(title).
		Description(description).
		Datasource(datasourceRef()).
		Targets(promTargets(instantValue, queries)).
		Unit(unit).
		Height(4).
		Span(6).
		ColorMode(common.BigValueColorModeValue).
		GraphMode(common.BigValueGraphModeNone).
		Orientation(common.VizOrientationAuto).
		ReduceOptions(common.NewReduceDataOptionsBuilder().Calcs([]string{"lastNotNull"}))
}

// tablePanel is a table of instant queries, one row per series.
func tablePanel(title, description, unit string, queries []query) *table.PanelBuilder {
	return table.NewPanelBuilder().
		Title(title).
		Description(description).
		Datasource(datasourceRef()).
		Targets(promTargets(instantTable, queries)).
		Unit(unit).
		Height(8).
		Span(12)
}

// hideTimeRename is the transformation that hides a table's time column
// and renames its columns by rename.
func hideTimeRename(rename map[string]string) dashboard.DataTransformerConfig {
	return dashboard.DataTransformerConfig{
		Id: "organize",
		Options: map[string]any{
			"excludeByName": map[string]bool{"Time": true},
			"renameByName":  rename,
		},
	}
}

// sortBy sorts a table by a column.
func sortBy(column string, desc bool) []cog.Builder[common.TableSortByFieldState] {
	return []cog.Builder[common.TableSortByFieldState]{
		common.NewTableSortByFieldStateBuilder().DisplayName(column).Desc(desc),
	}
}

// topTable is a table of an instant query, sorted by its value, with the
// time column hidden.
func topTable(title, description, unit string, queries ...query) *table.PanelBuilder {
	return tablePanel(title, description, unit, queries).
		WithTransformation(hideTimeRename(map[string]string{"Value": "value"})).
		SortBy(sortBy("value", true))
}

// instanceTable is a table of instant queries aggregated by instance: one
// row per instance, one column per query, named by the query's legend. It
// takes two queries or more (Grafana names the value column of a lone
// query differently).
func instanceTable(title, description, unit string, queries ...query) *table.PanelBuilder {
	columns := map[string]string{}
	for i, qu := range queries {
		columns["Value #"+string(rune('A'+i))] = qu.legend
	}
	return tablePanel(title, description, unit, queries).
		WithTransformation(dashboard.DataTransformerConfig{Id: "merge", Options: map[string]any{}}).
		WithTransformation(hideTimeRename(columns)).
		SortBy(sortBy("instance", false))
}

// state is a value of a gauge shown as a word in a color.
type state struct{ value, text, color string }

// timeline is a state timeline with one lane per series, drawing each
// value as the text and color of its state.
func timeline(title, description string, states []state, queries ...query) *statetimeline.PanelBuilder {
	options := map[string]dashboard.ValueMappingResult{}
	for i, s := range states {
		options[s.value] = dashboard.ValueMappingResult{
			Text: cog.ToPtr(s.text), Color: cog.ToPtr(s.color), Index: cog.ToPtr(int32(i)),
		}
	}
	return statetimeline.NewPanelBuilder().
		Title(title).
		Description(description).
		Datasource(datasourceRef()).
		Targets(promTargets(rangeQuery, queries)).
		Mappings([]dashboard.ValueMapping{{ValueMap: &dashboard.ValueMap{
			Type: dashboard.MappingTypeValueToText, Options: options,
		}}}).
		Height(8).
		Span(12).
		ShowValue(common.VisibilityModeAuto).
		MergeValues(true).
		Legend(common.NewVizLegendOptionsBuilder().
			DisplayMode(common.LegendDisplayModeList).
			Placement(common.LegendPlacementBottom).
			ShowLegend(false)).
		Tooltip(common.NewVizTooltipOptionsBuilder().
			Mode(common.TooltipDisplayModeMulti).
			Sort(common.SortOrderNone))
}

// row starts a titled section of a dashboard.
func row(title string) *dashboard.RowBuilder {
	return dashboard.NewRowBuilder(title)
}
