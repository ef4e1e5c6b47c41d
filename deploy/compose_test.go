package deploy

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

// composeSecrets are the variables init-env.sh writes to .env.
var composeSecrets = []string{
	"VIGIL_NATS_PASSWORD", "NATS_PASSWORD_BILLING", "NATS_PASSWORD_AUTH",
	"NATS_PASSWORD_SIMULATOR", "NATS_SYS_PASSWORD", "GRAFANA_ADMIN_PASSWORD",
}

type composeFile struct {
	Services map[string]struct {
		Image       string   `yaml:"image"`
		Ports       []string `yaml:"ports"`
		ReadOnly    bool     `yaml:"read_only"`
		CapDrop     []string `yaml:"cap_drop"`
		SecurityOpt []string `yaml:"security_opt"`
		Volumes     []string `yaml:"volumes"`
	} `yaml:"services"`
}

// composeConfig runs `docker-compose config` with the given environment and
// an empty env file, so a developer's .env cannot change the result.
func composeConfig(t *testing.T, env []string) (string, error) {
	t.Helper()
	tool := needTool(t, "docker-compose")
	empty := filepath.Join(t.TempDir(), "empty.env")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	// Blank the secrets first (the process environment may hold some); for
	// a repeated variable the command gets the last value.
	full := make([]string, 0, len(composeSecrets)+len(env))
	for _, s := range composeSecrets {
		full = append(full, s+"=")
	}
	full = append(full, env...)
	return run(t, time.Minute, "compose", full, tool, "--env-file", empty, "-f", "compose.yaml", "config")
}

// TestComposeConfig validates the compose stack with docker-compose and checks
// what the issue requires of it: every port on 127.0.0.1, every container
// read-only without capabilities or privilege escalation, and every bind
// mount pointing at a file of the repository.
func TestComposeConfig(t *testing.T) {
	t.Parallel()
	env := make([]string, 0, len(composeSecrets))
	for _, s := range composeSecrets {
		env = append(env, s+"=test-"+strings.ToLower(s))
	}
	out, err := composeConfig(t, env)
	if err != nil {
		t.Fatalf("docker-compose config: %v\n%s", err, out)
	}
	var cfg composeFile
	if err := yaml.Unmarshal([]byte(out), &cfg); err != nil {
		t.Fatalf("parse docker-compose config output: %v\n%s", err, out)
	}
	for _, want := range []string{"nats", "vigil", "prometheus", "grafana"} {
		if _, ok := cfg.Services[want]; !ok {
			t.Errorf("service %s missing", want)
		}
	}
	for name, svc := range cfg.Services {
		t.Run(name, func(t *testing.T) {
			for _, p := range svc.Ports {
				if !strings.HasPrefix(p, "127.0.0.1:") {
					t.Errorf("port %q is not bound to 127.0.0.1", p)
				}
			}
			if !svc.ReadOnly || !slices.Contains(svc.CapDrop, "ALL") || !slices.Contains(svc.SecurityOpt, "no-new-privileges:true") {
				t.Errorf("read_only %v, cap_drop %v, security_opt %v; want true, [ALL], [no-new-privileges:true]",
					svc.ReadOnly, svc.CapDrop, svc.SecurityOpt)
			}
			for _, v := range svc.Volumes {
				src, _, _ := strings.Cut(v, ":")
				if filepath.IsAbs(src) {
					if _, err := os.Stat(src); err != nil {
						t.Errorf("bind mount source %s: %v", src, err)
					}
				}
			}
		})
	}
}

// TestComposeRefusesMissingSecrets checks that the stack does not start with
// empty passwords: docker-compose must refuse and point at init-env.sh.
func TestComposeRefusesMissingSecrets(t *testing.T) {
	t.Parallel()
	out, err := composeConfig(t, nil)
	if err == nil || !strings.Contains(out, "init-env.sh") {
		t.Fatalf("docker-compose config without secrets: err %v, want a failure naming init-env.sh\n%s", err, out)
	}
}

// TestComposeGrafanaProvisioning checks that Grafana gets the Prometheus
// datasource and the dashboard directory the stack mounts.
func TestComposeGrafanaProvisioning(t *testing.T) {
	var ds struct {
		Datasources []struct {
			Type, URL string
			IsDefault bool `yaml:"isDefault"`
		} `yaml:"datasources"`
	}
	readYAML(t, "compose/grafana/provisioning/datasources/prometheus.yaml", &ds)
	if len(ds.Datasources) != 1 || ds.Datasources[0].Type != "prometheus" || ds.Datasources[0].URL != "http://prometheus:9090" || !ds.Datasources[0].IsDefault {
		t.Errorf("datasources = %+v, want one default prometheus at http://prometheus:9090", ds.Datasources)
	}
	var dash struct {
		Providers []struct {
			Type    string
			Options struct{ Path string }
		} `yaml:"providers"`
	}
	readYAML(t, "compose/grafana/provisioning/dashboards/vigil.yaml", &dash)
	compose, err := os.ReadFile("compose/compose.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(dash.Providers) != 1 || dash.Providers[0].Type != "file" {
		t.Fatalf("providers = %+v, want one file provider", dash.Providers)
	}
	mount := "../../dashboards/json:" + dash.Providers[0].Options.Path + ":ro"
	if !strings.Contains(string(compose), mount) {
		t.Errorf("compose.yaml does not mount the dashboards as %q", mount)
	}
}

// TestComposeSecretsNotOnCommandLines checks that no container gets a secret
// on its command line, where `ps` on the host and `docker inspect` show it:
// secrets go through environment variables (or files).
func TestComposeSecretsNotOnCommandLines(t *testing.T) {
	var cfg struct {
		Services map[string]struct {
			Command []string `yaml:"command"`
		} `yaml:"services"`
	}
	readYAML(t, "compose/compose.yaml", &cfg)
	for name, svc := range cfg.Services {
		for _, arg := range svc.Command {
			for _, s := range composeSecrets {
				if strings.Contains(arg, "${"+s) || strings.Contains(arg, "$"+s) {
					t.Errorf("service %s: the command line carries %s: %q; pass it in the environment", name, s, arg)
				}
			}
		}
	}
}
