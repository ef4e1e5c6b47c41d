package main

import (
	"bytes"
	"context"
	"regexp"
	"strings"
	"testing"

	"github.com/vigil-sec/vigil/admin"
	"go.yaml.in/yaml/v3"
)

var tokenRE = regexp.MustCompile(`vigil_[A-Za-z0-9_-]{43}`)

func TestTokenNew(t *testing.T) {
	var out, errOut bytes.Buffer
	code := runToken(context.Background(), streams{stdout: &out, stderr: &errOut}, []string{"new", "--name", "oncall", "--scopes", "read,write"})
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	all := out.String() + errOut.String()
	tokens := tokenRE.FindAllString(all, -1)
	if len(tokens) != 1 {
		t.Fatalf("the token appears %d times, want exactly once:\n%s", len(tokens), all)
	}
	tok := tokens[0]

	// The snippet is the indented YAML list entry; it must decode strictly
	// into the admin config and carry the token's hash.
	var snippet []string
	for _, l := range strings.Split(out.String(), "\n") {
		if strings.HasPrefix(l, "  - name:") || len(snippet) > 0 && strings.HasPrefix(l, "    ") && !strings.HasPrefix(l, "    vigil_") {
			snippet = append(snippet, l)
		} else if len(snippet) > 0 {
			break
		}
	}
	var cfg admin.Config
	dec := yaml.NewDecoder(strings.NewReader("tokens:\n" + strings.Join(snippet, "\n")))
	dec.KnownFields(true)
	if err := dec.Decode(&cfg); err != nil {
		t.Fatalf("snippet %q: %v", snippet, err)
	}
	full := admin.DefaultConfig()
	full.Tokens = cfg.Tokens
	tests := []struct {
		name string
		ok   bool
	}{
		{"one entry", len(cfg.Tokens) == 1},
		{"name", len(cfg.Tokens) == 1 && cfg.Tokens[0].Name == "oncall"},
		{"hash matches the token", len(cfg.Tokens) == 1 && cfg.Tokens[0].SHA256 == admin.HashToken(tok)},
		{"scopes", len(cfg.Tokens) == 1 && len(cfg.Tokens[0].Scopes) == 2 && cfg.Tokens[0].Scopes[1] == admin.ScopeWrite},
		{"valid config", full.Validate() == nil},
		{"nothing on stderr", errOut.Len() == 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if !tt.ok {
				t.Fatalf("output:\n%s", out.String())
			}
		})
	}
	t.Run("fresh token each run", func(t *testing.T) {
		var again bytes.Buffer
		runToken(context.Background(), streams{stdout: &again, stderr: &bytes.Buffer{}}, []string{"new", "--name", "oncall", "--scopes", "read"})
		if tok2 := tokenRE.FindString(again.String()); tok2 == "" || tok2 == tok {
			t.Fatalf("second token %q", tok2)
		}
	})
}

func TestTokenErrors(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		code    int
		wantErr string
	}{
		{"no subcommand", nil, 2, "Usage: vigil token new"},
		{"help", []string{"help"}, 0, "Usage: vigil token new"},
		{"unknown subcommand", []string{"rotate"}, 2, `unknown subcommand "rotate"`},
		{"flag help", []string{"new", "-h"}, 0, "-scopes"},
		{"missing name", []string{"new", "--scopes", "read"}, 2, "--name is required"},
		{"missing scopes", []string{"new", "--name", "x"}, 2, "--scopes is required"},
		{"bad name", []string{"new", "--name", "a b", "--scopes", "read"}, 2, "token name"},
		{"bad scope", []string{"new", "--name", "x", "--scopes", "read,root"}, 2, `unknown scope "root"`},
		{"stray argument", []string{"new", "--name", "x", "--scopes", "read", "extra"}, 2, `unexpected argument "extra"`},
		{"unknown flag", []string{"new", "--nmae", "x"}, 2, "flag provided but not defined"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			code := runToken(context.Background(), streams{stdout: &out, stderr: &errOut}, tt.args)
			if code != tt.code {
				t.Fatalf("exit %d, want %d", code, tt.code)
			}
			if !strings.Contains(errOut.String(), tt.wantErr) {
				t.Fatalf("stderr %q, want %q", errOut.String(), tt.wantErr)
			}
			if tokenRE.MatchString(out.String() + errOut.String()) {
				t.Fatal("a token was printed on a failed run")
			}
		})
	}
}
