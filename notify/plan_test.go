package notify

import (
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/vigil-sec/vigil/detect"
)

func TestMakePlan(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 5, 0, 0, time.UTC)
	firingRec := func(notified ...string) *alertRecord {
		return &alertRecord{Alert: testAlert("fp", detect.TransitionFiring), Firing: true, Episode: 3, Notified: notified}
	}
	resolvedRec := &alertRecord{Alert: testAlert("fp", detect.TransitionResolved), Episode: 3, Notified: []string{"a"}}
	type want struct {
		outcome       string
		kinds         []string // "<receiver>:<transition>"
		firing        bool
		episode       int
		notified      []string
		noRecord      bool
		startsAtShift time.Duration
	}
	cases := []struct {
		name     string
		prev     *alertRecord
		alert    detect.Alert
		routed   []string
		silenced []string
		want     want
	}{
		{"first firing", nil, testAlert("fp", detect.TransitionFiring), []string{"a", "b"}, nil,
			want{outcome: outcomeNotified, kinds: []string{"a:firing", "b:firing"}, firing: true, episode: 1, notified: []string{"a", "b"}}},
		{"firing already announced", firingRec("a"), testAlert("fp", detect.TransitionFiring), []string{"a"}, nil,
			want{outcome: outcomeDuplicate, noRecord: true}},
		{"firing already announced tells receivers added since", firingRec("a"), testAlert("fp", detect.TransitionFiring), []string{"a", "b"}, nil,
			want{outcome: outcomeDuplicate, kinds: []string{"b:firing"}, firing: true, episode: 3, notified: []string{"a", "b"}}},
		{"firing of a silenced episode tells nobody while silenced", firingRec(), testAlert("fp", detect.TransitionFiring), []string{"a"}, []string{"s1"},
			want{outcome: outcomeDuplicate, noRecord: true}},
		{"firing of a silenced episode after the silence", firingRec(), testAlert("fp", detect.TransitionFiring), []string{"a"}, nil,
			want{outcome: outcomeDuplicate, kinds: []string{"a:firing"}, firing: true, episode: 3, notified: []string{"a"}}},
		{"repeat tells new receivers it fires", firingRec("a"), testAlert("fp", detect.TransitionRepeat), []string{"a", "b"}, nil,
			want{outcome: outcomeNotified, kinds: []string{"a:repeat", "b:firing"}, firing: true, episode: 3, notified: []string{"a", "b"}}},
		{"repeat of unknown alert starts an episode", resolvedRec, testAlert("fp", detect.TransitionRepeat), []string{"a"}, nil,
			want{outcome: outcomeNotified, kinds: []string{"a:firing"}, firing: true, episode: 4, notified: []string{"a"}}},
		{"silenced firing is recorded, not delivered", nil, testAlert("fp", detect.TransitionFiring), []string{"a"}, []string{"s1"},
			want{outcome: outcomeSilenced, firing: true, episode: 1}},
		{"unrouted", nil, testAlert("fp", detect.TransitionFiring), nil, nil,
			want{outcome: outcomeUnrouted, firing: true, episode: 1}},
		{"resolve goes to those told, configured ones only", firingRec("a", "gone"), testAlert("fp", detect.TransitionResolved), []string{"b"}, nil,
			want{outcome: outcomeNotified, kinds: []string{"a:resolved"}, episode: 3, notified: []string{"a", "gone"}}},
		{"resolve of a silenced episode reaches nobody", firingRec(), testAlert("fp", detect.TransitionResolved), []string{"a"}, nil,
			want{outcome: outcomeUnrouted, episode: 3}},
		{"resolve of a resolved alert", resolvedRec, testAlert("fp", detect.TransitionResolved), []string{"a"}, nil,
			want{outcome: outcomeDuplicate, noRecord: true}},
		{"resolve of an unknown alert", nil, testAlert("fp", detect.TransitionResolved), []string{"a"}, nil,
			want{outcome: outcomeDuplicate, noRecord: true}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := makePlan(planInput{
				prev: tc.prev, alert: tc.alert, now: now, routed: tc.routed, silencedBy: tc.silenced,
				configured: func(n string) bool { return n != "gone" },
			})
			if p.outcome != tc.want.outcome {
				t.Errorf("outcome = %s, want %s", p.outcome, tc.want.outcome)
			}
			var kinds []string
			for _, d := range p.deliveries {
				kinds = append(kinds, d.Receiver+":"+string(d.Alert.Transition))
				if d.Episode != tc.want.episode || d.Created != now || d.ID == "" {
					t.Errorf("delivery %+v: want episode %d, created now, an id", d, tc.want.episode)
				}
			}
			if !slices.Equal(kinds, tc.want.kinds) {
				t.Errorf("deliveries = %v, want %v", kinds, tc.want.kinds)
			}
			if tc.want.noRecord {
				if p.record != nil {
					t.Errorf("record = %+v, want state left alone", p.record)
				}
				return
			}
			if p.record == nil {
				t.Fatalf("no record, want firing %v episode %d notified %v", tc.want.firing, tc.want.episode, tc.want.notified)
			}
			if p.record.Firing != tc.want.firing || p.record.Episode != tc.want.episode || !slices.Equal(p.record.Notified, tc.want.notified) {
				t.Errorf("record = firing %v episode %d notified %v; want %v %d %v",
					p.record.Firing, p.record.Episode, p.record.Notified, tc.want.firing, tc.want.episode, tc.want.notified)
			}
			if tc.prev != nil && !p.record.Alert.StartsAt.Equal(tc.prev.Alert.StartsAt) {
				t.Errorf("starts_at = %s, want the episode's %s", p.record.Alert.StartsAt, tc.prev.Alert.StartsAt)
			}
		})
	}
}

