package dashboards

import "github.com/grafana/grafana-foundation-sdk/go/dashboard"

// inst selects the Vigil processes chosen by the job and instance variables;
// it also keeps the Go and process series of other jobs out.
const inst = `job=~"$job",instance=~"$instance"`

// m returns a metric selector restricted to the selected Vigil processes.
func m(metric string) string { return metric + `{` + inst + `}` }

// sumRate returns sum by (by) of a counter's per-second rate.
func sumRate(by, metric string) string {
	agg := `sum`
	if by != "" {
		agg += ` by (` + by + `)`
	}
	return agg + ` (rate(` + m(metric) + rateIv + `))`
}

// health is the dashboard of the team running Vigil: is it up, keeping up
// with its input, delivering notifications, and within its memory budget.
func health() (dashboard.Dashboard, error) {
	b := newDashboard("vigil-health", "Vigil / Health",
		"Vigil's own health: ingest, backlog, cluster members, detection state, notifications, admin API and Go runtime.").
		WithVariable(labelVariable("job", "Job", `label_values(vigil_build_info, job)`)).
		WithVariable(labelVariable("instance", "Instance", `label_values(vigil_build_info{job=~"$job"}, instance)`))
	b = healthStatus(b)
	b = healthCluster(b)
	b = healthIngest(b)
	b = healthDetectNotify(b)
	b = healthRuntime(b)
	return b.Build()
}

func healthStatus(b *dashboard.DashboardBuilder) *dashboard.DashboardBuilder {
	return b.WithRow(row("Status")).
		WithPanel(single("NATS connected", "1 when every selected instance is connected to NATS.", "bool_yes_no",
			q(`min(`+m("vigil_nats_connected")+`)`, "connected")).
			Thresholds(thresholds("red", step(1, "green")))).
		WithPanel(single("Last config reload", "1 when the last reload of every selected instance succeeded.", "bool_yes_no",
			q(`min(`+m("vigil_config_last_reload_successful")+`)`, "reload ok")).
			Thresholds(thresholds("red", step(1, "green")))).
		WithPanel(single("Config age", "Time since the oldest successful config load among the selected instances.", "s",
			q(`time() - min(`+m("vigil_config_last_reload_success_timestamp_seconds")+`)`, "age"))).
		WithPanel(single("Uptime", "Time since the most recent start among the selected instances.", "s",
			q(`time() - max(`+m("process_start_time_seconds")+`)`, "uptime"))).
		WithPanel(topTable("Build", "Version, commit and Go version of each instance.", "short",
			q(m("vigil_build_info"), ""))).
		WithPanel(topTable("Config versions", "Instances per config hash; more than one row means instances run different configs.", "short",
			q(`count by (hash) (`+m("vigil_config_info")+`)`, "")))
}

func healthIngest(b *dashboard.DashboardBuilder) *dashboard.DashboardBuilder {
	return b.WithRow(row("Ingest")).
		WithPanel(graph("Events/s", "Events applied and rejected per second.", "ops",
			q(sumRate("instance", "vigil_events_received_total"), "received {{instance}}"),
			q(sumRate("", "vigil_events_rejected_total"), "rejected"))).
		WithPanel(graph("Event delay p50 / p99", "Arrival time minus event time.", "s",
			q(`histogram_quantile(0.5, sum by (le) (rate(`+m("vigil_event_delay_seconds_bucket")+rateIv+`)))`, "p50"),
			q(`histogram_quantile(0.99, sum by (le) (rate(`+m("vigil_event_delay_seconds_bucket")+rateIv+`)))`, "p99"))).
		WithPanel(graph("Consumer backlog", "Messages waiting in the stream for Vigil, and delivered but not yet acknowledged.", "short",
			q(`sum by (instance) (`+m("vigil_consumer_pending_messages")+`)`, "pending {{instance}}"),
			q(`sum by (instance) (`+m("vigil_ingest_ack_pending_messages")+`)`, "ack pending {{instance}}"))).
		WithPanel(graph("Batches", "Batches processed per second and events per batch.", "short",
			q(sumRate("", "vigil_ingest_batches_total"), "batches/s"),
			q(sumRate("", "vigil_events_received_total")+` / `+sumRate("", "vigil_ingest_batches_total"), "events per batch"))).
		WithPanel(graph("Rejects by reason", "Events rejected per second, by reason.", "ops",
			q(sumRate("reason", "vigil_events_rejected_total"), "{{reason}}"))).
		WithPanel(graph("Dead letters", "Rejected events kept in the dead-letter stream, and notifications that finally failed.", "ops",
			q(sumRate("", "vigil_events_deadlettered_total"), "events"),
			q(sumRate("receiver", "vigil_notifications_dead_total"), "notifications {{receiver}}"))).
		WithPanel(graph("Label overflow", "Label values folded into \"other\" because a cardinality cap was reached.", "ops",
			q(sumRate("label", "vigil_label_overflow_total"), "{{label}}")).
			Span(24))
}

