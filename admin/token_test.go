package admin

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"slices"
	"strings"
	"testing"
)

func TestNewToken(t *testing.T) {
	tok, hash := NewToken()
	tok2, _ := NewToken()
	raw, err := base64.RawURLEncoding.DecodeString(strings.TrimPrefix(tok, TokenPrefix))
	sum := sha256.Sum256([]byte(tok))
	tests := []struct {
		name string
		ok   bool
	}{
		{"prefixed", strings.HasPrefix(tok, TokenPrefix)},
		{"256 random bits", err == nil && len(raw) == 32},
		{"hash is sha256 of the whole token", hash == hex.EncodeToString(sum[:]) && HashToken(tok) == hash},
		{"hash valid in config", sha256HexRE.MatchString(hash)},
		{"fresh each time", tok != tok2},
		{"safe in a header", !strings.ContainsAny(tok, " \t\r\n,;\"")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if !tt.ok {
				t.Fatalf("token %q hash %q", tok, hash)
			}
		})
	}
}

func TestParseScopes(t *testing.T) {
	tests := []struct {
		in      string
		want    []Scope
		wantErr string
	}{
		{"read", []Scope{ScopeRead}, ""},
		{"read,write", []Scope{ScopeRead, ScopeWrite}, ""},
		{" read , admin ", []Scope{ScopeRead, ScopeAdmin}, ""},
		{"read,read", nil, "listed twice"},
		{"read,root", nil, `unknown scope "root"`},
		{"", nil, `unknown scope ""`},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseScopes(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || !slices.Equal(got, tt.want) {
				t.Fatalf("ParseScopes = %v, %v", got, err)
			}
		})
	}
}

func TestTokenLookupAndScopes(t *testing.T) {
	var cfgs []TokenConfig
	toks := map[string]string{}
	for _, c := range []struct {
		name   string
		scopes []Scope
	}{{"r", []Scope{ScopeRead}}, {"w", []Scope{ScopeWrite}}, {"rw", []Scope{ScopeRead, ScopeWrite}}, {"a", []Scope{ScopeAdmin}}} {
		tok, hash := NewToken()
		toks[c.name] = tok
		cfgs = append(cfgs, TokenConfig{Name: c.name, SHA256: hash, Scopes: c.scopes})
	}
	ts, err := loadTokens(cfgs)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		presented string
		wantName  string
		read      bool
		write     bool
	}{
		{toks["r"], "r", true, false},
		{toks["w"], "w", false, true},
		{toks["rw"], "rw", true, true},
		{toks["a"], "a", true, true},
		{toks["a"] + "x", "", false, false},
		{cfgs[0].SHA256, "", false, false}, // the hash is not a token
		{"", "", false, false},
	}
	for _, tt := range tests {
		t.Run(tt.wantName+"/"+tt.presented[:min(len(tt.presented), 10)], func(t *testing.T) {
			got := ts.lookup(tt.presented)
			if tt.wantName == "" {
				if got != nil {
					t.Fatalf("lookup matched %q", got.name)
				}
				return
			}
			if got == nil || got.name != tt.wantName || got.allows(ScopeRead) != tt.read || got.allows(ScopeWrite) != tt.write {
				t.Fatalf("lookup = %+v", got)
			}
		})
	}
}