func TestDeliveryIDs(t *testing.T) {
	base := deliveryID("fp", 1, detect.TransitionFiring, 0, "a")
	if again := deliveryID("fp", 1, detect.TransitionFiring, 0, "a"); again != base {
		t.Errorf("same inputs give %s and %s", base, again)
	}
	for name, other := range map[string]string{
		"fingerprint": deliveryID("fp2", 1, detect.TransitionFiring, 0, "a"),
		"episode":     deliveryID("fp", 2, detect.TransitionFiring, 0, "a"),
		"transition":  deliveryID("fp", 1, detect.TransitionResolved, 0, "a"),
		"repeat seq":  deliveryID("fp", 1, detect.TransitionFiring, 1, "a"),
		"receiver":    deliveryID("fp", 1, detect.TransitionFiring, 0, "b"),
	} {
		if other == base {
			t.Errorf("changing the %s does not change the id", name)
		}
	}
}

// TestDeliveryIDIgnoresWhatOwnersMayDisagreeOn: two members that both
// saw an alert fire (one live, one replaying after a takeover) may set its
// start a moment apart; they enqueue one delivery, not two.
func TestDeliveryIDIgnoresWhatOwnersMayDisagreeOn(t *testing.T) {
	rec := alertRecord{Episode: 3}
	a := testAlert("fp", detect.TransitionFiring)
	b := a
	b.StartsAt = a.StartsAt.Add(1500 * time.Millisecond)
	if x, y := newDelivery(&rec, a, detect.TransitionFiring, "hook", a.StartsAt), newDelivery(&rec, b, detect.TransitionFiring, "hook", b.StartsAt); x.ID != y.ID {
		t.Errorf("one episode's firing gets ids %s and %s for starts %s apart", x.ID, y.ID, b.StartsAt.Sub(a.StartsAt))
	}
}

