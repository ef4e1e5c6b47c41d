package notify

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/vigil-sec/vigil/detect"
)

// silenceCacheTTL bounds how stale the silences Notify applies may be when
// another Vigil instance changed them; changes made through this Notifier
// apply at once.
const silenceCacheTTL = 2 * time.Second

var silenceIDRE = regexp.MustCompile(`^[0-9a-f]{32}$`)

// silenceStore keeps silences in VIGIL_SILENCES, with a short-lived cache
// for Notify.
type silenceStore struct {
	kv  jetstream.KeyValue
	now func() time.Time
	// rules returns the loaded rules a new silence is judged against; nil
	// or empty: only against every alert possible (checkNotMuteAll).
	rules func() []*detect.Rule

	// createMu serialises create, so that two silences created at once
	// are judged together.
	createMu sync.Mutex

	mu       sync.Mutex
	cache    []Silence
	loadedAt time.Time
}

// all returns every stored silence, compiled, with its status.
func (s *silenceStore) all(ctx context.Context) ([]Silence, error) {
	kl, err := s.kv.ListKeys(ctx)
	if err != nil {
		return nil, fmt.Errorf("list silences: %w", err)
	}
	defer kl.Stop()
	var keys []string
	for k := range kl.Keys() {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	keys = slices.Compact(keys)
	now := s.now()
	out := make([]Silence, 0, len(keys))
	for _, k := range keys {
		sil, _, err := s.get(ctx, k)
		if errors.Is(err, ErrSilenceNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		sil.Status = sil.statusAt(now)
		out = append(out, sil)
	}
	slices.SortFunc(out, func(a, b Silence) int { return b.CreatedAt.Compare(a.CreatedAt) })
	return out, nil
}

func (s *silenceStore) get(ctx context.Context, id string) (Silence, uint64, error) {
	e, err := s.kv.Get(ctx, id)
	if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted) {
		return Silence{}, 0, ErrSilenceNotFound
	}
	if err != nil {
		return Silence{}, 0, fmt.Errorf("read silence: %w", err)
	}
	var sil Silence
	if err := json.Unmarshal(e.Value(), &sil); err != nil {
		return Silence{}, 0, fmt.Errorf("decode silence %s: %w", id, err)
	}
	if err := sil.compile(); err != nil {
		return Silence{}, 0, fmt.Errorf("stored silence %s: %w", id, err)
	}
	return sil, e.Revision(), nil
}

// matching returns the ids of active silences that match labels.
func (s *silenceStore) matching(ctx context.Context, labels map[string]string) ([]string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	if s.cache == nil || now.Sub(s.loadedAt) > silenceCacheTTL || now.Before(s.loadedAt) {
		all, err := s.all(ctx)
		if err != nil {
			return nil, err
		}
		s.cache, s.loadedAt = all, now
	}
	var ids []string
	for i := range s.cache {
		sil := &s.cache[i]
		if sil.statusAt(now) == SilenceActive && sil.matches(labels) {
			ids = append(ids, sil.ID)
		}
	}
	return ids, nil
}

func (s *silenceStore) invalidate() {
	s.mu.Lock()
	s.cache = nil
	s.mu.Unlock()
}

func (s *silenceStore) create(ctx context.Context, sil Silence) (Silence, error) {
	s.createMu.Lock()
	defer s.createMu.Unlock()
	now := s.now()
	if err := sil.validateNew(now); err != nil {
		return Silence{}, &ValidationError{Err: err}
	}
	if err := s.checkLoaded(ctx, &sil, now); err != nil {
		return Silence{}, err
	}
	sil.ID = newSilenceID()
	sil.CreatedAt, sil.UpdatedAt = now, now
	sil.Status = sil.statusAt(now)
	b, err := json.Marshal(sil)
	if err != nil {
		return Silence{}, fmt.Errorf("encode silence: %w", err)
	}
	if _, err := s.kv.Create(ctx, sil.ID, b); err != nil {
		return Silence{}, fmt.Errorf("store silence: %w", err)
	}
	s.invalidate()
	return sil, nil
}

// checkLoaded judges sil against the loaded rules and the silences stored.
func (s *silenceStore) checkLoaded(ctx context.Context, sil *Silence, now time.Time) error {
	if s.rules == nil {
		return nil
	}
	rules := s.rules()
	if len(rules) == 0 {
		return nil
	}
	others, err := s.all(ctx)
	if err != nil {
		return err
	}
	if err := sil.checkNotMuteLoaded(rules, others, now); err != nil {
		return &ValidationError{Err: err}
	}
	return nil
}

// expire ends a silence now. Expiring an expired silence is not an error.
func (s *silenceStore) expire(ctx context.Context, id string) error {
	if !silenceIDRE.MatchString(id) {
		return ErrSilenceNotFound
	}
	sil, rev, err := s.get(ctx, id)
	if err != nil {
		return err
	}
	now := s.now()
	if sil.statusAt(now) == SilenceExpired {
		return nil
	}
	if now.Before(sil.StartsAt) {
		sil.StartsAt = now
	}
	sil.EndsAt, sil.UpdatedAt = now, now
	b, err := json.Marshal(sil)
	if err != nil {
		return fmt.Errorf("encode silence: %w", err)
	}
	if _, err := s.kv.Update(ctx, id, b, rev); err != nil {
		return fmt.Errorf("expire silence %s: %w", id, err)
	}
	s.invalidate()
	return nil
}

// purgeExpired deletes silences that ended before cutoff.
func (s *silenceStore) purgeExpired(ctx context.Context, cutoff time.Time) (int, error) {
	all, err := s.all(ctx)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, sil := range all {
		if sil.EndsAt.Before(cutoff) {
			if err := s.kv.Purge(ctx, sil.ID); err != nil {
				return n, fmt.Errorf("purge silence %s: %w", sil.ID, err)
			}
			n++
		}
	}
	if n > 0 {
		s.invalidate()
	}
	return n, nil
}

func newSilenceID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on supported platforms
	return hex.EncodeToString(b[:])
}
