package deploy

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/vigil-sec/vigil/daemon"
	"github.com/vigil-sec/vigil/internal/testkit"
)

// natsUsers are the users of nats/nats-server.conf and the environment
// variable each one's password comes from.
var natsUsers = map[string]string{
	"vigil":       "VIGIL_NATS_PASSWORD",
	"svc-billing": "NATS_PASSWORD_BILLING",
	"svc-auth":    "NATS_PASSWORD_AUTH",
	"simulator":   "NATS_PASSWORD_SIMULATOR",
	"sys":         "NATS_SYS_PASSWORD",
}

// natsServer is a nats-server running in the test process from the kit's
// configuration file, on a random loopback port.
type natsServer struct {
	url       string
	passwords map[string]string
}

// startNATS loads nats/nats-server.conf with random passwords in the
// environment and starts it; only the listen address, the store directory
// and the monitoring port are changed for the test.
func startNATS(t *testing.T) natsServer {
	t.Helper()
	ns := natsServer{passwords: natsPasswords(t)}
	opts := loadNATSConfig(t, "nats/nats-server.conf")
	ns.url = runNATS(t, opts).ClientURL()
	return ns
}

// natsPasswords sets a random password for every user of the kit's NATS
// configuration in the environment, where the server reads them, and
// returns them by user.
func natsPasswords(t *testing.T) map[string]string {
	t.Helper()
	passwords := map[string]string{}
	for user, env := range natsUsers {
		passwords[user] = randomHex(t)
		t.Setenv(env, passwords[user])
	}
	return passwords
}

func randomHex(t *testing.T) string {
	t.Helper()
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// loadNATSConfig reads a configuration file of the kit as nats-server does
// (the environment as it is now) and moves what it listens on to loopback
// ports the test picks: clients on a random port, no monitoring, and the
// store in a temporary directory.
func loadNATSConfig(t *testing.T, file string) *server.Options {
	t.Helper()
	opts, err := server.ProcessConfigFile(file)
	if err != nil {
		t.Fatalf("nats-server rejects %s: %v", file, err)
	}
	opts.Host, opts.Port = "127.0.0.1", server.RANDOM_PORT
	opts.HTTPHost, opts.HTTPPort = "", 0
	opts.StoreDir = t.TempDir()
	opts.NoSigs, opts.NoLog = true, true
	return opts
}

// runNATS starts a server with opts and shuts it down when the test ends.
func runNATS(t *testing.T, opts *server.Options) *server.Server {
	t.Helper()
	srv, err := server.NewServer(opts)
	if err != nil {
		t.Fatalf("nats-server: %v", err)
	}
	go srv.Start()
	t.Cleanup(srv.Shutdown)
	if !srv.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server did not start")
	}
	return srv
}

// client is a connection whose asynchronous errors (permission violations)
// arrive on errs.
type client struct {
	nc   *nats.Conn
	js   jetstream.JetStream
	errs chan error
}

func (ns natsServer) connect(t *testing.T, user string) client {
	t.Helper()
	c := client{errs: make(chan error, 16)}
	nc, err := nats.Connect(ns.url, nats.UserInfo(user, ns.passwords[user]),
		nats.PermissionErrOnSubscribe(true),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			select {
			case c.errs <- err:
			default:
			}
		}))
	if err != nil {
		t.Fatalf("connect as %s: %v", user, err)
	}
	t.Cleanup(nc.Close)
	c.nc = nc
	if c.js, err = jetstream.New(nc); err != nil {
		t.Fatal(err)
	}
	return c
}

// publish sends one message through JetStream and reports whether the
// stream stored it (the publish was acknowledged) or the server refused it
// with a permissions violation; anything else fails the test.
func (c client) publish(t *testing.T, subject string) bool {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		_, err := c.js.Publish(ctx, subject, []byte(`{}`))
		done <- err
	}()
	select {
	case err := <-done:
		if err == nil {
			return true
		}
		c.requireViolation(t, "publish "+subject, err)
	case err := <-c.errs:
		if !isViolation(err) {
			t.Fatalf("publish %s: %v, not a permissions violation", subject, err)
		}
		cancel()
		<-done
	}
	return false
}

// subscribe reports whether the server accepted a subscription to subject:
// a refused one ends with a permissions violation, an accepted one simply
// receives nothing.
func (c client) subscribe(t *testing.T, subject string) bool {
	t.Helper()
	sub, err := c.nc.SubscribeSync(subject)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	_, err = sub.NextMsg(2 * time.Second)
	switch {
	case errors.Is(err, nats.ErrTimeout):
		return true
	case isViolation(err):
		return false
	}
	t.Fatalf("subscribe %s: %v", subject, err)
	return false
}

