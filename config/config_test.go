package config

import (
	"strings"
	"testing"

	"github.com/vigil-sec/vigil/internal/natsconn"
	"github.com/vigil-sec/vigil/internal/testfiles"
)

func TestParse(t *testing.T) {
	cases := []struct {
		name string
		yaml string
		want string // substring of the error; "" for success
		env  map[string]string
	}{
		{name: "empty file gives defaults", yaml: ""},
		{name: "overrides", yaml: "listen: 127.0.0.1:9999\nnats:\n  listen: 127.0.0.1:5222\ningest:\n  max_services: 10\n  stream_max_age: 48h\n"},
		{name: "unknown top-level key names file and line", yaml: "listen: 127.0.0.1:1\nlisten_addr: x\n", want: "vigil.yaml: line 2: field listen_addr not found"},
		{name: "unknown nested key", yaml: "ingest:\n  max_service: 3\n", want: "line 2: field max_service not found"},
		{name: "removed key says where its setting went", yaml: "notify:\n  replicas: 3\n",
			want: "vigil.yaml: line 2: field replicas not found: notify.replicas is gone; set nats.replicas instead"},
		{name: "wrong type", yaml: "ingest:\n  max_services: many\n", want: "line 2"},
		{name: "bad duration", yaml: "ingest:\n  stream_max_age: forever\n", want: "line 2"},
		{name: "invalid value", yaml: "ingest:\n  fetch_batch: 0\n", want: "ingest.fetch_batch"},
		{name: "bad log level", yaml: "log:\n  level: loud\n", want: "log.level"},
		{name: "replicas with embedded", yaml: "nats:\n  replicas: 3\n", want: "nats.replicas must be 1 with the embedded server"},
		{name: "replicas on a cluster", yaml: "nats:\n  url: nats://a:4222,nats://b:4222\n  replicas: 3\n"},
		{name: "inline password refused", yaml: "nats:\n  url: nats://a:4222\n  user: vigil\n  password: hunter2\n", want: "allow_inline_secrets"},
		{name: "inline password allowed", yaml: "allow_inline_secrets: true\nnats:\n  url: nats://a:4222\n  user: vigil\n  password: hunter2\n"},
		{name: "env password", yaml: "nats:\n  url: nats://a:4222\n  user: vigil\n  password: ${VIGIL_TEST_PW}\n", env: map[string]string{"VIGIL_TEST_PW": "s3cret"}},
		{name: "unset env password", yaml: "nats:\n  url: nats://a:4222\n  password: ${VIGIL_TEST_UNSET_PW}\n", want: "VIGIL_TEST_UNSET_PW is not set"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			cfg, err := Parse("vigil.yaml", []byte(tc.yaml))
			if tc.want == "" {
				if err != nil {
					t.Fatalf("Parse: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Parse error = %v, want it to contain %q", err, tc.want)
			}
			_ = cfg
		})
	}
}

// TestParseMessages checks whole messages: the line an editor shows, the
// duration hint, and each key named once.
func TestParseMessages(t *testing.T) {
	cases := []struct {
		name, yaml, want string
	}{
		{"duration as a bare number", "ingest:\n  ack_wait: 30\n",
			`vigil.yaml: line 2: invalid duration "30": write it with a unit, e.g. 90s, 5m or 1h`},
		{"duration as a string without unit", "admin:\n  timeouts:\n    read: \"30\"\n",
			`vigil.yaml: line 3: invalid duration "30": write it with a unit, e.g. 90s, 5m or 1h`},
		{"duration that is no duration", "detect:\n  lateness: soon\n",
			`vigil.yaml: line 2: invalid duration "soon": write it with a unit, e.g. 90s, 5m or 1h`},
		{"list item where a key belongs", "listen: 127.0.0.1:9750\nlog:\n  level: info\n - debug\n",
			"vigil.yaml: line 4: did not find expected key"},
		{"key indented too little", "admin:\n  metrics_auth: true\n max_body_bytes: 10\n",
			"vigil.yaml: line 3: did not find expected key"},
		{"admin key named once", "admin:\n  tokens:\n    - {name: x, sha256: abc, scopes: [read]}\n",
			"vigil.yaml: admin.tokens[0]: x: sha256 must be 64 lower-case hex digits (the SHA-256 of the token, not the token itself)"},
		{"checkpoints too often", "detect:\n  checkpoint_every: 10s\n",
			"vigil.yaml: detect.checkpoint_every is 10s; set it between 30s and 24h (default 5m), or 0s to turn checkpoints off"},
		{"privacy key named once", "privacy:\n  pseudonymize: [user]\n",
			"vigil.yaml: privacy.key_file: required when privacy.pseudonymize is set; point it at a file holding at least 32 random bytes"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("vigil.yaml", []byte(tc.yaml))
			if err == nil || err.Error() != tc.want {
				t.Fatalf("Parse error:\n  %v\nwant:\n  %s", err, tc.want)
			}
		})
	}
}

