package detect

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"regexp"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/vigil-sec/vigil/internal/yamlerr"
)

// maxRuleFile bounds one rule file.
const maxRuleFile = 4 << 20

// ruleFile is the top level of a rule file.
type ruleFile struct {
	// Lists declares operator lists the rules may use (see lists.go).
	Lists map[string]ListSpec `yaml:"lists"`
	Rules []*Rule             `yaml:"rules"`
}

// ParseRules parses and compiles the rules in one YAML file, with the lists
// it declares. name is used in errors, which read "name:line: ...".
// Unknown keys are errors.
func ParseRules(name string, data []byte) ([]*Rule, error) {
	return ParseRulesWith(name, data, nil)
}

// ParseRulesWith is ParseRules with lists that replace or add to those the
// file declares.
func ParseRulesWith(name string, data []byte, overrides map[string]ListSpec) ([]*Rule, error) {
	f, err := parseFile(name, data)
	if err != nil {
		return nil, err
	}
	ls, err := (*Lists)(nil).Merge(f.Lists)
	if err == nil {
		ls, err = ls.Merge(overrides)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return f.Rules, compileAll(f.Rules, ls)
}

// parseFile decodes one rule file and places its rules, without compiling.
func parseFile(name string, data []byte) (*ruleFile, error) {
	if len(data) > maxRuleFile {
		return nil, fmt.Errorf("%s: file is %d bytes; split it (at most %d)", name, len(data), maxRuleFile)
	}
	var f ruleFile
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil && !errors.Is(err, io.EOF) {
		return nil, yamlError(name, err)
	}
	lines := ruleLines(data)
	var errs []error
	for i, r := range f.Rules {
		if r == nil {
			errs = append(errs, fmt.Errorf("%s: rule %d is empty", name, i+1))
			continue
		}
		r.File = name
		if i < len(lines) {
			r.Line = lines[i]
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return &f, nil
}

// compileAll compiles rules with lists; errors name each rule.
func compileAll(rules []*Rule, ls *Lists) error {
	var errs []error
	for _, r := range rules {
		if err := r.CompileWith(ls); err != nil {
			errs = append(errs, ruleError(r, err))
		}
	}
	return errors.Join(errs...)
}

// ruleError prefixes each of err's lines with the rule's location and name.
func ruleError(r *Rule, err error) error {
	var errs []error
	for _, msg := range strings.Split(err.Error(), "\n") {
		errs = append(errs, fmt.Errorf("%s:%d: rule %q: %s", r.File, r.Line, r.Name, msg))
	}
	return errors.Join(errs...)
}

var lineRE = regexp.MustCompile(`^(?:yaml: )?line (\d+): (.*)$`)

// yamlError rewrites the YAML library's "line N: msg" errors as "name:N: msg",
// with N the line an editor shows.
func yamlError(name string, err error) error {
	var errs []error
	for _, m := range yamlerr.Messages(err) {
		if g := lineRE.FindStringSubmatch(m); g != nil {
			errs = append(errs, fmt.Errorf("%s:%s: %s", name, g[1], g[2]))
			continue
		}
		errs = append(errs, fmt.Errorf("%s: %s", name, m))
	}
	return errors.Join(errs...)
}

// ruleLines returns the line of each entry of the top-level rules list.
func ruleLines(data []byte) []int {
	var doc yaml.Node
	if yaml.Unmarshal(data, &doc) != nil || len(doc.Content) == 0 {
		return nil
	}
	top := doc.Content[0]
	if top.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(top.Content); i += 2 {
		if top.Content[i].Value == "rules" && top.Content[i+1].Kind == yaml.SequenceNode {
			var out []int
			for _, n := range top.Content[i+1].Content {
				out = append(out, n.Line)
			}
			return out
		}
	}
	return nil
}

// LoadFS parses every *.yaml and *.yml file directly in dir of fsys, in name
// order, and checks that rule names are unique across files. display is
// prepended to file names in errors and in Rule.File. The rules are compiled
// with the lists all files declare, replaced or completed by overrides (the
// daemon config's detect.lists).
func LoadFS(fsys fs.FS, dir, display string, overrides map[string]ListSpec) ([]*Rule, error) {
	entries, err := fs.ReadDir(fsys, dir)
	if err != nil {
		return nil, fmt.Errorf("read rules directory %s: %w", display, err)
	}
	var all []*Rule
	var errs []error
	lists := map[string]ListSpec{}
	listFile := map[string]string{}
	for _, ent := range entries {
		ext := path.Ext(ent.Name())
		if ent.IsDir() || (ext != ".yaml" && ext != ".yml") {
			continue
		}
		data, err := fs.ReadFile(fsys, path.Join(dir, ent.Name()))
		if err != nil {
			errs = append(errs, fmt.Errorf("read rule file: %w", err))
			continue
		}
		name := path.Join(display, ent.Name())
		f, err := parseFile(name, data)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for ln, spec := range f.Lists {
			if prev, dup := listFile[ln]; dup {
				errs = append(errs, fmt.Errorf("%s: list %q is already declared in %s; declare each list once", name, ln, prev))
			}
			lists[ln], listFile[ln] = spec, name
		}
		all = append(all, f.Rules...)
	}
	ls, err := (*Lists)(nil).Merge(lists)
	if err == nil {
		ls, err = ls.Merge(overrides)
	}
	if err == nil {
		err = compileAll(all, ls)
	}
	if err != nil {
		errs = append(errs, err)
	}
	errs = append(errs, duplicateNames(all)...)
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	if len(all) == 0 {
		return nil, fmt.Errorf("no rules in %s: add *.yaml files with a top-level rules: list", display)
	}
	return all, nil
}

func duplicateNames(rules []*Rule) []error {
	first := map[string]*Rule{}
	var errs []error
	for _, r := range rules {
		if p, ok := first[r.Name]; ok {
			errs = append(errs, fmt.Errorf("%s:%d: rule %q is already defined at %s:%d; rule names must be unique",
				r.File, r.Line, r.Name, p.File, p.Line))
			continue
		}
		first[r.Name] = r
	}
	return errs
}