func isViolation(err error) bool {
	return errors.Is(err, nats.ErrPermissionViolation) || (err != nil && strings.Contains(err.Error(), "Permissions Violation"))
}

func (c client) requireViolation(t *testing.T, what string, err error) {
	t.Helper()
	if isViolation(err) {
		return
	}
	select {
	case aerr := <-c.errs:
		if isViolation(aerr) {
			return
		}
		t.Fatalf("%s failed with %v and %v, not a permissions violation", what, err, aerr)
	case <-time.After(2 * time.Second):
		t.Fatalf("%s failed with %v and no permissions violation was reported", what, err)
	}
}

// createStreams makes the streams Vigil creates on start, as the vigil user.
func createStreams(t *testing.T, vigil client) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for name, subject := range map[string]string{
		"VIGIL_EVENTS":     "vigil.events.>",
		"VIGIL_DEADLETTER": "vigil.deadletter.events",
	} {
		if _, err := vigil.js.CreateStream(ctx, jetstream.StreamConfig{Name: name, Subjects: []string{subject}}); err != nil {
			t.Fatalf("vigil creates stream %s: %v", name, err)
		}
	}
}

// TestNATSPublishPermissions proves with real clients that each service may
// publish only to its own subject, and that nobody but Vigil reads events,
// on the single server and on the cluster.
func TestNATSPublishPermissions(t *testing.T) {
	eachNATS(t, testPublishPermissions)
}

func testPublishPermissions(t *testing.T, ns natsServer) {
	vigil := ns.connect(t, "vigil")
	createStreams(t, vigil)
	tests := []struct {
		name, user, subject string
		subscribe, allowed  bool
	}{
		{"billing publishes its own events", "svc-billing", "vigil.events.billing", false, true},
		{"billing cannot forge auth's events", "svc-billing", "vigil.events.auth", false, false},
		{"billing cannot forge Vigil's own events", "svc-billing", "vigil.events.vigil-admin", false, false},
		{"billing cannot write dead letters", "svc-billing", "vigil.deadletter.events", false, false},
		{"billing cannot read events", "svc-billing", "vigil.events.>", true, false},
		{"auth publishes its own events", "svc-auth", "vigil.events.auth", false, true},
		{"auth cannot forge billing's events", "svc-auth", "vigil.events.billing", false, false},
		{"simulator publishes for any service", "simulator", "vigil.events.shop", false, true},
		{"Vigil cannot forge a service's events", "vigil", "vigil.events.billing", false, false},
		{"Vigil writes dead letters", "vigil", "vigil.deadletter.events", false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := ns.connect(t, tt.user)
			var got bool
			if tt.subscribe {
				got = c.subscribe(t, tt.subject)
			} else {
				got = c.publish(t, tt.subject)
			}
			if got != tt.allowed {
				t.Errorf("%s on %s: allowed = %v, want %v", tt.user, tt.subject, got, tt.allowed)
			}
		})
	}
}

// TestNATSServiceCannotManageStreams checks that a service cannot use the
// JetStream API, for example to delete the event stream.
func TestNATSServiceCannotManageStreams(t *testing.T) {
	ns := startNATS(t)
	createStreams(t, ns.connect(t, "vigil"))
	billing := ns.connect(t, "svc-billing")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	err := billing.js.DeleteStream(ctx, "VIGIL_EVENTS")
	if err == nil {
		t.Fatal("svc-billing deleted the event stream")
	}
	billing.requireViolation(t, "delete stream", err)
}

// TestNATSVigilConsumes checks that Vigil's user can do what the daemon does
// with JetStream: a durable consumer with explicit acks, and a KV bucket.
func TestNATSVigilConsumes(t *testing.T) {
	ns := startNATS(t)
	vigil := ns.connect(t, "vigil")
	createStreams(t, vigil)
	if !ns.connect(t, "svc-billing").publish(t, "vigil.events.billing") {
		t.Fatal("svc-billing cannot publish")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cons, err := vigil.js.CreateOrUpdateConsumer(ctx, "VIGIL_EVENTS", jetstream.ConsumerConfig{
		Durable: "vigil", AckPolicy: jetstream.AckExplicitPolicy,
	})
	if err != nil {
		t.Fatalf("create consumer: %v", err)
	}
	msg, err := cons.Next(jetstream.FetchMaxWait(5 * time.Second))
	if err != nil {
		t.Fatalf("fetch: %v", err)
	}
	if msg.Subject() != "vigil.events.billing" {
		t.Errorf("got subject %q", msg.Subject())
	}
	if err := msg.DoubleAck(ctx); err != nil {
		t.Fatalf("ack: %v", err)
	}
	kv, err := vigil.js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "VIGIL_TEST_STATE"})
	if err != nil {
		t.Fatalf("create KV bucket: %v", err)
	}
	if _, err := kv.Put(ctx, "alert", []byte("firing")); err != nil {
		t.Fatalf("KV put: %v", err)
	}
	if e, err := kv.Get(ctx, "alert"); err != nil || string(e.Value()) != "firing" {
		t.Fatalf("KV get: %v", err)
	}
}

