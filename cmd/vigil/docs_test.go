package main

// The documentation's examples are checked here, through the commands a
// reader would run: every YAML block of the documents below that is a
// config (or part of one) goes through `vigil config check`, every rule
// example through `vigil rules check`, and the rules, categories and
// severities that examples route or silence on must exist in the shipped
// rules. Values an example cannot carry (secrets in the environment, the
// files *_file keys name, a token's hash) are provided by the test.

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"maps"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/vigil-sec/vigil/admin"
	"github.com/vigil-sec/vigil/detect"
	"github.com/vigil-sec/vigil/event"
	"github.com/vigil-sec/vigil/internal/testfiles"
	"github.com/vigil-sec/vigil/rules"
)

// docFiles are the documents whose examples must work as printed, relative
// to the repository root.
var docFiles = []string{"README.md", "docs/rules.md", "docs/detections.md", "docs/security.md", "docs/notifications.md", "docs/webhooks.md", "docs/grafana.md", "docs/scaling.md"}

// example is one fenced code block of a document.
type example struct {
	file string
	line int // of the opening fence
	lang string
	text string // dedented to the fence's indentation
}

func (e example) String() string { return fmt.Sprintf("%s:%d", e.file, e.line) }

var fence = regexp.MustCompile("^( *)```(\\w*)\\s*$")

// examples returns the fenced code blocks of the document at path.
func examples(t *testing.T, path string) []example {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "..", path))
	if err != nil {
		t.Fatal(err)
	}
	var out []example
	var cur *example
	var indent string
	for i, line := range strings.Split(string(data), "\n") {
		m := fence.FindStringSubmatch(line)
		switch {
		case cur == nil && m != nil:
			cur, indent = &example{file: path, line: i + 1, lang: m[2]}, m[1]
		case cur != nil && m != nil && m[1] == indent && m[2] == "":
			out = append(out, *cur)
			cur = nil
		case cur != nil:
			cur.text += strings.TrimPrefix(line, indent) + "\n"
		}
	}
	return out
}

// shipped is what the shipped rules name.
type shipped struct{ rules, categories map[string]bool }

func shippedRules(t *testing.T) shipped {
	t.Helper()
	rs, err := rules.Load("")
	if err != nil {
		t.Fatal(err)
	}
	s := shipped{rules: map[string]bool{}, categories: map[string]bool{}}
	for _, r := range rs {
		s.rules[r.Name], s.categories[r.Category] = true, true
	}
	return s
}

// Top-level keys that identify what a YAML example is.
var (
	configKeys = []string{"listen", "data_dir", "allow_inline_secrets", "secret_file_permissions", "log", "nats",
		"ingest", "detect", "receivers", "routes", "notify", "admin", "privacy", "cluster"}
	receiverKinds = []string{"slack", "webhook", "alertmanager", "log"}
	// Keys of other programs' files shown in the docs: Prometheus, Grafana
	// and Alertmanager.
	foreignKeys = []string{"scrape_configs", "apiVersion", "route"}
)

func TestDocExamples(t *testing.T) {
	known := shippedRules(t)
	for _, file := range docFiles {
		for _, ex := range examples(t, file) {
			switch ex.lang {
			case "yaml":
				t.Run(ex.String(), func(t *testing.T) { checkYAMLExample(t, ex, known) })
			case "json", "sh":
				if ruleMatcher.MatchString(ex.text) {
					t.Run(ex.String(), func(t *testing.T) { checkSilenceMatchers(t, ex.text, known) })
				}
			}
		}
	}
}

