package notify

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/vigil-sec/vigil/detect"
	"github.com/vigil-sec/vigil/internal/testkit"
)

// guardRules are the loaded rules the mute-all guard is judged against:
// lintRules, with alerts of brute_force_source_ip about an address in
// known_bad raised from medium to high.
const guardRules = `lists:
  known_bad: {cidrs: [198.51.100.0/24], raise_severity: 1}
` + lintRules

// TestSilenceThatWouldMuteEveryLoadedRuleIsRefused creates silences the way
// POST /api/v1/silences does, against guardRules: refused when the silence,
// alone or with the silences in force at some moment of its life, would
// mute every alert those rules can raise; otherwise accepted, and then an
// alert of theirs is spared by every silence in force.
func TestSilenceThatWouldMuteEveryLoadedRuleIsRefused(t *testing.T) {
	loaded, err := detect.ParseRules("guard.yaml", []byte(guardRules))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	m := func(name string, op MatchOp, value string) Matcher { return Matcher{Name: name, Op: op, Value: value} }
	// sil is a silence from now+from to now+to.
	sil := func(from, to time.Duration, ms ...Matcher) Silence {
		return Silence{Matchers: ms, StartsAt: now.Add(from), EndsAt: now.Add(to), CreatedBy: "alice", Comment: "other"}
	}
	now2h := func(ms ...Matcher) Silence { return sil(0, 2*time.Hour, ms...) }
	alert := func(rule, severity, category string, labels map[string]string) map[string]string {
		return alertLabels(detect.Alert{Rule: rule, Severity: severity, Category: category, Labels: labels})
	}
	bruteForceUser := func(user string) map[string]string {
		return alert("brute_force_user", "high", "brute_force", map[string]string{"user": user})
	}
	sourceIP := alert("brute_force_source_ip", "medium", "brute_force", map[string]string{"source_ip": "192.0.2.1"})
	listedSourceIP := alert("brute_force_source_ip", "high", "brute_force", map[string]string{"source_ip": "198.51.100.7", "source_list": "known_bad"})
	errorSpike := alert("error_spike", "high", "availability", map[string]string{"service": "api"})
	outage := alert("service_outage", "critical", "availability", map[string]string{"service": "api"})

	const alone, together, already = "the silence would mute every alert the loaded rules can raise", "together with silence", "already mute every alert"
	cases := []struct {
		name   string
		others []Silence // created first, each accepted
		// unloaded: the others were created while no rules were loaded
		// (before a rules reload); they may mute everything together.
		unloaded bool
		new      Silence
		spares   map[string]string // nil: the new silence is refused
		want     []string          // in the refusal
	}{
		{name: "rule is not a rule nobody has", new: now2h(m("rule", OpNotEqual, "no_such_rule")),
			want: []string{alone, `its matcher rule != "no_such_rule" accepts all alerts of rules brute_force_source_ip, brute_force_user, error_spike, service_outage`, `"value": "brute_force_source_ip"`}},
		{name: "rule names of letters and _", new: now2h(m("rule", OpRegex, "[a-z_]+")), want: []string{alone}},
		{name: "category is not nothing", new: now2h(m("category", OpNotEqual, "nothing")), want: []string{alone}},
		{name: "every loaded category", new: now2h(m("category", OpRegex, "brute_force|availability")), want: []string{alone}},
		{name: "every loaded severity, raised ones too", new: now2h(m("severity", OpRegex, "medium|high|critical")), want: []string{alone}},
		{name: "not a severity nobody has", new: now2h(m("severity", OpNotEqual, "low")), want: []string{alone}},
		{name: "with a label no rule has, empty", new: now2h(m("rule", OpRegex, "[a-z_]+"), m("tenant", OpEqual, "")),
			want: []string{alone, `its matchers rule =~ "[a-z_]+", tenant = "" together accept all alerts`}},
		{name: "with any incident", new: now2h(m("category", OpNotEqual, "nothing"), m("incident_id", OpRegex, ".*")), want: []string{alone}},
		{name: "with an incident at least as severe", new: now2h(m("rule", OpRegex, "[a-z_]+"), m("incident_severity", OpNotRegex, "info|low")), want: []string{alone}},
		{name: "with a label every alert of a rule has, any value", new: now2h(m("rule", OpRegex, "[a-z_]+"), m("user", OpRegex, ".*")), want: []string{alone}},

		{name: "one rule left out, an active silence mutes it",
			others: []Silence{now2h(m("rule", OpNotEqual, "error_spike"))}, new: now2h(m("rule", OpEqual, "error_spike")),
			want: []string{together, `(by alice: "other"), in force now,`, "it mutes all alerts of rule error_spike, and that one mutes the rest", "DELETE /api/v1/silences/{id}"}},
		{name: "categories split",
			others: []Silence{now2h(m("category", OpEqual, "brute_force"))}, new: now2h(m("category", OpEqual, "availability")),
			want: []string{together, "error_spike, service_outage"}},
		{name: "severities split, the raised one too",
			others: []Silence{now2h(m("severity", OpEqual, "high"))}, new: now2h(m("severity", OpNotEqual, "high")),
			want: []string{together, "it mutes all alerts of rule service_outage, the medium alerts of brute_force_source_ip, and"}},
		{name: "three silences",
			others: []Silence{now2h(m("rule", OpEqual, "error_spike")), now2h(m("category", OpEqual, "brute_force"))}, new: now2h(m("severity", OpEqual, "critical")),
			want: []string{together}},
		{name: "a pending silence starts within its life",
			others: []Silence{sil(time.Hour, 3*time.Hour, m("rule", OpNotEqual, "error_spike"))}, new: now2h(m("rule", OpEqual, "error_spike")),
			want: []string{together, "in force from 2026-03-01T13:00:00Z"}},
		{name: "it starts while another is in force",
			others: []Silence{now2h(m("rule", OpNotEqual, "error_spike"))}, new: sil(time.Hour, 3*time.Hour, m("rule", OpEqual, "error_spike")),
			want: []string{together, "in force from 2026-03-01T13:00:00Z"}},
		{name: "the silences in force mute everything already", unloaded: true,
			others: []Silence{now2h(m("rule", OpNotEqual, "error_spike")), now2h(m("rule", OpEqual, "error_spike"))},
			new:    now2h(m("rule", OpEqual, "brute_force_user"), m("user", OpEqual, "admin")),
			want:   []string{"in force now, " + already, "expire those no longer needed"}},

		{name: "some severities", new: now2h(m("severity", OpRegex, "high|critical")), spares: sourceIP},
		{name: "all loaded severities but the raised one", new: now2h(m("severity", OpRegex, "medium|critical")), spares: bruteForceUser("admin")},
		{name: "all rules but one", new: now2h(m("rule", OpNotEqual, "error_spike")), spares: errorSpike},
		{name: "all categories but one", new: now2h(m("category", OpNotEqual, "availability")), spares: outage},
		{name: "all rules, but not one user", new: now2h(m("rule", OpRegex, "[a-z_]+"), m("user", OpNotEqual, "bob")), spares: bruteForceUser("bob")},
		{name: "all rules, in critical incidents", new: now2h(m("rule", OpRegex, "[a-z_]+"), m("incident_severity", OpEqual, "critical")), spares: errorSpike},
		{name: "all categories, one user", new: now2h(m("category", OpNotEqual, "nothing"), m("user", OpRegex, "adm.*")), spares: errorSpike},
		{name: "the rest of a rule but its raised alerts",
			others: []Silence{now2h(m("rule", OpNotEqual, "brute_force_source_ip"))}, new: now2h(m("rule", OpEqual, "brute_force_source_ip"), m("severity", OpEqual, "medium")),
			spares: listedSourceIP},
		{name: "the other silence ends before it starts",
			others: []Silence{sil(0, time.Hour, m("rule", OpNotEqual, "error_spike"))}, new: sil(time.Hour, 2*time.Hour, m("rule", OpEqual, "error_spike")),
			spares: outage},
		{name: "the other silence starts when it ends",
			others: []Silence{sil(2*time.Hour, 3*time.Hour, m("rule", OpNotEqual, "error_spike"))}, new: now2h(m("rule", OpEqual, "error_spike")),
			spares: outage},
	}
	srv := testkit.RunNATS(t)
	_, js := testkit.Connect(t, srv)
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			kv, err := js.CreateKeyValue(t.Context(), jetstream.KeyValueConfig{Bucket: fmt.Sprintf("GUARD_%d", i)})
			if err != nil {
				t.Fatal(err)
			}
			var rules []*detect.Rule
			if !tc.unloaded {
				rules = loaded
			}
			store := &silenceStore{kv: kv, now: func() time.Time { return now }, rules: func() []*detect.Rule { return rules }}
			var inForce []Silence
			for _, o := range tc.others {
				created, err := store.create(t.Context(), o)
				if err != nil {
					t.Fatalf("other silence %v refused: %v", o.Matchers, err)
				}
				if created.statusAt(tc.new.StartsAt) == SilenceActive {
					inForce = append(inForce, created)
				}
			}
			rules = loaded
			created, err := store.create(t.Context(), tc.new)
			if tc.spares == nil {
				if _, ok := errors.AsType[*ValidationError](err); !ok {
					t.Fatalf("create = %v, want the silence refused as a ValidationError", err)
				}
				for _, w := range append(tc.want, "silence") {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error %q\nlacks %q", err, w)
					}
				}
				return
			}
			if err != nil {
				t.Fatalf("create: %v", err)
			}
			for _, s := range append(inForce, created) {
				if s.matches(tc.spares) {
					t.Errorf("silence %v matches %v, the alert that should be spared", s.Matchers, tc.spares)
				}
			}
		})
	}
}