func TestSecretsNeverPrint(t *testing.T) {
	t.Setenv("VIGIL_TEST_PW", "canary-7f3a9c")
	cfg, err := Parse("vigil.yaml", []byte("nats:\n  url: nats://a:4222\n  user: vigil\n  password: ${VIGIL_TEST_PW}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.NATS.Password.Value() != "canary-7f3a9c" {
		t.Fatalf("password not read from the environment")
	}
	for _, verb := range []string{"%v", "%+v", "%#v", "%s"} {
		if s := sprintf(verb, cfg); strings.Contains(s, "canary-7f3a9c") {
			t.Errorf("%s of the config prints the secret: %s", verb, s)
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte("listen: 127.0.0.1:9750\ningest:\n  max_services: 5\n"))
	f.Add([]byte("nats:\n  url: nats://x\n  password: ${X}\n"))
	f.Add([]byte("- a\n- b\n"))
	f.Add([]byte("ingest: {fetch_batch: -1}"))
	f.Fuzz(func(t *testing.T, raw []byte) {
		cfg, err := Parse("fuzz.yaml", raw)
		if err == nil {
			if verr := cfg.Validate(); verr != nil {
				t.Fatalf("Parse accepted a config that Validate rejects: %v", verr)
			}
		}
	})
}

func TestLoadNATS(t *testing.T) {
	t.Setenv("VIGIL_TEST_NATS_PW", "s3cret-pw")
	dir := t.TempDir()
	write := func(name, body string) string { return testfiles.Write(t, dir, name, body) }
	// The receivers need a variable this shell does not set: LoadNATS
	// does not read them.
	c, err := LoadNATS(write("ok.yaml", "receivers:\n  - name: s\n    slack: {token: '${VIGIL_TEST_UNSET}', channel: '#x'}\n"+
		"nats:\n  url: nats://nats:4222\n  user: vigil\n  password: ${VIGIL_TEST_NATS_PW}\n"))
	if err != nil || c.URL != "nats://nats:4222" || c.Password.Value() != "s3cret-pw" || c.Name != "vigil" {
		t.Fatalf("LoadNATS = %+v, %v", c, err)
	}
	if c, err := LoadNATS(write("none.yaml", "listen: 127.0.0.1:9750\n")); err != nil || !c.Embedded() || c.Listen != natsconn.DefaultListen {
		t.Fatalf("no nats section: %+v, %v", c, err)
	}
	if _, err := LoadNATS(write("bad.yaml", "listen: x\nnats:\n  ur: nats://a\n")); err == nil || !strings.Contains(err.Error(), "bad.yaml: line 3: field ur not found") {
		t.Fatalf("unknown key: %v", err)
	}
	if _, err := LoadNATS(write("inline.yaml", "nats:\n  url: nats://a\n  password: hunter2\n")); err == nil || !strings.Contains(err.Error(), "allow_inline_secrets") {
		t.Fatalf("inline password: %v", err)
	}
}
