package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"maps"
	"net/http"
	"slices"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/vigil-sec/vigil/admin"
)

// reloadSubject is where a cluster member asks every member to reload.
// Only Vigil's own NATS user may publish or subscribe to it
// (deploy/nats/nats-server.conf); the message carries nothing: each member
// re-reads its own config.
const reloadSubject = "vigil.cluster.reload"

// reloadMembersWait is how long a cluster-wide reload waits for the
// members' answers: its answer must leave before the admin API's write
// timeout (admin.timeouts.write, 30 s by default) cuts it off.
func reloadMembersWait(write time.Duration) time.Duration {
	return max(5*time.Second, write-2*time.Second)
}

// MemberReload is one member's answer to a cluster-wide reload.
type MemberReload struct {
	Member string `json:"member"`
	// Status is "reloaded", "unchanged" (it re-read its config and found
	// nothing new: its files may not have been updated yet), "failed", or
	// "no answer" (none within reloadMembersWait: it may still be
	// reloading, as a rebuild over a long lookback can take minutes).
	Status string `json:"status"`
	Error  string `json:"error,omitempty"`
	Config string `json:"config,omitempty"` // hash of the config now in force
	Rules  string `json:"rules,omitempty"`  // digest of the rule set now in force
	Notify string `json:"notify,omitempty"` // digest of the notification settings now in force
}

// ClusterReload is the report of POST /api/v1/cluster/reload.
type ClusterReload struct {
	// Status is "reloaded" when every member reloaded (or found nothing
	// new), else "incomplete".
	Status  string         `json:"status"`
	Members []MemberReload `json:"members"`
}

// reloadQueue is how many cluster-wide reload requests wait for this
// member at most; past it the NATS client drops them (the asker reports
// "no answer").
const reloadQueue = 64

// serveReloads answers every member's cluster-wide reload request by
// reloading this member, until stop is called; stop cancels a reload under
// way and waits for it. Reloads run one at a time; the requests that came
// while one ran are answered together by the next, which starts after all
// of them came: a burst of requests (an impatient operator, a deploy
// script retrying) costs each member two reloads, not one per request.
func (d *Daemon) serveReloads() (stop func(), err error) {
	name := d.failover.cfg.MemberName()
	d.reloadRequests = make(chan *nats.Msg, reloadQueue)
	sub, err := d.nc.ChanSubscribe(reloadSubject, d.reloadRequests)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			var batch []*nats.Msg
			select {
			case <-ctx.Done():
				return
			case m := <-d.reloadRequests:
				batch = append(batch, m)
			}
			for len(d.reloadRequests) > 0 {
				batch = append(batch, <-d.reloadRequests)
			}
			ans := d.reloadMember(ctx, name)
			if ctx.Err() != nil {
				return
			}
			data, _ := json.Marshal(ans) // strings only: cannot fail
			for _, m := range batch {
				if err := m.Respond(data); err != nil {
					d.log.Warn("could not answer a cluster-wide reload", "err", err)
				}
			}
		}
	}()
	return func() {
		_ = sub.Unsubscribe()
		cancel() // a reload under way stops at its next step
		<-done
	}, nil
}

// reloadMember reloads this member for a cluster-wide reload and says how
// it went.
func (d *Daemon) reloadMember(ctx context.Context, name string) MemberReload {
	before := d.failover.table.Self()
	ans := MemberReload{Member: name, Status: "reloaded"}
	if err := d.Reload(ctx); err != nil {
		ans.Status, ans.Error = "failed", err.Error()
	}
	self := d.failover.table.Self()
	if ans.Status == "reloaded" && self.Config == before.Config && self.Rules == before.Rules && self.Notify == before.Notify {
		ans.Status = "unchanged"
	}
	ans.Config, ans.Rules, ans.Notify = self.Config, self.Rules, self.Notify
	return ans
}

// ReloadMembers implements admin.ClusterBackend: it asks every member in
// the member table, this one included, to reload, and gathers their
// answers for up to reloadMembersWait.
func (b backend) ReloadMembers(ctx context.Context) (any, bool, error) {
	d := b.d
	if d.failover == nil {
		return nil, false, &admin.ClientError{Status: http.StatusBadRequest, Code: "bad_request",
			Message: "this instance runs alone (cluster.enabled is false): reload it with POST /api/v1/reload"}
	}
	d.mu.Lock()
	wait := reloadMembersWait(d.cfg.Admin.Timeouts.Write)
	d.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	members, err := d.failover.table.Members(ctx)
	if err == nil && len(members) == 0 {
		err = errors.New("the member table is empty, not even this member's row is in it: check the connection to NATS (the status's nats section) and retry")
	}
	if err != nil {
		return nil, false, err
	}
	inbox := d.nc.NewRespInbox()
	sub, err := d.nc.SubscribeSync(inbox)
	if err != nil {
		return nil, false, err
	}
	defer func() { _ = sub.Unsubscribe() }()
	if err := d.nc.PublishRequest(reloadSubject, inbox, nil); err != nil {
		return nil, false, err
	}
	answers := map[string]MemberReload{}
	waiting := map[string]bool{}
	for _, m := range members {
		waiting[m.Name] = true
	}
	for len(waiting) > 0 {
		m, err := sub.NextMsgWithContext(ctx)
		if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
			break
		}
		if err != nil {
			return nil, false, err
		}
		var ans MemberReload
		if json.Unmarshal(m.Data, &ans) != nil || ans.Member == "" {
			continue
		}
		delete(waiting, ans.Member)
		answers[ans.Member] = ans
	}
	report := ClusterReload{Status: "reloaded"}
	for name := range waiting {
		answers[name] = MemberReload{Member: name, Status: "no answer",
			Error: "no answer within " + wait.String() + "; it may still be reloading (a rebuild over a long lookback takes a while): see its log, vigil_config_last_reload_successful and the member table's rules digest"}
	}
	for _, name := range slices.Sorted(maps.Keys(answers)) {
		ans := answers[name]
		if ans.Status != "reloaded" && ans.Status != "unchanged" {
			report.Status = "incomplete"
		}
		report.Members = append(report.Members, ans)
	}
	return report, report.Status == "reloaded", nil
}