func checkYAMLExample(t *testing.T, ex example, known shipped) {
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte(ex.text), &doc); err != nil || len(doc.Content) == 0 || doc.Content[0].Kind != yaml.MappingNode {
		t.Fatalf("not a YAML mapping (%v):\n%s", err, ex.text)
	}
	top := doc.Content[0]
	var keys []string
	for i := 0; i < len(top.Content); i += 2 {
		keys = append(keys, top.Content[i].Value)
	}
	in := func(set []string) bool {
		return !slices.ContainsFunc(keys, func(k string) bool { return !slices.Contains(set, k) })
	}
	switch {
	case in([]string{"rules", "lists"}):
		path := testfiles.Write(t, t.TempDir(), "example.yaml", ex.text)
		expectOK(t, runRules, "check", path)
	case in([]string{"rule_files", "lists", "tests"}):
		path := testfiles.Write(t, t.TempDir(), "example.yaml", ex.text)
		for _, name := range inputFiles(t, ex.text) {
			testfiles.Write(t, filepath.Dir(path), name, "")
		}
		expectOK(t, runRules, "test", path)
	case in(yamlKeys(detect.Rule{})) || in(yamlKeys(detect.ConditionSpec{})):
		// A part of a rule (its sequence, its conditions) or of a condition
		// (a check): it must compile inside a rule that completes it.
		path := testfiles.Write(t, t.TempDir(), "example.yaml", completeRule(t, top, keys))
		expectOK(t, runRules, "check", path)
	case slices.ContainsFunc(keys, func(k string) bool { return slices.Contains(foreignKeys, k) }):
		// Prometheus, Grafana or Alertmanager configuration: not Vigil's to
		// check (deploy/ tests the copies the kit ships with the real tools).
	case in(receiverKinds) && len(keys) == 1:
		top = &yaml.Node{Kind: yaml.MappingNode, Content: []*yaml.Node{
			scalar("receivers"), {Kind: yaml.SequenceNode, Content: []*yaml.Node{{Kind: yaml.MappingNode,
				Content: append([]*yaml.Node{scalar("name"), scalar("example")}, top.Content...)}}},
		}}
		checkConfigExample(t, top, known)
	case in(configKeys):
		checkConfigExample(t, top, known)
	default:
		t.Fatalf("an example of an unknown kind (top-level keys %q); teach TestDocExamples what it is:\n%s", keys, ex.text)
	}
}

// checkConfigExample provides what the config needs and runs `vigil config
// check` on it: it must pass without a warning.
func checkConfigExample(t *testing.T, top *yaml.Node, known shipped) {
	dir := t.TempDir()
	p := provider{t: t, dir: dir}
	p.fill(top, "")
	completeRouting(t, top)
	checkRouteMatchers(t, top, known)
	text, err := yaml.Marshal(top)
	if err != nil {
		t.Fatal(err)
	}
	path := testfiles.Write(t, dir, "vigil.yaml", string(text))
	expectOK(t, runConfig, "check", "--config", path)
}

func expectOK(t *testing.T, cmd func(context.Context, streams, []string) int, args ...string) {
	t.Helper()
	var out, errb bytes.Buffer
	if code := cmd(context.Background(), streams{stdout: &out, stderr: &errb}, args); code != 0 || errb.Len() > 0 {
		text, _ := os.ReadFile(args[len(args)-1])
		t.Fatalf("exit %d\n%s%s\nas checked:\n%s", code, out.String(), errb.String(), text)
	}
}

// provider fills in what an example cannot carry.
type provider struct {
	t         *testing.T
	dir       string
	cert, key string // made on first use
}

// fill walks the config, key path by key path.
func (p *provider) fill(n *yaml.Node, key string) {
	switch n.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i].Value
			p.fill(n.Content[i+1], strings.TrimPrefix(key+"."+k, "."))
		}
	case yaml.SequenceNode:
		for _, c := range n.Content {
			p.fill(c, key+"[]")
		}
	case yaml.ScalarNode:
		n.Value = p.value(key, n.Value)
	}
}

var envRef = regexp.MustCompile(`^\$\{([A-Za-z_][A-Za-z0-9_]*)\}$`)

// value returns what the test puts at key instead of v.
func (p *provider) value(key, v string) string {
	last := key[strings.LastIndex(key, ".")+1:]
	if m := envRef.FindStringSubmatch(v); m != nil {
		p.t.Setenv(m[1], p.secret(last))
		return v
	}
	switch {
	case v == "":
		return v
	case last == "data_dir":
		return filepath.Join(p.dir, "data")
	case key == "detect.rules":
		return filepath.Join("..", "..", "rules")
	case last == "sha256" && strings.HasPrefix(v, "<"): // the docs' placeholder
		return p.hash()
	case strings.HasSuffix(last, "_file"):
		return p.file(key, last)
	}
	return v
}

// secret returns a value of the right form for a secret key.
func (p *provider) secret(last string) string {
	switch strings.TrimSuffix(last, "_file") {
	case "token":
		return "xoxb-0000-0000-doctest"
	case "webhook_url":
		return "https://hooks.slack.com/services/T000/B000/doctest"
	case "secret":
		b := make([]byte, 32)
		_, _ = rand.Read(b)
		return "whsec_" + base64.StdEncoding.EncodeToString(b)
	}
	return "doc-test-" + last
}

// hash returns the SHA-256 of a fresh token: each token needs its own.
func (p *provider) hash() string {
	_, h := admin.NewToken()
	return h
}