func TestPerIncidentReceiversHearOfAnIncidentOnce(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 5, 0, 0, time.UTC)
	alert := func(tr detect.Transition, incidentSeverity string) detect.Alert {
		a := testAlert("fp", tr)
		a.IncidentID, a.IncidentSeverity = "inc1", incidentSeverity
		return a
	}
	firingRec := &alertRecord{Alert: alert(detect.TransitionFiring, "high"), Firing: true, Episode: 1, Notified: []string{"slack"}}
	cases := []struct {
		name    string
		prev    *alertRecord
		alert   detect.Alert
		told    map[string]string
		outcome string
		kinds   []string
		want    map[string]string // plan.told
	}{
		{"first alert of the incident pages", nil, alert(detect.TransitionFiring, "high"), nil,
			outcomeNotified, []string{"slack:firing", "pager:firing"}, map[string]string{"pager": "high"}},
		{"another alert at the same severity is folded", nil, alert(detect.TransitionFiring, "high"), map[string]string{"pager": "high"},
			outcomeNotified, []string{"slack:firing"}, nil},
		{"an alert raising the severity pages again", nil, alert(detect.TransitionFiring, "critical"), map[string]string{"pager": "high"},
			outcomeNotified, []string{"slack:firing", "pager:firing"}, map[string]string{"pager": "critical"}},
		{"a lower severity is folded", nil, alert(detect.TransitionFiring, "medium"), map[string]string{"pager": "high"},
			outcomeNotified, []string{"slack:firing"}, nil},
		{"a folded alert's repeat stays folded", firingRec, alert(detect.TransitionRepeat, "high"), map[string]string{"pager": "high"},
			outcomeNotified, []string{"slack:repeat"}, nil},
		{"a folded alert's repeat pages once the incident escalated", firingRec, alert(detect.TransitionRepeat, "critical"), map[string]string{"pager": "high"},
			outcomeNotified, []string{"slack:repeat", "pager:firing"}, map[string]string{"pager": "critical"}},
		{"catch-up folds too", firingRec, alert(detect.TransitionFiring, "high"), map[string]string{"pager": "high"},
			outcomeDuplicate, nil, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := makePlan(planInput{
				prev: tc.prev, alert: tc.alert, now: now, routed: []string{"slack", "pager"},
				perIncident: map[string]bool{"pager": true}, told: tc.told,
				configured: func(string) bool { return true },
			})
			var kinds []string
			for _, d := range p.deliveries {
				kinds = append(kinds, d.Receiver+":"+string(d.Alert.Transition))
			}
			if p.outcome != tc.outcome || !slices.Equal(kinds, tc.kinds) || !maps.Equal(p.told, tc.want) {
				t.Errorf("outcome %s, deliveries %v, told %v; want %s, %v, %v", p.outcome, kinds, p.told, tc.outcome, tc.kinds, tc.want)
			}
		})
	}
	// With only the pager routed, a folded alert is neither notified nor
	// unrouted.
	p := makePlan(planInput{alert: alert(detect.TransitionFiring, "high"), now: now, routed: []string{"pager"},
		perIncident: map[string]bool{"pager": true}, told: map[string]string{"pager": "high"}, configured: func(string) bool { return true }})
	if p.outcome != outcomeFolded || len(p.deliveries) != 0 || p.record == nil || !p.record.Firing {
		t.Errorf("plan = %+v, want outcome folded, no delivery, the alert recorded firing", p)
	}
}

func TestAnEpisodeKeepsItsIncident(t *testing.T) {
	prev := &alertRecord{Alert: testAlert("fp", detect.TransitionFiring), Firing: true, Episode: 1}
	prev.Alert.IncidentID, prev.Alert.IncidentSeverity = "inc1", "high"
	later := testAlert("fp", detect.TransitionResolved)
	later.IncidentID, later.IncidentSeverity = "inc2", "critical"
	if got := episodeAlert(prev, later); got.IncidentID != "inc1" || got.IncidentSeverity != "high" {
		t.Errorf("resolve in another incident = %s/%s, want the episode's inc1/high", got.IncidentID, got.IncidentSeverity)
	}
	later.IncidentID = "inc1"
	if got := episodeAlert(prev, later); got.IncidentSeverity != "critical" {
		t.Errorf("incident severity = %s, want the incident's current critical", got.IncidentSeverity)
	}
	prev.Firing = false
	later.IncidentID = "inc2"
	if got := episodeAlert(prev, later); got.IncidentID != "inc2" {
		t.Errorf("a new episode's incident = %s, want inc2", got.IncidentID)
	}
}
