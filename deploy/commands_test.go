package deploy

import (
	"encoding/json"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

var flagLine = regexp.MustCompile(`(?m)^\s+-([a-z][a-z0-9-]*)`)

// flagsOf returns the flags `vigil <sub> -h` lists.
func flagsOf(t *testing.T, bin, sub string) []string {
	t.Helper()
	out, _ := run(t, time.Minute, ".", nil, bin, sub, "-h") // -h exits 2 after printing
	var flags []string
	for _, m := range flagLine.FindAllStringSubmatch(out, -1) {
		flags = append(flags, m[1])
	}
	if len(flags) == 0 {
		t.Fatalf("vigil %s -h lists no flags:\n%s", sub, out)
	}
	return flags
}

// shippedCommandLines returns every vigil command line of the kit, by where
// it is written; each starts with the subcommand.
func shippedCommandLines(t *testing.T) map[string][]string {
	t.Helper()
	lines := map[string][]string{}
	exec := readUnit(t, unitFile)["ExecStart"]
	if len(exec) != 1 {
		t.Fatalf("ExecStart = %q", exec)
	}
	lines["systemd ExecStart"] = strings.Fields(exec[0])[1:]
	for _, ins := range dockerfile(t) {
		if rest, ok := strings.CutPrefix(ins, "CMD "); ok {
			var cmd []string
			if err := json.Unmarshal([]byte(rest), &cmd); err != nil {
				t.Fatalf("Dockerfile CMD %s: %v", rest, err)
			}
			lines["Dockerfile CMD"] = cmd
		}
	}
	var compose composeFile
	readYAML(t, "compose/compose.yaml", &compose)
	for name, svc := range compose.Services {
		if svc.Image == "vigil:local" {
			lines["compose "+name] = svc.Command
		}
	}
	var d deploymentSpec
	decodeSpec(t, loadManifests(t)["Deployment/vigil"], &d)
	lines["kubernetes Deployment"] = d.Template.Spec.Containers[0].Args
	return lines
}

// TestShippedCommandLines checks every flag that a unit, image, compose
// service or Deployment passes to vigil against what the binary accepts.
func TestShippedCommandLines(t *testing.T) {
	t.Parallel()
	bin := buildVigil(t)
	flags := map[string][]string{}
	for where, args := range shippedCommandLines(t) {
		t.Run(where, func(t *testing.T) {
			if len(args) == 0 {
				t.Fatal("no command line")
			}
			sub := args[0]
			if _, ok := flags[sub]; !ok {
				flags[sub] = flagsOf(t, bin, sub)
			}
			for _, a := range args[1:] {
				name, ok := strings.CutPrefix(a, "--")
				if !ok {
					continue // a flag's value
				}
				name, _, _ = strings.Cut(name, "=")
				if !slices.Contains(flags[sub], name) {
					t.Errorf("vigil %s has no flag --%s (it has %v)", sub, name, flags[sub])
				}
			}
		})
	}
}

// TestKubernetesRulesLoad runs `vigil rules check` on the rule files of the
// generated ConfigMap, laid out as the pod sees them.
func TestKubernetesRulesLoad(t *testing.T) {
	t.Parallel()
	bin := buildVigil(t)
	dir := writeRulesConfigMap(t, t.TempDir())
	out, err := run(t, time.Minute, ".", nil, bin, "rules", "check", dir)
	if err != nil {
		t.Fatalf("vigil rules check on the ConfigMap's rules: %v\n%s", err, out)
	}
}
