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
	"strings"
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

// incidentRecord is what the receivers of per_incident routes were told
// about one incident, under incident.<id>.
type incidentRecord struct {
	ID string `json:"id"`
	// Told maps a receiver to the incident severity it was last told.
	Told      map[string]string `json:"told"`
	UpdatedAt time.Time         `json:"updated_at"`
}

func alertKey(fp string) string              { return "alert." + stateKey(fp) }
func receiverKey(fp, recv string) string     { return "recv." + stateKey(fp) + "." + recv }
func incidentKey(id string) string           { return "incident." + stateKey(id) }
func threadKey(incident, recv string) string { return "thread." + stateKey(incident) + "." + recv }

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
	return s.swap(ctx, alertKey(fp), rec, rev)
}

// swap writes v under key if the stored revision is still rev (0: no
// record), else returns errConflict.
func (s *stateStore) swap(ctx context.Context, key string, v any, rev uint64) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode %s: %w", key, err)
	}
	if rev == 0 {
		_, err = s.kv.Create(ctx, key, b)
	} else {
		_, err = s.kv.Update(ctx, key, b, rev)
	}
	if errors.Is(err, jetstream.ErrKeyExists) || errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
		return errConflict
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", key, err)
	}
	return nil
}

func (s *stateStore) receiver(ctx context.Context, fp, recv string) (*receiverRecord, error) {
	return record[receiverRecord](ctx, s, receiverKey(fp, recv))
}

// record reads the record under key; nil when there is none.
func record[T any](ctx context.Context, s *stateStore, key string) (*T, error) {
	var rec T
	rev, err := s.get(ctx, key, &rec)
	if err != nil || rev == 0 {
		return nil, err
	}
	return &rec, nil
}

func (s *stateStore) putReceiver(ctx context.Context, fp, recv string, rec *receiverRecord) error {
	return s.put(ctx, receiverKey(fp, recv), rec)
}

// thread returns receiver recv's thread about incident id; nil when it
// keeps none.
func (s *stateStore) thread(ctx context.Context, id, recv string) (*threadRecord, error) {
	return record[threadRecord](ctx, s, threadKey(id, recv))
}

func (s *stateStore) putThread(ctx context.Context, recv string, rec *threadRecord) error {
	return s.put(ctx, threadKey(rec.Thread.ID, recv), rec)
}

// put writes v under key, whatever was there: records only one worker
// writes.
func (s *stateStore) put(ctx context.Context, key string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode %s: %w", key, err)
	}
	if _, err := s.kv.Put(ctx, key, b); err != nil {
		return fmt.Errorf("write %s: %w", key, err)
	}
	return nil
}

// incident returns the record of incident id and its revision; an empty
// record and 0 when there is none.
func (s *stateStore) incident(ctx context.Context, id string) (*incidentRecord, uint64, error) {
	rec := incidentRecord{ID: id}
	rev, err := s.get(ctx, incidentKey(id), &rec)
	if err != nil {
		return nil, 0, err
	}
	if rec.Told == nil {
		rec.Told = map[string]string{}
	}
	return &rec, rev, nil
}

// tell records that receivers were told incident id at these severities,
// keeping for each receiver the highest it was told.
func (s *stateStore) tell(ctx context.Context, id string, told map[string]string, now time.Time) error {
	for range maxNotifyConflicts {
		rec, rev, err := s.incident(ctx, id)
		if err != nil {
			return err
		}
		for name, sev := range told {
			if receiver.SeverityRank(sev) > receiver.SeverityRank(rec.Told[name]) {
				rec.Told[name] = sev
			}
		}
		rec.UpdatedAt = now
		if err := s.swap(ctx, incidentKey(id), rec, rev); !errors.Is(err, errConflict) {
			return err
		}
	}
	return fmt.Errorf("write incident state: %w after %d tries", errConflict, maxNotifyConflicts)
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
// their receiver records, and returns how many alerts it removed. recs are
// every alert record.
func (s *stateStore) purgeResolved(ctx context.Context, recs []alertRecord, cutoff time.Time) (int, error) {
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

// purgeIncidents deletes the records of incidents (per_incident routing,
// receivers' threads) last written before cutoff and none of whose alerts
// fires, and returns how many keys it removed. recs are every alert record.
func (s *stateStore) purgeIncidents(ctx context.Context, recs []alertRecord, cutoff time.Time) (int, error) {
	live := map[string]bool{}
	for _, r := range recs {
		if r.Firing && r.Alert.IncidentID != "" {
			live[stateKey(r.Alert.IncidentID)] = true
		}
	}
	var keys []string
	for _, filter := range []string{"incident.*", "thread.*.*"} {
		ks, err := s.keys(ctx, filter)
		if err != nil {
			return 0, err
		}
		keys = append(keys, ks...)
	}
	n := 0
	for _, k := range keys {
		if live[strings.Split(k, ".")[1]] {
			continue
		}
		var rec struct {
			UpdatedAt time.Time `json:"updated_at"`
		}
		if rev, err := s.get(ctx, k, &rec); err != nil || rev == 0 || !rec.UpdatedAt.Before(cutoff) {
			continue
		}
		if err := s.kv.Purge(ctx, k); err != nil {
			return n, fmt.Errorf("purge %s: %w", k, err)
		}
		n++
	}
	return n, nil
}
