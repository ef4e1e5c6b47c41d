package notify

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"
)

// MatchOp is how a silence matcher compares a label value.
type MatchOp string

// Matcher operators.
const (
	OpEqual     MatchOp = "="
	OpNotEqual  MatchOp = "!="
	OpRegex     MatchOp = "=~"
	OpNotRegex  MatchOp = "!~"
	maxMatchers         = 32
)

// Matcher compares one label: the alert's labels plus rule, severity and
// category. A missing label has the empty value. Regular expressions match
// the whole value, and '.' matches any character, newlines included.
type Matcher struct {
	Name  string  `json:"name"`
	Op    MatchOp `json:"op"`
	Value string  `json:"value"`

	re *regexp.Regexp // compiled by validate
}

// SilenceStatus is where a silence is in its life.
type SilenceStatus string

// Silence statuses.
const (
	SilencePending SilenceStatus = "pending"
	SilenceActive  SilenceStatus = "active"
	SilenceExpired SilenceStatus = "expired"
)

// Silence mutes alerts whose labels match all its matchers between StartsAt
// and EndsAt. A silenced alert is recorded and counted, not delivered.
type Silence struct {
	// ID is assigned by CreateSilence.
	ID        string    `json:"id"`
	Matchers  []Matcher `json:"matchers"`
	StartsAt  time.Time `json:"starts_at"`
	EndsAt    time.Time `json:"ends_at"`
	CreatedBy string    `json:"created_by"`
	Comment   string    `json:"comment"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
	// Status is computed when the silence is read; it is ignored on input.
	Status SilenceStatus `json:"status"`
}

// ErrSilenceNotFound is returned for an unknown silence id.
var ErrSilenceNotFound = errors.New("silence not found")

// ValidationError is a silence that cannot be accepted; its message says
// what to change. The admin API answers it with 400.
type ValidationError struct{ Err error }

func (e *ValidationError) Error() string { return "invalid silence: " + e.Err.Error() }

// Unwrap returns the underlying error.
func (e *ValidationError) Unwrap() error { return e.Err }

// statusAt returns the silence's status at now.
func (s *Silence) statusAt(now time.Time) SilenceStatus {
	switch {
	case now.Before(s.StartsAt):
		return SilencePending
	case now.Before(s.EndsAt):
		return SilenceActive
	default:
		return SilenceExpired
	}
}

// matches reports whether every matcher matches labels. The silence must
// have been validated (compiled).
func (s *Silence) matches(labels map[string]string) bool {
	for i := range s.Matchers {
		if !s.Matchers[i].matches(labels[s.Matchers[i].Name]) {
			return false
		}
	}
	return true
}

func (m *Matcher) matches(v string) bool {
	switch m.Op {
	case OpEqual:
		return v == m.Value
	case OpNotEqual:
		return v != m.Value
	case OpRegex:
		return m.re.MatchString(v)
	case OpNotRegex:
		return !m.re.MatchString(v)
	}
	return false
}

// compile checks the matcher and prepares its regular expression.
func (m *Matcher) compile() error {
	if !labelNameRE.MatchString(m.Name) {
		return fmt.Errorf("matcher name %q is not a label name (letters, digits and '_')", m.Name)
	}
	if len(m.Value) > 1024 {
		return fmt.Errorf("matcher %s: value is longer than 1024 bytes", m.Name)
	}
	switch m.Op {
	case OpEqual, OpNotEqual:
	case OpRegex, OpNotRegex:
		re, err := regexp.Compile(anchored(m.Value))
		if err != nil {
			return fmt.Errorf("matcher %s: %w", m.Name, err)
		}
		m.re = re
	default:
		return fmt.Errorf("matcher %s: op %q is not one of =, !=, =~, !~", m.Name, m.Op)
	}
	return nil
}

// narrows reports whether the matcher keeps the silence from muting every
// alert. On rule, severity and category, which every alert has, it must
// refuse some value the label can have (see labelDomain); deciding that may
// fail with errTooComplex. On any other label it must refuse the empty
// value: a label some rules lack, whose missing value a matcher accepting ""
// accepts, so it would mute every alert of those rules.
func (m *Matcher) narrows() (bool, error) {
	switch m.Name {
	case "rule", "severity", "category":
		pattern := m.Value
		if m.Op == OpEqual || m.Op == OpNotEqual {
			pattern = regexp.QuoteMeta(m.Value)
		}
		all, err := domainCheck(m.Name, pattern, m.Op == OpEqual || m.Op == OpRegex)
		return err == nil && !all, err
	default:
		return !m.matches(""), nil
	}
}

// compile checks the number of matchers and compiles each.
func (s *Silence) compile() error {
	if len(s.Matchers) == 0 || len(s.Matchers) > maxMatchers {
		return fmt.Errorf(`give 1 to %d matchers, e.g. {"name": "rule", "op": "=", "value": "brute_force_source_ip"}`, maxMatchers)
	}
	for i := range s.Matchers {
		if err := s.Matchers[i].compile(); err != nil {
			return err
		}
	}
	return nil
}

// checkNotMuteAll refuses a silence that would mute every alert: it needs
// one matcher that narrows it. A matcher whose regular expression is too
// complex to decide does not count as narrowing.
func (s *Silence) checkNotMuteAll() error {
	var undecided []string
	for i := range s.Matchers {
		ok, err := s.Matchers[i].narrows()
		if err != nil {
			undecided = append(undecided, s.Matchers[i].Name)
		}
		if ok {
			return nil
		}
	}
	msg := "the silence would mute every alert: each matcher accepts every value of its label (rule, severity, category) or accepts alerts without its label"
	if len(undecided) > 0 {
		msg += fmt.Sprintf(" (the regular expression of %s is too complex to check otherwise)", strings.Join(undecided, ", "))
	}
	return errors.New(msg + `; add a matcher that names what to mute, e.g. {"name": "rule", "op": "=", "value": "brute_force_source_ip"}`)
}

// validateNew checks a silence submitted for creation at now and fills in
// its defaults.
func (s *Silence) validateNew(now time.Time) error {
	if s.ID != "" {
		return errors.New("id is assigned by the server; leave it out")
	}
	if err := s.compile(); err != nil {
		return err
	}
	if err := s.checkNotMuteAll(); err != nil {
		return err
	}
	if s.StartsAt.IsZero() {
		s.StartsAt = now
	}
	switch {
	case s.EndsAt.IsZero():
		return errors.New("ends_at is required (RFC 3339, e.g. 2026-01-02T15:04:05Z)")
	case !s.EndsAt.After(s.StartsAt):
		return errors.New("ends_at must be after starts_at")
	case !s.EndsAt.After(now):
		return errors.New("ends_at is in the past; the silence would never be active")
	}
	if s.CreatedBy == "" || utf8.RuneCountInString(s.CreatedBy) > 256 {
		return errors.New("created_by is required (who is silencing, at most 256 characters)")
	}
	if s.Comment == "" || utf8.RuneCountInString(s.Comment) > 1024 {
		return errors.New("comment is required (why, e.g. a ticket, at most 1024 characters)")
	}
	return nil
}
