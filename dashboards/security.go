package dashboards

import "github.com/grafana/grafana-foundation-sdk/go/dashboard"

// Selectors of the security panels. A failed authentication is a request
// answered 401 or 403; alerts are Vigil's own detections.
const (
	authFails = `vigil_http_requests_total{` + svc + `,code=~"401|403"}`
	ruleSel   = `rule=~"$rule"`
	fired     = `vigil_alerts_total{` + ruleSel + `,state="firing"}`
	firing    = `vigil_alerts_firing{` + ruleSel + `}`
	bucketIv  = `[$__interval]`
)

// security is the dashboard the security on-call watches: authentication
// failures, what Vigil detected, what is firing now and what was silenced,
// and whether its input is trustworthy.
func security() (dashboard.Dashboard, error) {
	b := newDashboard("vigil-security", "Vigil / Security",
		"Failed authentication, alerts fired and firing, silences, and rejected or late events.").
		WithVariable(labelVariable("service", "Service", `label_values(vigil_http_requests_total, service)`)).
		WithVariable(labelVariable("rule", "Rule", `label_values(vigil_alerts_firing, rule)`))
	b = securityNow(b)
	b = securityAuth(b)
	b = securityAlerts(b)
	return b.Build()
}

func securityNow(b *dashboard.DashboardBuilder) *dashboard.DashboardBuilder {
	return b.WithRow(row("Now")).
		WithPanel(single("Firing alerts", "Alerts firing now, across the selected rules.", "short",
			q(`sum(`+firing+`)`, "firing")).
			Thresholds(thresholds("green", step(1, "red")))).
		WithPanel(single("Failed auth/s", "Requests answered 401 or 403 per second, across the selected services.", "reqps",
			q(`sum(rate(`+authFails+rateIv+`))`, "failed auth/s")).
			NoValue("0")).
		WithPanel(single("Alerts fired", "Alerts that started firing during the dashboard's time range.", "short",
			q(`sum(increase(`+fired+rangeIv+`))`, "fired")).
			NoValue("0")).
		WithPanel(single("Alerts silenced", "Alert notifications suppressed by a silence during the dashboard's time range.", "short",
			q(`sum(increase(vigil_alerts_silenced_total`+rangeIv+`))`, "silenced")))
}

func securityAuth(b *dashboard.DashboardBuilder) *dashboard.DashboardBuilder {
	return b.WithRow(row("Authentication")).
		WithPanel(graph("Failed-auth rate by service", "Requests answered 401 or 403 per second, per service.", "reqps",
			q(`sum by (service) (rate(`+authFails+rateIv+`))`, "{{service}}"))).
		WithPanel(graph("Failed-auth share by service", "Share of each service's requests answered 401 or 403.", "percentunit",
			q(`sum by (service) (rate(`+authFails+rateIv+`)) / sum by (service) (rate(`+requests+rateIv+`))`, "{{service}}"))).
		WithPanel(topTable("Endpoints with the most failed auth", "401 and 403 responses over the dashboard's time range, top 10.", "short",
			q(`topk(10, sum by (service, endpoint, code) (increase(`+authFails+rangeIv+`)))`, ""))).
		WithPanel(graph("Admin API refusals", "Requests to Vigil's own admin API refused: failed authentication by reason, rate limiting, and failed TLS handshakes.", "reqps",
			q(`sum by (reason) (rate(vigil_admin_auth_failures_total`+rateIv+`))`, "auth: {{reason}}"),
			q(`sum(rate(vigil_admin_rate_limited_total`+rateIv+`))`, "rate limited"),
			q(`sum(rate(vigil_admin_tls_handshake_errors_total`+rateIv+`))`, "TLS handshake failed")))
}

func securityAlerts(b *dashboard.DashboardBuilder) *dashboard.DashboardBuilder {
	return b.WithRow(row("Alerts")).
		WithPanel(bars("Alerts fired by rule and severity", "Alerts that started firing per interval.", "short",
			q(`sum by (rule, severity) (increase(`+fired+bucketIv+`))`, "{{rule}} ({{severity}})")).
			Interval("1m")).
		WithPanel(graph("Firing alerts by rule", "Alerts firing at each moment, per rule.", "short",
			q(`sum by (rule) (`+firing+`)`, "{{rule}}"))).
		WithPanel(topTable("Firing alerts now", "Alerts firing now, per rule.", "short",
			q(`sum by (rule) (`+firing+`)`, ""))).
		WithPanel(bars("Alert transitions and silences", "Alert transitions by state and notifications suppressed by silences, per interval.", "short",
			q(`sum by (state) (increase(vigil_alerts_total{`+ruleSel+`}`+bucketIv+`))`, "{{state}}"),
			q(`sum(increase(vigil_alerts_silenced_total`+bucketIv+`))`, "silenced")).
			Interval("1m")).
		WithRow(row("Input integrity")).
		WithPanel(graph("Rejected events by reason", "Events Vigil refused (malformed, oversized, forged service...), per reason.", "ops",
			q(`sum by (reason) (rate(vigil_events_rejected_total`+rateIv+`))`, "{{reason}}"))).
		WithPanel(graph("Late events", "Events older than the detection watermark, left out of the windows.", "ops",
			q(`sum(rate(vigil_events_late_total`+rateIv+`))`, "late")))
}
