package notify

import (
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/vigil-sec/vigil/detect"
)

func TestSilenceMatching(t *testing.T) {
	labels := map[string]string{"rule": "brute_force_user", "severity": "high", "user": "admin", "path": "/login"}
	// A silence needs one matcher that does not match the empty value.
	rule := Matcher{Name: "rule", Op: OpEqual, Value: "brute_force_user"}
	cases := []struct {
		name     string
		matchers []Matcher
		want     bool
	}{
		{"equal", []Matcher{{Name: "rule", Op: OpEqual, Value: "brute_force_user"}}, true},
		{"equal other value", []Matcher{{Name: "rule", Op: OpEqual, Value: "error_spike"}}, false},
		{"not equal", []Matcher{rule, {Name: "user", Op: OpNotEqual, Value: "bob"}}, true},
		{"regex whole value", []Matcher{{Name: "path", Op: OpRegex, Value: "/log.*"}}, true},
		{"regex is anchored", []Matcher{{Name: "path", Op: OpRegex, Value: "log"}}, false},
		{"negative regex", []Matcher{rule, {Name: "user", Op: OpNotRegex, Value: "adm.*"}}, false},
		{"all matchers must match", []Matcher{{Name: "rule", Op: OpEqual, Value: "brute_force_user"}, {Name: "user", Op: OpEqual, Value: "bob"}}, false},
		{"missing label is empty", []Matcher{{Name: "rule", Op: OpEqual, Value: "brute_force_user"}, {Name: "tenant", Op: OpEqual, Value: ""}}, true},
		{"missing label does not equal a value", []Matcher{{Name: "tenant", Op: OpEqual, Value: "acme"}}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := Silence{Matchers: tc.matchers}
			if err := s.compile(); err != nil {
				t.Fatal(err)
			}
			if got := s.matches(labels); got != tc.want {
				t.Errorf("matches = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestSilenceStatus(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	s := Silence{StartsAt: now, EndsAt: now.Add(time.Hour)}
	for _, c := range []struct {
		at   time.Time
		want SilenceStatus
	}{
		{now.Add(-time.Second), SilencePending},
		{now, SilenceActive},
		{now.Add(59 * time.Minute), SilenceActive},
		{now.Add(time.Hour), SilenceExpired},
	} {
		if got := s.statusAt(c.at); got != c.want {
			t.Errorf("status at %s = %s, want %s", c.at, got, c.want)
		}
	}
}

func TestSilenceValidation(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	valid := func() Silence {
		return Silence{
			Matchers:  []Matcher{{Name: "rule", Op: OpEqual, Value: "brute_force_user"}},
			EndsAt:    now.Add(time.Hour),
			CreatedBy: "alice", Comment: "maintenance",
		}
	}
	cases := []struct {
		name    string
		edit    func(*Silence)
		wantErr string
	}{
		{"valid; starts now by default", func(*Silence) {}, ""},
		{"no matchers", func(s *Silence) { s.Matchers = nil }, "give 1 to 32 matchers"},
		{"matches everything", func(s *Silence) { s.Matchers = []Matcher{{Name: "user", Op: OpNotEqual, Value: "x"}} }, "would mute every alert"},
		{"bad op", func(s *Silence) { s.Matchers[0].Op = "==" }, "is not one of"},
		{"bad label name", func(s *Silence) { s.Matchers[0].Name = "a-b" }, "not a label name"},
		{"bad regex", func(s *Silence) { s.Matchers[0] = Matcher{Name: "rule", Op: OpRegex, Value: "(("} }, "matcher rule"},
		{"no end", func(s *Silence) { s.EndsAt = time.Time{} }, "ends_at is required"},
		{"end before start", func(s *Silence) { s.StartsAt = now.Add(2 * time.Hour) }, "ends_at must be after starts_at"},
		{"already over", func(s *Silence) { s.StartsAt, s.EndsAt = now.Add(-2*time.Hour), now.Add(-time.Hour) }, "in the past"},
		{"no author", func(s *Silence) { s.CreatedBy = "" }, "created_by is required"},
		{"no comment", func(s *Silence) { s.Comment = "" }, "comment is required"},
		{"id given", func(s *Silence) { s.ID = "abc" }, "assigned by the server"},
		{"comment too long", func(s *Silence) { s.Comment = strings.Repeat("x", 1025) }, "comment is required"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := valid()
			tc.edit(&s)
			err := s.validateNew(now)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				if !s.StartsAt.Equal(now) {
					t.Errorf("starts_at = %s, want now", s.StartsAt)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("err = %v, want %q", err, tc.wantErr)
			}
		})
	}
}

// TestSilenceThatWouldMuteEveryAlertIsRefused checks the mute-all guard on
// matcher sets: refused when each matcher accepts every value its label can
// have (rule, severity and category are always set) or, on another label,
// accepts alerts that lack it. An accepted silence must spare some alert.
func TestSilenceThatWouldMuteEveryAlertIsRefused(t *testing.T) {
	alert := func(rule, severity, category string, labels map[string]string) map[string]string {
		return alertLabels(detect.Alert{Rule: rule, Severity: severity, Category: category, Labels: labels})
	}
	m := func(name string, op MatchOp, value string) Matcher { return Matcher{Name: name, Op: op, Value: value} }
	errorSpike := alert("error_spike", "high", "availability", map[string]string{"service": "api"})
	bruteForce := alert("brute_force_user", "high", "brute_force", map[string]string{"user": "admin"})
	longest := alert("r"+strings.Repeat("x", 63), "low", "brute_force", nil)
	cases := []struct {
		name     string
		matchers []Matcher
		spares   map[string]string // nil: the silence must be refused
		complex  bool              // the refusal names a regular expression too complex to check
	}{
		{name: "rule matches anything", matchers: []Matcher{m("rule", OpRegex, ".*")}},
		{name: "rule is never empty", matchers: []Matcher{m("rule", OpRegex, ".+")}},
		{name: "rule not empty", matchers: []Matcher{m("rule", OpNotEqual, "")}},
		{name: "rule not matching empty", matchers: []Matcher{m("rule", OpNotRegex, "")}},
		{name: "rule not matching ^$", matchers: []Matcher{m("rule", OpNotRegex, "^$")}},
		{name: "rule names' own alphabet", matchers: []Matcher{m("rule", OpRegex, "[a-z_0-9]+")}},
		{name: "rule names start with a letter", matchers: []Matcher{m("rule", OpRegex, "[a-z].*")}},
		{name: "rule case-insensitive", matchers: []Matcher{m("rule", OpRegex, "(?i)[A-Z][A-Z0-9_]*")}},
		{name: "rule names have no dash", matchers: []Matcher{m("rule", OpNotRegex, ".*-.*")}},
		{name: "rule names have no newline", matchers: []Matcher{m("rule", OpRegex, "(?-s:.*)")}},
		{name: "rule names start at a word boundary", matchers: []Matcher{m("rule", OpRegex, `\b.*`)}},
		{name: "rule alternation with anything", matchers: []Matcher{m("rule", OpRegex, "(?:.*|x)")}},
		{name: "severity never empty", matchers: []Matcher{m("severity", OpNotRegex, "^$")}},
		{name: "severity anything", matchers: []Matcher{m("severity", OpRegex, ".*")}},
		{name: "every severity listed", matchers: []Matcher{m("severity", OpRegex, "info|low|medium|high|critical")}},
		{name: "every severity, other case", matchers: []Matcher{m("severity", OpRegex, "(?i)INFO|LOW|Medium|high|critical")}},
		{name: "severity not a typo", matchers: []Matcher{m("severity", OpNotEqual, "hgh")}},
		{name: "severity not made up", matchers: []Matcher{m("severity", OpNotRegex, "urgent|p1")}},
		{name: "category not empty", matchers: []Matcher{m("category", OpNotEqual, "")}},
		{name: "category never empty", matchers: []Matcher{m("category", OpRegex, ".+")}},
		{name: "category never blank", matchers: []Matcher{m("category", OpNotRegex, `\s*`)}},
		{name: "category has a non-space", matchers: []Matcher{m("category", OpRegex, `.*\S.*`)}},
		{name: "all three", matchers: []Matcher{m("rule", OpRegex, ".+"), m("severity", OpNotRegex, "^$"), m("category", OpRegex, ".*")}},
		{name: "label anything", matchers: []Matcher{m("user", OpRegex, ".*")}},
		{name: "label not one value mutes alerts without it", matchers: []Matcher{m("user", OpNotEqual, "x")}},
		{name: "rule not empty and a negative label", matchers: []Matcher{m("rule", OpNotEqual, ""), m("user", OpNotRegex, "admin")}},
		{name: "too complex alone", matchers: []Matcher{m("rule", OpRegex, "(?:.*|(a|b)*a(a|b){15})")}, complex: true},

		{name: "one rule", matchers: []Matcher{m("rule", OpEqual, "brute_force_user")}, spares: errorSpike},
		{name: "rules by prefix", matchers: []Matcher{m("rule", OpRegex, "brute_force_.*")}, spares: errorSpike},
		{name: "all rules but one", matchers: []Matcher{m("rule", OpNotEqual, "error_spike")}, spares: errorSpike},
		{name: "all rules but a prefix", matchers: []Matcher{m("rule", OpNotRegex, "error_.*")}, spares: errorSpike},
		{name: "rule names up to 63 characters", matchers: []Matcher{m("rule", OpRegex, "[a-z][a-z0-9_]{0,62}")}, spares: longest},
		{name: "rule names of letters only", matchers: []Matcher{m("rule", OpRegex, "[a-z]+")}, spares: bruteForce},
		{name: "one severity", matchers: []Matcher{m("severity", OpEqual, "critical")}, spares: bruteForce},
		{name: "all severities but info", matchers: []Matcher{m("severity", OpNotEqual, "info")}, spares: alert("x", "info", "c", nil)},
		{name: "some severities", matchers: []Matcher{m("severity", OpRegex, "low|medium|high")}, spares: alert("x", "critical", "c", nil)},
		{name: "not these severities, other case", matchers: []Matcher{m("severity", OpNotRegex, "(?i)HIGH")}, spares: bruteForce},
		{name: "one category", matchers: []Matcher{m("category", OpEqual, "brute_force")}, spares: errorSpike},
		{name: "all categories but one", matchers: []Matcher{m("category", OpNotEqual, "availability")}, spares: errorSpike},
		{name: "one user", matchers: []Matcher{m("user", OpEqual, "admin")}, spares: errorSpike},
		{name: "user present", matchers: []Matcher{m("user", OpNotRegex, "")}, spares: errorSpike},
		{name: "user not empty", matchers: []Matcher{m("user", OpRegex, ".+")}, spares: errorSpike},
		{name: "anything plus one user", matchers: []Matcher{m("rule", OpRegex, ".*"), m("user", OpEqual, "admin")}, spares: errorSpike},
		{name: "too complex with a narrow one", matchers: []Matcher{m("rule", OpRegex, "(?:.*|(a|b)*a(a|b){15})"), m("severity", OpEqual, "critical")}, spares: bruteForce},
	}
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := Silence{Matchers: tc.matchers, EndsAt: now.Add(time.Hour), CreatedBy: "alice", Comment: "test"}
			err := s.validateNew(now)
			if tc.spares == nil {
				if err == nil || !strings.Contains(err.Error(), "would mute every alert") {
					t.Fatalf("validateNew = %v, want the silence refused as muting every alert", err)
				}
				if tc.complex != strings.Contains(err.Error(), "too complex") {
					t.Errorf("error %q: mentions complexity = %v, want %v", err, !tc.complex, tc.complex)
				}
				return
			}
			if err != nil {
				t.Fatalf("validateNew: %v", err)
			}
			if s.matches(tc.spares) {
				t.Errorf("silence matches %v, the alert it should spare", tc.spares)
			}
		})
	}
}