func healthDetectNotify(b *dashboard.DashboardBuilder) *dashboard.DashboardBuilder {
	return b.WithRow(row("Detection and notification")).
		WithPanel(graph("Detection state fill", "Share of the fixed detection state budget in use.", "percentunit",
			q(`max by (instance) (`+m("vigil_detect_state_bytes")+` / `+m("vigil_detect_state_capacity_bytes")+`)`, "{{instance}}")).
			Max(1).
			Thresholds(thresholds("green", step(0.8, "orange"), step(0.9, "red")))).
		WithPanel(graph("Detection groups and dropped alerts", "Groups (rule and label values) holding window state, and new alerts dropped because too many were firing.", "short",
			q(`sum by (instance) (`+m("vigil_detect_state_groups")+`)`, "groups {{instance}}"),
			q(`sum(increase(`+m("vigil_detect_alerts_dropped_total")+rateIv+`))`, "alerts dropped"))).
		WithPanel(graph("Rule evaluations/s", "Events evaluated per second, per rule.", "ops",
			q(sumRate("rule", "vigil_rule_evaluations_total"), "{{rule}}"))).
		WithPanel(graph("Rule matches/s", "Events that matched a rule's match expression per second, per rule.", "ops",
			q(sumRate("rule", "vigil_rule_matches_total"), "{{rule}}"))).
		WithPanel(stacked("Notification outcomes", "Delivery attempts per second, by receiver and outcome.", "ops",
			q(sumRate("receiver, outcome", "vigil_notifications_total"), "{{receiver}} {{outcome}}"))).
		WithPanel(graph("Notification latency p95", "95th percentile of delivery time, per receiver.", "s",
			q(`histogram_quantile(0.95, sum by (receiver, le) (rate(`+m("vigil_notification_duration_seconds_bucket")+rateIv+`)))`, "{{receiver}}"))).
		WithPanel(graph("Outbox depth", "Notifications waiting in the durable outbox.", "short",
			q(`sum by (instance) (`+m("vigil_notify_queue_depth")+`)`, "{{instance}}"))).
		WithPanel(graph("Receivers disabled or tripped", "1 while a receiver is disabled until reload (HTTP 410) or its circuit breaker is open.", "short",
			q(`max by (receiver) (`+m("vigil_notify_receiver_disabled")+`)`, "disabled {{receiver}}"),
			q(`max by (receiver) (`+m("vigil_notify_circuit_open")+`)`, "circuit open {{receiver}}")).
			Max(1)).
		WithPanel(stacked("Alert transitions by outcome", "Alert transitions reaching the notifier: notified, duplicate (already announced), silenced, unrouted.", "ops",
			q(sumRate("outcome", "vigil_alert_transitions_total"), "{{outcome}}"))).
		WithPanel(graph("Admin API requests", "Admin API requests per second, by route and status code.", "reqps",
			q(sumRate("route, code", "vigil_admin_requests_total"), "{{route}} {{code}}"))).
		WithPanel(rebuildTable())
}

func healthRuntime(b *dashboard.DashboardBuilder) *dashboard.DashboardBuilder {
	return b.WithRow(row("Go runtime")).
		WithPanel(graph("CPU", "CPU time used per second (1 = one core).", "percentunit",
			q(`sum by (instance) (rate(`+m("process_cpu_seconds_total")+rateIv+`))`, "{{instance}}"))).
		WithPanel(graph("Memory", "Resident memory and Go heap in use.", "bytes",
			q(m("process_resident_memory_bytes"), "RSS {{instance}}"),
			q(m("go_memstats_heap_inuse_bytes"), "heap {{instance}}"))).
		WithPanel(graph("Goroutines", "Live goroutines.", "short",
			q(m("go_goroutines"), "{{instance}}"))).
		WithPanel(graph("GC pause (max)", "Longest garbage collection pause in the recent summary window.", "s",
			q(`go_gc_duration_seconds{`+inst+`,quantile="1"}`, "{{instance}}"))).
		WithPanel(graph("Open file descriptors", "Share of the file descriptor limit in use.", "percentunit",
			q(m("process_open_fds")+` / `+m("process_max_fds"), "{{instance}}")).
			Max(1))
}
