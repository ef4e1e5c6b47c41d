package dashboards

import "github.com/grafana/grafana-foundation-sdk/go/dashboard"

// Selectors and expressions shared by the API traffic panels. Every series
// comes from vigil_http_requests_total and vigil_http_request_duration_seconds,
// which Vigil derives from the events services publish.
const (
	svc        = `service=~"$service"`
	requests   = `vigil_http_requests_total{` + svc + `}`
	serverErrs = `vigil_http_requests_total{` + svc + `,code=~"5.."}`
	clientErrs = `vigil_http_requests_total{` + svc + `,code=~"4.."}`
	latencyBkt = `vigil_http_request_duration_seconds_bucket{` + svc + `}`
	rateIv     = `[$__rate_interval]`
	rangeIv    = `[$__range]`
)

// quantile returns the expression for a latency quantile of the selected
// services, aggregated by the given labels (plus le).
func quantile(phi, by string) string {
	return `histogram_quantile(` + phi + `, sum by (` + by + `le) (rate(` + latencyBkt + rateIv + `)))`
}

// apiTraffic is the dashboard an API owner opens first: how much traffic,
// how many errors, how fast, and where the errors are.
func apiTraffic() (dashboard.Dashboard, error) {
	b := newDashboard("vigil-api-traffic", "Vigil / API traffic",
		"Requests, errors and latency of the services that publish events to Vigil.").
		WithVariable(labelVariable("service", "Service", `label_values(vigil_http_requests_total, service)`))
	b = trafficOverview(b)
	b = trafficRates(b)
	b = trafficEndpoints(b)
	return b.Build()
}

func trafficOverview(b *dashboard.DashboardBuilder) *dashboard.DashboardBuilder {
	return b.WithRow(row("Overview")).
		WithPanel(single("Requests/s", "Requests per second across the selected services.", "reqps",
			q(`sum(rate(`+requests+rateIv+`))`, "requests/s"))).
		WithPanel(single("Server error share (5xx)", "Share of requests answered with a 5xx status.", "percentunit",
			q(`sum(rate(`+serverErrs+rateIv+`)) / sum(rate(`+requests+rateIv+`))`, "5xx share")).
			NoValue("0").
			Thresholds(thresholds("green", step(0.01, "orange"), step(0.05, "red")))).
		WithPanel(single("Client error share (4xx)", "Share of requests answered with a 4xx status; a jump often means scanning or credential attacks.", "percentunit",
			q(`sum(rate(`+clientErrs+rateIv+`)) / sum(rate(`+requests+rateIv+`))`, "4xx share")).
			NoValue("0").
			Thresholds(thresholds("green", step(0.1, "orange"), step(0.25, "red")))).
		WithPanel(single("Latency p95", "95th percentile of request latency as services report it.", "s",
			q(quantile("0.95", ""), "p95")))
}

func trafficRates(b *dashboard.DashboardBuilder) *dashboard.DashboardBuilder {
	return b.WithRow(row("Traffic")).
		WithPanel(graph("Requests/s by service", "Requests per second, per service.", "reqps",
			q(`sum by (service) (rate(`+requests+rateIv+`))`, "{{service}}"))).
		WithPanel(stacked("Status codes", "Requests per second by HTTP status code.", "reqps",
			q(`sum by (code) (rate(`+requests+rateIv+`))`, "{{code}}"))).
		WithPanel(graph("Server error share by service (5xx)", "Share of each service's requests answered with a 5xx status.", "percentunit",
			q(`sum by (service) (rate(`+serverErrs+rateIv+`)) / sum by (service) (rate(`+requests+rateIv+`))`, "{{service}}"))).
		WithPanel(graph("Requests/s by method", "Requests per second by HTTP method.", "reqps",
			q(`sum by (method) (rate(`+requests+rateIv+`))`, "{{method}}"))).
		WithRow(row("Latency")).
		WithPanel(graph("Latency p50 / p95 / p99", "Request latency quantiles across the selected services.", "s",
			q(quantile("0.5", ""), "p50"),
			q(quantile("0.95", ""), "p95"),
			q(quantile("0.99", ""), "p99"))).
		WithPanel(graph("Latency p95 by service", "95th percentile of request latency, per service.", "s",
			q(quantile("0.95", "service, "), "{{service}}")))
}

func trafficEndpoints(b *dashboard.DashboardBuilder) *dashboard.DashboardBuilder {
	return b.WithRow(row("Endpoints")).
		WithPanel(topTable("Endpoints with the most server errors", "5xx responses over the dashboard's time range, top 10.", "short",
			q(`topk(10, sum by (service, endpoint) (increase(`+serverErrs+rangeIv+`)))`, ""))).
		WithPanel(topTable("Endpoints with the most client errors", "4xx responses over the dashboard's time range, top 10.", "short",
			q(`topk(10, sum by (service, endpoint) (increase(`+clientErrs+rangeIv+`)))`, ""))).
		WithPanel(topTable("Busiest endpoints", "Requests over the dashboard's time range, top 10.", "short",
			q(`topk(10, sum by (service, endpoint) (increase(`+requests+rangeIv+`)))`, ""))).
		WithPanel(topTable("Slowest endpoints (p95)", "95th percentile latency over the dashboard's time range, top 10.", "s",
			q(`topk(10, histogram_quantile(0.95, sum by (service, endpoint, le) (rate(`+latencyBkt+rangeIv+`))))`, "")))
}
