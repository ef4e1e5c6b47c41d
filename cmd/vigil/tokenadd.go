package main

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/vigil-sec/vigil/admin"
)

// addTokenToConfig adds e to admin.tokens in the config file path, creating
// the file (mode 0600) when it does not exist. It edits the text, so the
// file's comments and layout stay as they were, and only in the shapes it can
// edit safely: no admin section, an admin section without tokens, or tokens
// as a block list. The result must decode and its admin section validate
// before the file is replaced (atomically, keeping its mode).
func addTokenToConfig(path string, e tokenEntry) error {
	old, err := os.ReadFile(path)
	mode := fs.FileMode(0o600)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		old = nil
	case err != nil:
		return fmt.Errorf("read config: %w", err)
	default:
		if fi, err := os.Stat(path); err == nil {
			mode = fi.Mode().Perm()
		}
	}
	text, err := withToken(old, e)
	if err != nil {
		return fmt.Errorf("%s: %w; add this entry under admin.tokens yourself:\n%s", path, err, e.yaml("  "))
	}
	if err := checkAdminSection(text); err != nil {
		return fmt.Errorf("%s: with the new token: %w", path, err)
	}
	return writeFileAtomic(path, text, mode)
}

// withToken returns doc with e added to admin.tokens.
func withToken(doc []byte, e tokenEntry) ([]byte, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(doc, &root); err != nil {
		return nil, fmt.Errorf("the file is not valid YAML (%v)", err)
	}
	if len(root.Content) == 0 { // empty file
		return append(doc, "admin:\n  tokens:\n"+e.yaml("    ")...), nil
	}
	top := root.Content[0]
	if top.Kind != yaml.MappingNode || top.Style&yaml.FlowStyle != 0 {
		return nil, errors.New("its top level is not a block mapping")
	}
	adminKey, adminVal := lookup(top, "admin")
	lines := strings.SplitAfter(string(doc), "\n")
	switch {
	case adminKey == nil:
		if len(doc) > 0 && !bytes.HasSuffix(doc, []byte("\n")) {
			doc = append(doc, '\n')
		}
		return append(doc, "admin:\n  tokens:\n"+e.yaml("    ")...), nil
	case adminVal.Kind == yaml.ScalarNode && adminVal.Tag == "!!null" && adminVal.Line == adminKey.Line:
		return insertAfter(lines, adminKey.Line, "  tokens:\n"+e.yaml("    ")), nil
	case adminVal.Kind != yaml.MappingNode || adminVal.Style&yaml.FlowStyle != 0:
		return nil, errors.New("its admin section is not a block mapping")
	}
	indent := strings.Repeat(" ", adminVal.Column-1)
	tokKey, tokVal := lookup(adminVal, "tokens")
	switch {
	case tokKey == nil:
		return insertAfter(lines, adminKey.Line, indent+"tokens:\n"+e.yaml(indent+"  ")), nil
	case tokVal.Kind == yaml.ScalarNode && tokVal.Tag == "!!null" && tokVal.Line == tokKey.Line:
		return insertAfter(lines, tokKey.Line, e.yaml(indent+"  ")), nil
	case tokVal.Kind != yaml.SequenceNode || tokVal.Style&yaml.FlowStyle != 0 || len(tokVal.Content) == 0:
		return nil, errors.New("its admin.tokens is not a block list")
	}
	last := tokVal.Content[len(tokVal.Content)-1]
	dash := strings.Index(lines[last.Line-1], "-")
	if dash < 0 {
		return nil, errors.New("its admin.tokens list has an unusual layout")
	}
	return insertAfter(lines, lastLine(last), e.yaml(lines[last.Line-1][:dash])), nil
}

// lookup returns the key and value nodes of key in mapping m, or nils.
func lookup(m *yaml.Node, key string) (k, v *yaml.Node) {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i], m.Content[i+1]
		}
	}
	return nil, nil
}

// lastLine returns the last line any node under n starts on.
func lastLine(n *yaml.Node) int {
	l := n.Line
	for _, c := range n.Content {
		l = max(l, lastLine(c))
	}
	return l
}

// insertAfter returns lines with text inserted after line n (1-based).
func insertAfter(lines []string, n int, text string) []byte {
	var b strings.Builder
	for i, l := range lines {
		b.WriteString(l)
		if i == n-1 {
			if !strings.HasSuffix(l, "\n") {
				b.WriteString("\n")
			}
			b.WriteString(text)
		}
	}
	return []byte(b.String())
}

// checkAdminSection decodes the admin section of doc strictly over the
// defaults and validates it. The rest of the file is left to vigil config
// check, which may need environment variables this shell lacks.
func checkAdminSection(doc []byte) error {
	var top struct {
		Admin yaml.Node `yaml:"admin"`
	}
	if err := yaml.Unmarshal(doc, &top); err != nil {
		return err
	}
	section, err := yaml.Marshal(&top.Admin)
	if err != nil {
		return err
	}
	cfg := admin.DefaultConfig()
	dec := yaml.NewDecoder(bytes.NewReader(section))
	dec.KnownFields(true)
	if err := dec.Decode(&cfg); err != nil {
		return fmt.Errorf("admin: %w", err)
	}
	return cfg.Validate()
}

// writeFileAtomic replaces path with data: written to a temporary file in
// the same directory with mode, then renamed over path.
func writeFileAtomic(path string, data []byte, mode fs.FileMode) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("write config: %w", err)
	}
	defer os.Remove(f.Name()) // after a successful rename there is nothing to remove
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("write config: %w", err)
	}
	if err := f.Chmod(mode); err != nil {
		f.Close()
		return fmt.Errorf("write config: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write config: %w", err)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("write config: %w", err)
	}
	return nil
}
