package main

import (
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/vigil-sec/vigil/internal/testfiles"
)

// TestNATSClientFlagsPassword connects to a NATS server that wants a user
// and password, with the password from the environment or a file: never
// from the command line.
func TestNATSClientFlagsPassword(t *testing.T) {
	ns, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: server.RANDOM_PORT, Username: "simulator",
		Password: "s3cret-pw", NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats server not ready")
	}
	t.Cleanup(ns.Shutdown)
	dir := t.TempDir()
	cases := []struct {
		name  string
		env   string
		flags natsClientFlags
		want  string // "" for connected
	}{
		{"password from the environment", "s3cret-pw", natsClientFlags{user: "simulator"}, ""},
		{"password from a file", "", natsClientFlags{user: "simulator", passwordFile: testfiles.Write(t, dir, "pw", "s3cret-pw\n")}, ""},
		{"wrong password", "guess", natsClientFlags{user: "simulator"}, "Authorization Violation"},
		{"no password", "", natsClientFlags{user: "simulator"}, "--nats-user needs a password"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv(natsPasswordEnv, tc.env)
			f := tc.flags
			f.url = ns.ClientURL()
			nc, err := f.connect("test")
			if tc.want == "" {
				if err != nil {
					t.Fatalf("connect: %v", err)
				}
				nc.Close()
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "s3cret-pw") {
				if err == nil {
					nc.Close()
				}
				t.Fatalf("connect = %v, want %q (and never the password)", err, tc.want)
			}
		})
	}
}
