package main

import (
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/vigil-sec/vigil/config"
	"github.com/vigil-sec/vigil/detect"
	"github.com/vigil-sec/vigil/rules"
)

// checked is a configuration that passed every check `vigil run` makes
// before it starts anything.
type checked struct {
	cfg      config.Config
	raw      []byte // the config file and flags, for the config hash
	rules    []*detect.Rule
	warnings []string // problems that do not stop Vigil
}

// check reads the config file and flags and makes every check `vigil run`
// makes before it starts anything (config.Preflight and the rules). `vigil
// run`, a reload and `vigil config check` all go through it, so they refuse
// the same things with the same messages, and warn alike: about files
// others may read and about routes no loaded rule can match.
func (f *daemonFlags) check() (checked, error) {
	cfg, raw, err := f.read()
	if err != nil {
		return checked{}, err
	}
	warnings, err := cfg.Preflight()
	if err != nil && f.configPath != "" {
		return checked{}, fmt.Errorf("%s: %w", f.configPath, err)
	}
	if err != nil {
		return checked{}, err
	}
	rs, err := loadRules(cfg.Detect.Rules, cfg.Detect.Lists)
	if err != nil {
		return checked{}, err
	}
	warnings = append(warnings, cfg.Notify.Lint(rs)...)
	return checked{cfg: cfg, raw: raw, rules: rs, warnings: warnings}, nil
}

// loadRules loads the rules as the daemon does (a directory, or the
// embedded set for ""), and explains the two mistakes its errors leave
// obscure: a file given instead of a directory, and rule test files in the
// directory.
func loadRules(dir string, lists map[string]detect.ListSpec) ([]*detect.Rule, error) {
	if dir != "" {
		if fi, err := os.Stat(dir); err == nil && !fi.IsDir() {
			if isRuleTestFile(dir) {
				return nil, testFileError(dir)
			}
			return nil, fmt.Errorf("rules %s is a file; give the directory that holds the rule files (detect.rules, --rules)", dir)
		}
	}
	rs, err := rules.LoadWith(dir, lists)
	if err == nil || dir == "" {
		return rs, err
	}
	var tests []string
	if ents, rerr := os.ReadDir(dir); rerr == nil {
		for _, e := range ents {
			if p := path.Join(dir, e.Name()); !e.IsDir() && isRuleTestFile(p) {
				tests = append(tests, p)
			}
		}
	}
	if len(tests) == 0 {
		return nil, err
	}
	// Each test file's own errors (its tests: key is unknown to the rule
	// format) give way to one that says what the file is.
	var errs []error
	for _, e := range splitErrors(err) {
		if !slices.ContainsFunc(tests, func(p string) bool { return strings.HasPrefix(e.Error(), p+":") }) {
			errs = append(errs, e)
		}
	}
	for _, p := range tests {
		errs = append(errs, fmt.Errorf("%w; keep rule tests out of the rule directory", testFileError(p)))
	}
	return nil, errors.Join(errs...)
}

func testFileError(p string) error {
	return fmt.Errorf("%s is a rule test file (it has tests:), not a rule file: run it with vigil rules test %s", p, p)
}

// isRuleTestFile reports whether p is a YAML file whose top level has
// tests: and no rules:.
func isRuleTestFile(p string) bool {
	if ext := filepath.Ext(p); ext != ".yaml" && ext != ".yml" {
		return false
	}
	data, err := os.ReadFile(p)
	if err != nil {
		return false
	}
	var top map[string]yaml.Node
	if yaml.Unmarshal(data, &top) != nil {
		return false
	}
	_, tests := top["tests"]
	_, rulesKey := top["rules"]
	return tests && !rulesKey
}
