package dashboards

import (
	"github.com/grafana/grafana-foundation-sdk/go/common"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
	"github.com/grafana/grafana-foundation-sdk/go/table"
)

// clusterOff is what a cluster panel shows when the selected instances
// export no vigil_cluster_* metrics: they run without cluster.enabled.
const clusterOff = "cluster mode off"

// healthCluster is the row about a cluster's members (cluster.enabled: one
// active member, warm standbys; docs/scaling.md). The row is collapsed, so
// a single instance, which exports no cluster metrics, shows its title
// only and Grafana runs none of its queries; opened there, its panels say
// that cluster mode is off instead of "No data".
func healthCluster(b *dashboard.DashboardBuilder) *dashboard.DashboardBuilder {
	return b.WithRow(row("Cluster").
		WithPanel(timeline("Active member", "Which member is active (pinned on the events consumer) and which are warm standbys, over time. "+
			"JetStream pins a member when it delivers it a message; on an idle stream a standby wakes the consumer up with an empty message so that one is active all the same.",
			[]state{{"0", "standby", "blue"}, {"1", "active", "green"}},
			q(`max by (instance) (`+m("vigil_cluster_active")+`)`, "{{instance}}")).
			NoValue(clusterOff).Height(6).Span(8)).
		WithPanel(single("Active members", "Members reporting themselves active: 1 when healthy. 0 means none consumes, detects or delivers (VigilClusterNoActiveMember); more than 1 lasts a moment at most, and the fence keeps a stale one quiet.", "short",
			q(`sum(`+m("vigil_cluster_active")+`)`, "active")).
			Thresholds(thresholds("red", step(1, "green"), step(2, "red"))).
			NoValue(clusterOff).Height(6).Span(4)).
		WithPanel(single("Members seen", "Members in the member table (heartbeats in the VIGIL_MEMBERS bucket), the most any selected member sees. Fewer than you run: one is down or cannot reach NATS.", "short",
			q(`max(`+m("vigil_cluster_members")+`)`, "members")).
			Thresholds(thresholds("blue")).
			NoValue(clusterOff).Height(6).Span(4)).
		WithPanel(single("Members differing", "Other members whose rule set or notification settings differ, the most any member counts (VigilClusterConfigDiffers). Compare the rules and notify columns of the member table in /api/v1/status, give every member the same files and reload them all with POST /api/v1/cluster/reload.", "short",
			q(`max(`+m("vigil_cluster_members_differing")+`)`, "differing")).
			Thresholds(thresholds("green", step(1, "orange"))).
			NoValue(clusterOff).Height(6).Span(4)).
		WithPanel(single("Takeover time", "Catch-up time of the takeovers in the time range, from being pinned to processing live events: 95th percentile, and the upper bound of the slowest one's histogram bucket.", "s",
			q(takeoverQuantile("0.95"), "p95"),
			q(takeoverQuantile("1"), "max")).
			Thresholds(thresholds("green", step(5, "orange"), step(30, "red"))).
			NoValue("no takeover in range").Height(6).Span(4)).
		WithPanel(graph("Standby lag", "Event messages the active member was delivered that each standby has not applied yet: what a takeover would replay first (VigilClusterStandbyLagging above 100,000 for 10 minutes).", "short",
			q(`max by (instance) (`+m("vigil_cluster_standby_lag_messages")+`)`, "{{instance}}")).
			Thresholds(thresholds("green", step(100000, "orange"))).
			ThresholdsStyle(common.NewGraphThresholdsStyleConfigBuilder().Mode(common.GraphThresholdsStyleModeDashed)).
			NoValue(clusterOff).Span(6)).
		WithPanel(bars("Handovers and demotions", "Times a member became the active one, times one stopped being it (another was pinned, it stopped, or it bound to the consumer again), and wake-up messages a standby published because no member held the pin (at the start, or after the active member died with no event since).", "short",
			q(`sum by (instance) (increase(`+m("vigil_cluster_handovers_total")+rateIv+`))`, "became active {{instance}}"),
			q(`sum by (instance) (increase(`+m("vigil_cluster_demotions_total")+rateIv+`))`, "stepped down {{instance}}"),
			q(`sum by (instance) (increase(`+m("vigil_cluster_wakes_total")+rateIv+`))`, "woke the stream {{instance}}")).
			NoValue(clusterOff).Span(6)).
		WithPanel(bars("Fenced transitions", "Alert transitions a member did not announce because it had lost its pin (frozen past cluster.failover_after); the active member announces them. Any means a member paused: look at its CPU limits and GC.", "short",
			q(`sum by (instance) (increase(`+m("vigil_cluster_fenced_transitions_total")+rateIv+`))`, "{{instance}}")).
			NoValue(clusterOff).Span(6)).
		WithPanel(rebuildTable().Span(6)))
}

// takeoverQuantile is the phi-quantile of the takeovers in the dashboard's
// time range; NaN (no takeover) is left out, so the panel says so.
func takeoverQuantile(phi string) string {
	return `histogram_quantile(` + phi + `, sum by (le) (increase(` + m("vigil_cluster_takeover_seconds_bucket") + `[$__range]))) >= 0`
}

// rebuildTable shows, per instance, the last rebuild of detection windows
// from the stream (at start-up, for a rules reload, or a member starting),
// whether it started from a checkpoint, and how old the instance's last
// checkpoint is. A single instance has them too.
func rebuildTable() *table.PanelBuilder {
	return instanceTable("Last detection rebuild and checkpoint", "How long each instance's last rebuild of detection windows took (at start-up or a rules reload), how many events it replayed, whether it started from a checkpoint (1) or replayed the rules' whole lookback (0), and how long ago the instance last stored a checkpoint (detect.checkpoint_every; the active member takes them). A member cannot take over before its rebuild ends.", "short",
		q(`max by (instance) (`+m("vigil_detection_rebuild_seconds")+`)`, "took"),
		q(`max by (instance) (`+m("vigil_detection_rebuild_events")+`)`, "events"),
		q(`max by (instance) (`+m("vigil_detection_rebuild_from_checkpoint")+`)`, "from checkpoint"),
		q(`time() - max by (instance) (`+m("vigil_detection_checkpoint_timestamp_seconds")+` > 0)`, "last checkpoint, ago")).
		OverrideByName("took", []dashboard.DynamicConfigValue{{Id: "unit", Value: "s"}}).
		OverrideByName("last checkpoint, ago", []dashboard.DynamicConfigValue{{Id: "unit", Value: "s"}})
}