// TestLabelDomainsFollowDetect ties labelDomain to what detect accepts: a
// rule with a value outside the domain must be refused by detect, one inside
// accepted.
func TestLabelDomainsFollowDetect(t *testing.T) {
	rule := func(name, severity, category string) string {
		return fmt.Sprintf("rules:\n  - name: %q\n    severity: %q\n    category: %q\n    match: status == 401\n    group_by: [user]\n    threshold: {count: 5, window: 1m}\n", name, severity, category)
	}
	cases := []struct {
		label, value string
		doc          string
	}{
		{"rule", "a", rule("a", "high", "c")},
		{"rule", "r" + strings.Repeat("x", 63), rule("r"+strings.Repeat("x", 63), "high", "c")},
		{"rule", "r" + strings.Repeat("x", 64), rule("r"+strings.Repeat("x", 64), "high", "c")},
		{"rule", "Brute", rule("Brute", "high", "c")},
		{"rule", "1a", rule("1a", "high", "c")},
		{"rule", "a-b", rule("a-b", "high", "c")},
		{"rule", "", rule("", "high", "c")},
		{"severity", "hgh", rule("a", "hgh", "c")},
		{"severity", "High", rule("a", "High", "c")},
		{"category", " ", rule("a", "high", " ")},
		{"category", "\u00a0\t", rule("a", "high", "\u00a0\t")},
		{"category", "\u200b", rule("a", "high", "\u200b")},
		{"category", "brute force", rule("a", "high", "brute force")},
	}
	for _, s := range detect.Severities {
		cases = append(cases, struct{ label, value, doc string }{"severity", s, rule("a", s, "c")})
	}
	for _, tc := range cases {
		inDomain := regexp.MustCompile(anchored(labelDomain(tc.label))).MatchString(tc.value)
		_, err := detect.ParseRules("test.yaml", []byte(tc.doc))
		if accepted := err == nil; accepted != inDomain {
			t.Errorf("%s %q: in labelDomain = %v, detect accepts = %v (%v)", tc.label, tc.value, inDomain, accepted, err)
		}
	}
}
