package notify

import (
	"strings"
	"testing"
	"time"
)

func TestSilenceMatching(t *testing.T) {
	labels := map[string]string{"rule": "auth_bruteforce", "severity": "high", "user": "admin", "path": "/login"}
	// A silence needs one matcher that does not match the empty value.
	rule := Matcher{Name: "rule", Op: OpEqual, Value: "auth_bruteforce"}
	cases := []struct {
		name     string
		matchers []Matcher
		want     bool
	}{
		{"equal", []Matcher{{Name: "rule", Op: OpEqual, Value: "auth_bruteforce"}}, true},
		{"equal other value", []Matcher{{Name: "rule", Op: OpEqual, Value: "error_spike"}}, false},
		{"not equal", []Matcher{rule, {Name: "user", Op: OpNotEqual, Value: "bob"}}, true},
		{"regex whole value", []Matcher{{Name: "path", Op: OpRegex, Value: "/log.*"}}, true},
		{"regex is anchored", []Matcher{{Name: "path", Op: OpRegex, Value: "log"}}, false},
		{"negative regex", []Matcher{rule, {Name: "user", Op: OpNotRegex, Value: "adm.*"}}, false},
		{"all matchers must match", []Matcher{{Name: "rule", Op: OpEqual, Value: "auth_bruteforce"}, {Name: "user", Op: OpEqual, Value: "bob"}}, false},
		{"missing label is empty", []Matcher{{Name: "rule", Op: OpEqual, Value: "auth_bruteforce"}, {Name: "tenant", Op: OpEqual, Value: ""}}, true},
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
			Matchers:  []Matcher{{Name: "rule", Op: OpEqual, Value: "auth_bruteforce"}},
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
