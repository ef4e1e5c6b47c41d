package deploy

import (
	"fmt"
	"maps"
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
	"NATS_PASSWORD_SIMULATOR", "NATS_SYS_PASSWORD", "NATS_ROUTE_PASSWORD", "GRAFANA_ADMIN_PASSWORD",
}

type composeFile struct {
	Services map[string]composeService `yaml:"services"`
}

type composeService struct {
	Image       string            `yaml:"image"`
	Command     []string          `yaml:"command"`
	Hostname    string            `yaml:"hostname"`
	Environment map[string]string `yaml:"environment"`
	Ports       []string          `yaml:"ports"`
	ReadOnly    bool              `yaml:"read_only"`
	CapDrop     []string          `yaml:"cap_drop"`
	SecurityOpt []string          `yaml:"security_opt"`
	Volumes     []string          `yaml:"volumes"`
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

// resolvedCompose is the compose stack as docker-compose resolves it (its
// anchors merged, the secrets set to test values).
func resolvedCompose(t *testing.T) composeFile {
	t.Helper()
	env := make([]string, 0, len(composeSecrets))
	for _, s := range composeSecrets {
		env = append(env, s+"=test"+strings.ToLower(strings.ReplaceAll(s, "_", "")))
	}
	out, err := composeConfig(t, env)
	if err != nil {
		t.Fatalf("docker-compose config: %v\n%s", err, out)
	}
	var cfg composeFile
	if err := yaml.Unmarshal([]byte(out), &cfg); err != nil {
		t.Fatalf("parse docker-compose config output: %v\n%s", err, out)
	}
	return cfg
}

// TestComposeConfig validates the compose stack with docker-compose and checks
// what the issue requires of it: every port on 127.0.0.1, every container
// read-only without capabilities or privilege escalation, and every bind
// mount pointing at a file of the repository.
func TestComposeConfig(t *testing.T) {
	t.Parallel()
	cfg := resolvedCompose(t)
	for _, want := range []string{"nats-1", "nats-2", "nats-3", "vigil-1", "vigil-2", "prometheus", "grafana"} {
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

// vigilClusterConfig is the part of a shipped Vigil config that makes its
// instances members of one cluster.
type vigilClusterConfig struct {
	NATS struct {
		URL      string `yaml:"url"`
		Replicas int    `yaml:"replicas"`
	} `yaml:"nats"`
	Cluster struct {
		Enabled bool   `yaml:"enabled"`
		Member  string `yaml:"member"`
	} `yaml:"cluster"`
}

// TestComposeCluster checks what makes the stack highly available: at least
// two Vigil members with the same config, which enables the cluster,
// replicates over three NATS nodes and lists every one of them; members
// told apart by their host names and data volumes; three NATS nodes of one
// cluster, each naming itself and routing to all three; Prometheus
// scraping every member.
func TestComposeCluster(t *testing.T) {
	t.Parallel()
	cfg := resolvedCompose(t)
	members, nodes := composeRoles(cfg)
	if len(members) < 2 || len(nodes) != 3 {
		t.Fatalf("Vigil members %v and NATS nodes %v; want at least 2 members on 3 nodes started with nats-cluster.conf", members, nodes)
	}
	var vc vigilClusterConfig
	readYAML(t, "compose/vigil.yaml", &vc)
	if !vc.Cluster.Enabled || vc.Cluster.Member != "" || vc.NATS.Replicas != 3 {
		t.Errorf("compose/vigil.yaml: cluster.enabled %v, cluster.member %q, nats.replicas %d; want true, empty (the host name) and 3",
			vc.Cluster.Enabled, vc.Cluster.Member, vc.NATS.Replicas)
	}
	var urls []string
	for _, n := range nodes {
		urls = append(urls, "nats://"+cfg.Services[n].Hostname+":4222")
	}
	if got := strings.Split(vc.NATS.URL, ","); !slices.Equal(got, urls) {
		t.Errorf("compose/vigil.yaml: nats.url lists %v, want every node: %v", got, urls)
	}
	targets := checkComposeMembers(t, cfg, members)
	checkComposeNodes(t, cfg, nodes)
	if scraped := scrapeTargets(t, "compose/prometheus.yml", "vigil"); !slices.Equal(scraped, targets) {
		t.Errorf("compose/prometheus.yml job vigil scrapes %v, want every member: %v", scraped, targets)
	}
}

// composeRoles returns the Vigil members (services that run the daemon)
// and the NATS cluster nodes of the stack, by name.
func composeRoles(cfg composeFile) (members, nodes []string) {
	for name, svc := range cfg.Services {
		switch {
		case len(svc.Command) > 0 && svc.Command[0] == "run":
			members = append(members, name)
		case slices.Contains(svc.Command, "/etc/nats/nats-cluster.conf"):
			nodes = append(nodes, name)
		}
	}
	slices.Sort(members)
	slices.Sort(nodes)
	return members, nodes
}

// checkComposeMembers checks that every member mounts compose/vigil.yaml
// and has a host name (its member name), a data volume and a host port of
// its own; it returns the members' scrape targets, sorted.
func checkComposeMembers(t *testing.T, cfg composeFile, members []string) []string {
	t.Helper()
	seen := map[string]string{}
	unique := func(what, value, svc string) {
		if prev, ok := seen[what+value]; ok || value == "" {
			t.Errorf("%s and %s have the same %s %q", prev, svc, what, value)
		}
		seen[what+value] = svc
	}
	var targets []string
	for _, m := range members {
		svc := cfg.Services[m]
		unique("host name (member name)", svc.Hostname, m)
		if !slices.ContainsFunc(svc.Volumes, func(v string) bool {
			return strings.HasSuffix(v, "deploy/compose/vigil.yaml:/etc/vigil/vigil.yaml:ro")
		}) {
			t.Errorf("%s does not mount compose/vigil.yaml read-only: %v", m, svc.Volumes)
		}
		for _, v := range svc.Volumes {
			if src, dst, _ := strings.Cut(v, ":"); strings.HasPrefix(dst, "/var/lib/vigil") {
				unique("data volume", src, m)
			}
		}
		for _, p := range svc.Ports {
			unique("host port", strings.Split(p, ":")[1], m)
		}
		targets = append(targets, svc.Hostname+":9750")
	}
	slices.Sort(targets)
	return targets
}

// checkComposeNodes checks that node i is called nats-i, keeps its route
// port off the host, and routes to the same three URLs as the others, one
// per node, with the route password.
func checkComposeNodes(t *testing.T, cfg composeFile, nodes []string) {
	t.Helper()
	routes := map[string]bool{}
	for i, n := range nodes {
		svc := cfg.Services[n]
		if want := fmt.Sprintf("nats-%d", i+1); svc.Environment["NATS_SERVER_NAME"] != want || svc.Hostname != want {
			t.Errorf("%s: NATS_SERVER_NAME %q and host name %q, want %s", n, svc.Environment["NATS_SERVER_NAME"], svc.Hostname, want)
		}
		for _, p := range svc.Ports {
			if strings.Contains(p, ":6222") {
				t.Errorf("%s publishes the route port on the host: %s", n, p)
			}
		}
		for j := range nodes {
			routes[svc.Environment[fmt.Sprintf("NATS_ROUTE_%d", j+1)]] = true
		}
	}
	for _, n := range nodes {
		svc := cfg.Services[n]
		want := "nats-route://route:" + svc.Environment["NATS_ROUTE_PASSWORD"] + "@" + svc.Hostname + ":6222"
		if !routes[want] || len(routes) != len(nodes) {
			t.Errorf("route URLs %v: want the same three on every node, %s among them", slices.Sorted(maps.Keys(routes)), want)
		}
	}
}

// scrapeTargets returns the static targets of job in a Prometheus
// configuration file, sorted.
func scrapeTargets(t *testing.T, file, job string) []string {
	t.Helper()
	var prom struct {
		ScrapeConfigs []struct {
			JobName       string `yaml:"job_name"`
			StaticConfigs []struct {
				Targets []string `yaml:"targets"`
			} `yaml:"static_configs"`
		} `yaml:"scrape_configs"`
	}
	readYAML(t, file, &prom)
	var targets []string
	for _, sc := range prom.ScrapeConfigs {
		if sc.JobName == job {
			for _, st := range sc.StaticConfigs {
				targets = append(targets, st.Targets...)
			}
		}
	}
	slices.Sort(targets)
	return targets
}

// TestComposeInitEnv runs init-env.sh: a first run writes every secret the
// stack needs, and a run over an .env written before a secret was added
// keeps the passwords it had and adds the one it lacks.
func TestComposeInitEnv(t *testing.T) {
	t.Parallel()
	sh := needTool(t, "sh")
	dir := t.TempDir()
	script, err := os.ReadFile("compose/init-env.sh")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "init-env.sh"), script, 0o700); err != nil {
		t.Fatal(err)
	}
	env := filepath.Join(dir, ".env")
	readEnv := func() map[string]string {
		t.Helper()
		b, err := os.ReadFile(env)
		if err != nil {
			t.Fatal(err)
		}
		vals := map[string]string{}
		for _, l := range lines(string(b)) {
			k, v, _ := strings.Cut(l, "=")
			vals[k] = v
		}
		return vals
	}
	if out, err := run(t, time.Minute, dir, nil, sh, "init-env.sh"); err != nil {
		t.Fatalf("init-env.sh: %v\n%s", err, out)
	}
	first := readEnv()
	for _, s := range composeSecrets {
		if len(first[s]) < 20 || strings.Trim(first[s], "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789") != "" {
			t.Errorf("%s = %q, want a random password of letters and digits (it goes into route URLs)", s, first[s])
		}
	}
	if fi, err := os.Stat(env); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf(".env mode %v (%v), want 0600", fi.Mode().Perm(), err)
	}

	old := ""
	for _, s := range composeSecrets {
		if s != "NATS_ROUTE_PASSWORD" {
			old += s + "=" + first[s] + "\n"
		}
	}
	if err := os.WriteFile(env, []byte(old), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := run(t, time.Minute, dir, nil, sh, "init-env.sh")
	if err != nil || !strings.Contains(out, "added: NATS_ROUTE_PASSWORD") {
		t.Fatalf("init-env.sh over an older .env: %v, want it to say it added NATS_ROUTE_PASSWORD\n%s", err, out)
	}
	second := readEnv()
	for _, s := range composeSecrets {
		if s != "NATS_ROUTE_PASSWORD" && second[s] != first[s] {
			t.Errorf("%s changed from %q to %q: an existing password must stay", s, first[s], second[s])
		}
	}
	if second["NATS_ROUTE_PASSWORD"] == "" || len(second) != len(composeSecrets) {
		t.Errorf(".env after the second run: %v, want the old passwords and a new NATS_ROUTE_PASSWORD", slices.Sorted(maps.Keys(second)))
	}
}
