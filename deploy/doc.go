// Package deploy holds Vigil's deployment kit (systemd unit, container image,
// compose stack, Kubernetes manifests, NATS and Prometheus configuration) and
// the tests that prove it with real tools: promtool, Prometheus, nats-server,
// docker-compose, systemd-analyze and kubectl. The package has no code of its
// own besides those tests; see README.md.
package deploy

//go:generate go run ./kubernetes/genrules -rules ../rules -out kubernetes/rules-configmap.yaml
