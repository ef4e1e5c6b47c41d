package notify

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/vigil-sec/vigil/detect"
	"github.com/vigil-sec/vigil/notify/receiver"
)

// alertRecord is the state of one alert (one fingerprint), kept in
// VIGIL_ALERTS under alert.<key>.
type alertRecord struct {
	// Alert is the latest transition seen, with the episode's StartsAt.
	Alert  detect.Alert `json:"alert"`
	Firing bool         `json:"firing"`
	// Episode counts firing episodes of this fingerprint; it makes the
	// delivery ids of a new episode differ from the last one's.
	Episode int `json:"episode"`
	// Repeats counts repeat transitions in this episode.
	Repeats int `json:"repeats"`
	// Notified lists the receivers told about this episode; they, and only
	// they, get its resolve.
	Notified []string `json:"notified"`
	// SilencedBy lists the silences that muted the latest transition.
	SilencedBy   []string  `json:"silenced_by,omitempty"`
	LastNotified time.Time `json:"last_notified,omitzero"`
	UpdatedAt    time.Time `json:"updated_at"`
}

// receiverRecord is what one receiver has been told about one alert, under
// recv.<key>.<receiver>.
type receiverRecord struct {
	Episode int `json:"episode"`
	// Ref is the receiver's message for the episode (Slack channel and ts).
	Ref receiver.Ref `json:"ref,omitzero"`
	// LastID is the last delivery accepted, to skip a redelivery of it.
	LastID string `json:"last_id"`
	// Resolved is set once the episode's resolve was accepted.
	Resolved  bool      `json:"resolved"`
	UpdatedAt time.Time `json:"updated_at"`
}

var plainKeyRE = regexp.MustCompile(`^[A-Za-z0-9_-]{1,100}$`)

// stateKey maps a fingerprint to a key token: itself when it is a safe
// token, else "=" and a hash (a fingerprint never contains '=').
func stateKey(fingerprint string) string {
	if plainKeyRE.MatchString(fingerprint) {
		return fingerprint
	}
	sum := sha256.Sum256([]byte(fingerprint))
	return "=" + hex.EncodeToString(sum[:20])
}

func alertKey(fp string) string          { return "alert." + stateKey(fp) }
func receiverKey(fp, recv string) string { return "recv." + stateKey(fp) + "." + recv }

// errConflict means the record changed between read and write.
var errConflict = errors.New("alert state changed concurrently")

// stateStore reads and writes alert state.
type stateStore struct{ kv jetstream.KeyValue }

// alert returns the record for fp and its revision; nil and 0 when there
// is none.
func (s *stateStore) alert(ctx context.Context, fp string) (*alertRecord, uint64, error) {
	var rec alertRecord
	rev, err := s.get(ctx, alertKey(fp), &rec)
	if err != nil || rev == 0 {
		return nil, 0, err
	}
	return &rec, rev, nil
}

// putAlert writes rec if the stored revision is still rev (0: no record).
func (s *stateStore) putAlert(ctx context.Context, fp string, rec *alertRecord, rev uint64) error {
	b, err := json.Marshal(rec)
	if err != nil {
		return fmt.Errorf("encode alert state: %w", err)
	}
	if rev == 0 {
		_, err = s.kv.Create(ctx, alertKey(fp), b)
	} else {
		_, err = s.kv.Update(ctx, alertKey(fp), b, rev)
	}
	if errors.Is(err, jetstream.ErrKeyExists) || errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
		return errConflict
	}
	if err != nil {
		return fmt.Errorf("write alert state: %w", err)
	}
	return nil
}

func (s *stateStore) receiver(ctx context.Context, fp, recv string) (*receiverRecord, error) {
	var rec receiverRecord
	rev, err := s.get(ctx, receiverKey(fp, recv), &rec)
	if err != nil || rev == 0 {
		return nil, err
	}
	return &rec, nil
}

func (s *stateStore) putReceiver(ctx context.Context, fp, recv string, rec *receiverRecord) error {
	b, err := json.Marshal(rec)
	if err != nil {
		return fmt.Errorf("encode receiver state: %w", err)
	}
	if _, err := s.kv.Put(ctx, receiverKey(fp, recv), b); err != nil {
		return fmt.Errorf("write receiver state: %w", err)
	}
	return nil
}

// get decodes key into v and returns its revision, 0 when absent.
func (s *stateStore) get(ctx context.Context, key string, v any) (uint64, error) {
	e, err := s.kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("read %s: %w", key, err)
	}
	if err := json.Unmarshal(e.Value(), v); err != nil {
		return 0, fmt.Errorf("decode %s: %w", key, err)
	}
	return e.Revision(), nil
}

// alerts returns every alert record.
func (s *stateStore) alerts(ctx context.Context) ([]alertRecord, error) {
	keys, err := s.keys(ctx, "alert.>")
	if err != nil {
		return nil, err
	}
	out := make([]alertRecord, 0, len(keys))
	for _, k := range keys {
		var rec alertRecord
		rev, err := s.get(ctx, k, &rec)
		if err != nil {
			return nil, err
		}
		if rev != 0 {
			out = append(out, rec)
		}
	}
	return out, nil
}

func (s *stateStore) keys(ctx context.Context, filter string) ([]string, error) {
	kl, err := s.kv.ListKeysFiltered(ctx, filter)
	if err != nil {
		return nil, fmt.Errorf("list alert state: %w", err)
	}
	defer kl.Stop()
	var keys []string
	for k := range kl.Keys() {
		keys = append(keys, k)
	}
	// A listing may report a key twice while it is being written.
	slices.Sort(keys)
	return slices.Compact(keys), nil
}

// purgeResolved deletes the state of alerts resolved before cutoff, with
// their receiver records, and returns how many alerts it removed.
func (s *stateStore) purgeResolved(ctx context.Context, cutoff time.Time) (int, error) {
	recs, err := s.alerts(ctx)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, rec := range recs {
		if rec.Firing || !rec.UpdatedAt.Before(cutoff) {
			continue
		}
		fp := rec.Alert.Fingerprint
		rkeys, err := s.keys(ctx, "recv."+stateKey(fp)+".*")
		if err != nil {
			return n, err
		}
		for _, k := range append(rkeys, alertKey(fp)) {
			if err := s.kv.Purge(ctx, k); err != nil {
				return n, fmt.Errorf("purge %s: %w", k, err)
			}
		}
		n++
	}
	return n, nil
}
