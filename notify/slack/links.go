package slack

import (
	"bytes"
	"errors"
	"fmt"
	"net/url"
	"text/template"
	"time"

	"github.com/vigil-sec/vigil/detect"
)

// Slack limits for a link button.
const (
	maxLinks        = 5
	maxLinkText     = 75
	maxLinkURLBytes = 3000
)

// LinkData is what a link template sees. Every string is already
// URL-query-escaped, so a hostile label value cannot change the URL's shape.
type LinkData struct {
	Rule, Severity, Category, Fingerprint string
	Labels                                map[string]string
	// StartsAtMillis and EndsAtMillis are Unix milliseconds, as Grafana's
	// from/to expect; EndsAtMillis is the notification time while firing.
	StartsAtMillis, EndsAtMillis int64
}

type link struct {
	text string
	tmpl *template.Template
}

func compileLinks(ls []Link) ([]link, error) {
	if len(ls) > maxLinks {
		return nil, fmt.Errorf("links: at most %d links fit under a message, got %d", maxLinks, len(ls))
	}
	out := make([]link, 0, len(ls))
	for i, l := range ls {
		if l.Text == "" || len([]rune(l.Text)) > maxLinkText {
			return nil, fmt.Errorf("links[%d].text: want 1 to %d characters", i, maxLinkText)
		}
		t, err := template.New(l.Text).Option("missingkey=zero").Parse(l.URL)
		if err != nil {
			return nil, fmt.Errorf("links[%d].url: %w", i, err)
		}
		lk := link{text: l.Text, tmpl: t}
		sample := detect.Alert{Rule: "r", Labels: map[string]string{}, StartsAt: time.Unix(0, 0)}
		if _, err := lk.render(sample, time.Unix(60, 0)); err != nil {
			return nil, fmt.Errorf("links[%d].url: %w", i, err)
		}
		out = append(out, lk)
	}
	return out, nil
}

// render executes the template for a and checks the result is a usable URL.
func (l link) render(a detect.Alert, now time.Time) (string, error) {
	d := LinkData{
		Rule:           url.QueryEscape(a.Rule),
		Severity:       url.QueryEscape(a.Severity),
		Category:       url.QueryEscape(a.Category),
		Fingerprint:    url.QueryEscape(a.Fingerprint),
		Labels:         make(map[string]string, len(a.Labels)),
		StartsAtMillis: a.StartsAt.UnixMilli(),
		EndsAtMillis:   now.UnixMilli(),
	}
	if !a.EndsAt.IsZero() {
		d.EndsAtMillis = a.EndsAt.UnixMilli()
	}
	for k, v := range a.Labels {
		d.Labels[k] = url.QueryEscape(v)
	}
	var b bytes.Buffer
	if err := l.tmpl.Execute(&b, d); err != nil {
		return "", err
	}
	u, err := url.Parse(b.String())
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", errors.New("template must produce an absolute http:// or https:// URL")
	}
	if b.Len() > maxLinkURLBytes {
		return "", fmt.Errorf("URL is %d bytes, Slack accepts at most %d", b.Len(), maxLinkURLBytes)
	}
	return b.String(), nil
}