// file writes the file a *_file key names and returns its path.
func (p *provider) file(key, last string) string {
	if p.cert == "" {
		p.cert, p.key = testfiles.TLS(p.t, p.dir, "doc")
	}
	name := strings.NewReplacer("[]", "", ".", "-").Replace(key)
	switch {
	case last == "cert_file", last == "ca_file", last == "client_ca_file":
		return p.cert
	case last == "key_file" && strings.Contains(key, "tls."):
		return p.key
	case last == "key_file": // privacy
		return testfiles.Write(p.t, p.dir, name, strings.Repeat("k", 44)+"\n")
	case last == "sha256_file":
		return testfiles.Write(p.t, p.dir, name, p.hash()+"\n")
	case last == "creds_file":
		return testfiles.NATSCreds(p.t, p.dir)
	case last == "nkey_seed_file":
		return testfiles.NKeySeed(p.t, p.dir)
	}
	return testfiles.Write(p.t, p.dir, name, p.secret(last)+"\n")
}

// completeRouting completes an example that shows only half of the
// routing (the other half is in another example): routes get a log
// receiver for each receiver name they use that the example does not
// define, and receivers without routes get a default route to all of them.
func completeRouting(t *testing.T, top *yaml.Node) {
	_, routes := lookup(top, "routes")
	_, recv := lookup(top, "receivers")
	if routes == nil && recv == nil {
		return
	}
	if recv == nil {
		recv = &yaml.Node{Kind: yaml.SequenceNode}
		top.Content = append(top.Content, scalar("receivers"), recv)
	}
	defined := map[string]bool{}
	var all []*yaml.Node
	for _, r := range recv.Content {
		if _, n := lookup(r, "name"); n != nil {
			defined[n.Value] = true
			all = append(all, scalar(n.Value))
		}
	}
	if routes == nil {
		top.Content = append(top.Content, scalar("routes"), &yaml.Node{Kind: yaml.SequenceNode, Content: []*yaml.Node{
			{Kind: yaml.MappingNode, Content: []*yaml.Node{scalar("receivers"), {Kind: yaml.SequenceNode, Content: all}}},
		}})
		return
	}
	for _, route := range routes.Content {
		_, names := lookup(route, "receivers")
		if names == nil {
			continue
		}
		for _, n := range names.Content {
			if !defined[n.Value] {
				defined[n.Value] = true
				recv.Content = append(recv.Content, mustNode(t, "{name: "+strconv.Quote(n.Value)+", log: {}}"))
			}
		}
	}
}

// checkRouteMatchers checks that routes match on rules, categories and
// severities that exist.
func checkRouteMatchers(t *testing.T, top *yaml.Node, known shipped) {
	_, routes := lookup(top, "routes")
	if routes == nil {
		return
	}
	for _, route := range routes.Content {
		_, match := lookup(route, "match")
		if match == nil {
			continue
		}
		for i := 0; i+1 < len(match.Content); i += 2 {
			values := []*yaml.Node{match.Content[i+1]}
			if match.Content[i+1].Kind == yaml.SequenceNode {
				values = match.Content[i+1].Content
			}
			for _, v := range values {
				switch k := match.Content[i].Value; {
				case k == "rule" && !known.rules[v.Value],
					k == "category" && !known.categories[v.Value],
					k == "severity" && !slices.Contains(detect.Severities, v.Value):
					t.Errorf("a route matches %s %q, which no shipped rule has (rules/*.yaml)", k, v.Value)
				}
			}
		}
	}
}

var ruleMatcher = regexp.MustCompile(`"name"\s*:\s*"rule"\s*,\s*"op"\s*:\s*"="\s*,\s*"value"\s*:\s*"([^"]*)"`)

// checkSilenceMatchers checks that silences in examples name shipped rules.
func checkSilenceMatchers(t *testing.T, text string, known shipped) {
	for _, m := range ruleMatcher.FindAllStringSubmatch(text, -1) {
		if !known.rules[m[1]] {
			t.Errorf("a silence names rule %q, which is not a shipped rule (rules/*.yaml)", m[1])
		}
	}
}

func scalar(v string) *yaml.Node { return &yaml.Node{Kind: yaml.ScalarNode, Value: v} }

func mustNode(t *testing.T, text string) *yaml.Node {
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte(text), &doc); err != nil {
		t.Fatal(err)
	}
	return doc.Content[0]
}

var (
	firesAfter = regexp.MustCompile("`([a-z_]+)`(?: fires)? after (\\d+) failed logins from one address within (\\d+) seconds")
	loopCount  = regexp.MustCompile(`\$\(seq (\d+)\)`)
)

