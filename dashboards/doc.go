// Package dashboards builds Vigil's Grafana dashboards as code with the
// grafana-foundation-sdk and renders them to the JSON files under json/,
// which are committed so that Grafana can provision them from disk.
//
// Run `go generate ./dashboards` after changing a dashboard; a test fails
// when the committed JSON differs from what the generator produces. Every
// panel query uses only metrics that Vigil exports (see README.md); the live
// test in deploy/ evaluates each one against a real Prometheus scraping a
// real Vigil.
package dashboards

//go:generate go run ./gen -out json
