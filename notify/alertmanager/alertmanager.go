// Package alertmanager delivers notifications to Prometheus Alertmanager's
// v2 API (POST /api/v2/alerts), so teams that already route with
// Alertmanager can use Vigil purely as a detector.
package alertmanager

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/vigil-sec/vigil/detect"
	"github.com/vigil-sec/vigil/notify/receiver"
)

// Alert is one element of the POST /api/v2/alerts body.
type Alert struct {
	Labels       map[string]string `json:"labels"`
	Annotations  map[string]string `json:"annotations"`
	StartsAt     time.Time         `json:"startsAt"`
	EndsAt       time.Time         `json:"endsAt,omitzero"`
	GeneratorURL string            `json:"generatorURL,omitempty"`
}

// Alertmanager is a receiver posting to one or more Alertmanager instances.
type Alertmanager struct {
	endpoints []string
	firingTTL time.Duration
	http      *receiver.HTTP
	now       func() time.Time
}

// New returns an Alertmanager receiver for a validated cfg.
func New(cfg Config, h *receiver.HTTP, now func() time.Time) (*Alertmanager, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	am := &Alertmanager{firingTTL: cfg.FiringTTL, http: h, now: now}
	if am.firingTTL == 0 {
		am.firingTTL = DefaultFiringTTL
	}
	for _, u := range cfg.URLs {
		am.endpoints = append(am.endpoints, strings.TrimRight(u, "/")+"/api/v2/alerts")
	}
	return am, nil
}

// Send posts the notification's alerts to every configured Alertmanager
// concurrently. It succeeds when at least one accepts them, as Prometheus
// does: Alertmanager peers share alerts among themselves.
func (am *Alertmanager) Send(ctx context.Context, n *receiver.Notification) (receiver.Result, error) {
	body, err := json.Marshal(am.alerts(n))
	if err != nil {
		return receiver.Result{}, receiver.Permanent(fmt.Errorf("encode alerts: %w", err))
	}
	h := http.Header{}
	h.Set("Content-Type", "application/json")
	h.Set("User-Agent", "vigil-alertmanager")
	errs := make([]error, len(am.endpoints))
	var wg sync.WaitGroup
	for i, ep := range am.endpoints {
		wg.Go(func() {
			if _, err := am.http.Post(ctx, ep, h, body); err != nil {
				errs[i] = fmt.Errorf("alertmanager %d of %d: %w", i+1, len(am.endpoints), err)
			}
		})
	}
	wg.Wait()
	for _, e := range errs {
		if e == nil {
			return receiver.Result{}, nil
		}
	}
	return receiver.Result{}, combine(errs)
}

// combine merges the failures of every endpoint: retryable when any is,
// waiting as long as the longest Retry-After, disabling only when all say so.
func combine(errs []error) error {
	out := &receiver.Error{Err: errors.Join(errs...), Disable: true}
	for _, e := range errs {
		c := receiver.Classify(e)
		out.Retryable = out.Retryable || c.Retryable
		out.RetryAfter = max(out.RetryAfter, c.RetryAfter)
		out.Disable = out.Disable && c.Disable
	}
	return out
}

func (am *Alertmanager) alerts(n *receiver.Notification) []Alert {
	out := make([]Alert, 0, len(n.Alerts))
	for _, a := range n.Alerts {
		out = append(out, am.convert(a))
	}
	return out
}

// convert maps a Vigil alert to an Alertmanager alert. A firing alert gets
// an endsAt firing_ttl ahead, refreshed by repeat notifications, so an alert
// whose resolve never comes (Vigil gone for good) expires instead of firing
// forever; a resolved alert gets its real end.
func (am *Alertmanager) convert(a detect.Alert) Alert {
	labels := make(map[string]string, len(a.Labels)+3)
	for k, v := range a.Labels {
		labels[labelName(k)] = v
	}
	labels["alertname"] = a.Rule
	setIf(labels, "severity", a.Severity)
	setIf(labels, "category", a.Category)
	// An alert keeps its incident for its episode, so the label does not
	// change between its firing and its resolve; the incident's severity
	// may rise meanwhile, so it is an annotation.
	setIf(labels, "incident_id", a.IncidentID)
	ann := map[string]string{
		"value":             receiver.FormatValue(a.Value, a.Unit),
		"threshold":         receiver.FormatValue(a.Threshold, a.Unit),
		"window":            time.Duration(a.Window).String(),
		"vigil_fingerprint": a.Fingerprint,
	}
	setIf(ann, "summary", a.Summary)
	setIf(ann, "description", a.Description)
	setIf(ann, "incident_severity", a.IncidentSeverity)
	setIf(ann, "condition", receiver.Condition(a))
	setIf(ann, "attack", strings.Join(a.Attack, ", "))
	setIf(ann, "appsensor", strings.Join(a.AppSensor, ", "))
	if len(a.Sample) > 0 {
		ann["sample_request_ids"] = strings.Join(a.Sample, ", ")
	}
	out := Alert{Labels: labels, Annotations: ann, StartsAt: a.StartsAt.UTC()}
	switch {
	case a.Transition == detect.TransitionResolved && !a.EndsAt.IsZero():
		out.EndsAt = a.EndsAt.UTC()
	case a.Transition == detect.TransitionResolved:
		out.EndsAt = am.now().UTC()
	default:
		out.EndsAt = am.now().Add(am.firingTTL).UTC()
	}
	return out
}

func setIf(m map[string]string, k, v string) {
	if v != "" {
		m[k] = v
	}
}

// labelName maps k to a valid Prometheus label name.
func labelName(k string) string {
	b := []byte(k)
	for i, c := range b {
		ok := c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (i > 0 && c >= '0' && c <= '9')
		if !ok {
			b[i] = '_'
		}
	}
	if len(b) == 0 {
		return "_"
	}
	return string(b)
}