// TestQuickStartThresholds keeps the README's "Fire your first alert" true
// for the shipped rules: the section's loop of failed logins, sent from one
// address as fast as curl sends them, makes each rule it names fire at the
// attempt it says, and not before. When the default rules change, this
// says which sentence to update.
func TestQuickStartThresholds(t *testing.T) {
	data, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(data), "### Fire your first alert\n")
	if !ok {
		t.Fatal(`README.md has no "### Fire your first alert" section`)
	}
	section, _, _ = strings.Cut(section, "\n#")
	claims := firesAfter.FindAllStringSubmatch(section, -1)
	loop := loopCount.FindStringSubmatch(section)
	if len(claims) == 0 || loop == nil {
		t.Fatalf("the section names no rule with its threshold, or has no loop:\n%s", section)
	}
	attempts, _ := strconv.Atoi(loop[1])
	fired := quickStartRun(t, attempts)
	for _, c := range claims {
		n, _ := strconv.Atoi(c[2])
		secs, _ := strconv.Atoi(c[3])
		switch at, ok := fired[c[1]]; {
		case !ok:
			t.Errorf("README says %s fires after %d failed logins; the loop of %d did not fire it", c[1], n, attempts)
		case at != n:
			t.Errorf("README says %s fires after %d failed logins; it fired at attempt %d", c[1], n, at)
		case n > 1 && time.Duration(n-1)*quickStartGap > time.Duration(secs)*time.Second:
			t.Errorf("README says %d failed logins within %d seconds, but the loop takes longer", n, secs)
		}
	}
}

// quickStartGap is about how far apart the loop's curl calls are.
const quickStartGap = 100 * time.Millisecond

// quickStartRun sends attempts failed logins for alice from one address
// through the shipped rules and returns, per rule, the attempt that fired it.
func quickStartRun(t *testing.T, attempts int) map[string]int {
	rs, err := rules.Load("")
	if err != nil {
		t.Fatal(err)
	}
	fired := map[string]int{}
	n := 0
	e, err := detect.New(rs, detect.Options{Emit: func(a detect.Alert) {
		if _, seen := fired[a.Rule]; !seen && a.Transition == detect.TransitionFiring {
			fired[a.Rule] = n
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	t0 := time.Date(2026, 1, 1, 9, 0, 0, 0, time.UTC)
	for n = 1; n <= attempts; n++ {
		e.Process(&event.Event{Time: t0.Add(time.Duration(n) * quickStartGap), Service: "loginapi",
			RequestID: strconv.Itoa(n), Method: "POST", Endpoint: "/v1/auth/login", Status: 401,
			SourceIP: netip.MustParseAddr("127.0.0.1"), User: "alice"})
	}
	return fired
}

// yamlKeys returns the YAML keys of a struct's fields.
func yamlKeys(v any) []string {
	var keys []string
	typ := reflect.TypeOf(v)
	for i := range typ.NumField() {
		name, _, _ := strings.Cut(typ.Field(i).Tag.Get("yaml"), ",")
		if name != "" && name != "-" {
			keys = append(keys, name)
		}
	}
	return keys
}

// completeRule returns a rule file holding the rule part or condition part
// top (with keys), completed into a rule that matches every event and
// counts every event as its denominator.
func completeRule(t *testing.T, top *yaml.Node, keys []string) string {
	t.Helper()
	part := map[string]any{}
	if err := top.Decode(&part); err != nil {
		t.Fatal(err)
	}
	rule := map[string]any{"name": "example", "description": "d", "severity": "low", "category": "c", "match": "true"}
	if !slices.ContainsFunc(keys, func(k string) bool { return slices.Contains(yamlKeys(detect.Rule{}), k) }) {
		// A condition, or a check of one.
		if _, ok := part["window"]; !ok {
			part["window"] = "1m"
		}
		part = map[string]any{"when": []any{part}}
	}
	if _, ok := part["when"]; ok {
		rule["of"] = "true"
	}
	maps.Copy(rule, part)
	// The lists the shipped rules declare, which examples refer to.
	var shipped map[string]any
	data, err := os.ReadFile(filepath.Join("..", "..", "rules", "lists.yaml"))
	if err == nil {
		err = yaml.Unmarshal(data, &shipped)
	}
	if err != nil {
		t.Fatal(err)
	}
	out, err := yaml.Marshal(map[string]any{"lists": shipped["lists"], "rules": []any{rule}})
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

// inputFiles returns the input_file names of a rule test file.
func inputFiles(t *testing.T, text string) []string {
	t.Helper()
	var f struct {
		Tests []struct {
			InputFile string `yaml:"input_file"`
		} `yaml:"tests"`
	}
	if err := yaml.Unmarshal([]byte(text), &f); err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, tc := range f.Tests {
		if tc.InputFile != "" {
			names = append(names, tc.InputFile)
		}
	}
	return names
}