// TestNATSRefusesBadCredentials checks that a wrong password, an unknown
// user and no credentials are all refused.
func TestNATSRefusesBadCredentials(t *testing.T) {
	ns := startNATS(t)
	tests := []struct {
		name string
		opt  nats.Option
	}{
		{"wrong password", nats.UserInfo("svc-billing", "wrong")},
		{"unknown user", nats.UserInfo("mallory", ns.passwords["svc-billing"])},
		{"no credentials", nats.Name("anonymous")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			nc, err := nats.Connect(ns.url, tt.opt, nats.MaxReconnects(0))
			if err == nil {
				nc.Close()
				t.Fatal("connection accepted")
			}
			if !errors.Is(err, nats.ErrAuthorization) {
				t.Errorf("err = %v, want an authorization violation", err)
			}
		})
	}
}

// TestVigilWithKitNATS runs the real daemon against a nats-server loaded
// from the kit's configuration, as the vigil user: it must create its
// streams, consumer and buckets, apply an event that svc-billing publishes,
// and never hit a permissions violation.
func TestVigilWithKitNATS(t *testing.T) {
	bin := buildVigil(t)
	ns := startNATS(t)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "vigil.yaml")
	conf := fmt.Sprintf(`nats:
  url: %s
  user: vigil
  password: ${VIGIL_NATS_PASSWORD}
receivers:
  - name: console
    log: {}
routes:
  - receivers: [console]
`, ns.url)
	if err := os.WriteFile(cfg, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := "127.0.0.1:" + strconv.Itoa(freePort(t))
	vigil := startProcess(t, "vigil", bin, nil, "run", "--config", cfg, "--listen", addr, "--data-dir", filepath.Join(dir, "data"))
	waitHTTP(t, vigil, "http://"+addr+"/readyz", time.Minute)

	billing := ns.connect(t, "svc-billing")
	ev := fmt.Sprintf(`{"ts":%q,"service":"billing","request_id":"kit-nats-1","method":"POST","endpoint":"/v1/auth/login","status":401}`,
		time.Now().UTC().Format(time.RFC3339Nano))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := billing.js.Publish(ctx, "vigil.events.billing", []byte(ev)); err != nil {
		t.Fatalf("svc-billing publishes: %v", err)
	}
	// A refused admin request: Vigil feeds it to its own pipeline.
	if status, _, err := httpGet("http://"+addr+"/api/v1/status", ""); err != nil || status != http.StatusUnauthorized {
		t.Errorf("GET /api/v1/status without a token: %d %v, want 401", status, err)
	}
	testkit.WaitFor(t, 30*time.Second, "Vigil to apply svc-billing's event", func() error {
		_, body, err := httpGet("http://"+addr+"/metrics", "")
		if err != nil {
			return err
		}
		if !strings.Contains(string(body), `vigil_http_requests_total{code="401",endpoint="/v1/auth/login",method="POST",service="billing"} 1`) {
			return errors.New("/metrics does not count the event yet")
		}
		return nil
	})
	// Stopping checkpoints detection state into the object store; the
	// next start restores it.
	vigil.stop(t)
	if _, err := ns.connect(t, "vigil").js.ObjectStore(ctx, daemon.CheckpointBucket); err != nil {
		t.Errorf("no checkpoint store after Vigil stopped: %v", err)
	}
	again := startProcess(t, "vigil-again", bin, nil, "run", "--config", cfg, "--listen", addr, "--data-dir", filepath.Join(dir, "data"))
	waitHTTP(t, again, "http://"+addr+"/readyz", time.Minute)
	if log := tail(again.log, 1000); !strings.Contains(log, "detection windows restored from a checkpoint") {
		t.Errorf("Vigil did not restore its checkpoint at the second start:\n%s", log)
	}
	for _, p := range []*process{vigil, again} {
		if log := tail(p.log, 1000); strings.Contains(strings.ToLower(log), "permissions violation") {
			t.Errorf("Vigil hit a permissions violation with the kit's NATS config:\n%s", log)
		}
	}
}
