package admin

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"net/http"
	"os"
	"strings"
)

// Scope is a permission a token carries.
type Scope string

// The scopes. Read allows the GET endpoints (and /metrics when metrics_auth
// is on), write allows silences and reload, admin allows everything. Write
// does not imply read: give a token both when it needs both.
const (
	ScopeRead  Scope = "read"
	ScopeWrite Scope = "write"
	ScopeAdmin Scope = "admin"
)

func (s Scope) valid() bool { return s == ScopeRead || s == ScopeWrite || s == ScopeAdmin }

// ParseScopes reads a comma-separated scope list such as "read,write".
func ParseScopes(list string) ([]Scope, error) {
	var out []Scope
	for f := range strings.SplitSeq(list, ",") {
		s := Scope(strings.TrimSpace(f))
		if !s.valid() {
			return nil, fmt.Errorf("unknown scope %q; the scopes are read, write, admin", s)
		}
		for _, have := range out {
			if have == s {
				return nil, fmt.Errorf("scope %q is listed twice", s)
			}
		}
		out = append(out, s)
	}
	return out, nil
}

// TokenPrefix starts every token `vigil token new` makes, so that secret
// scanners can recognise a leaked one.
const TokenPrefix = "vigil_"

// NewToken returns a fresh token (256 random bits) and the hex SHA-256 to
// put in the config. The token itself must be shown once and never stored.
func NewToken() (token, sha256Hex string) {
	var b [32]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	token = TokenPrefix + base64.RawURLEncoding.EncodeToString(b[:])
	return token, HashToken(token)
}

// HashToken returns the hex SHA-256 of token, the form stored in config.
func HashToken(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// token is one configured token, ready for lookup.
type token struct {
	name   string
	hash   [sha256.Size]byte
	scopes []Scope
}

// allows reports whether t carries scope need (admin carries every scope).
func (t *token) allows(need Scope) bool {
	for _, s := range t.scopes {
		if s == need || s == ScopeAdmin {
			return true
		}
	}
	return false
}

// tokenSet is the tokens of one config generation; replaced whole on reload.
type tokenSet struct {
	tokens []token
}

// loadTokens builds a tokenSet from validated configs, reading sha256_file.
func loadTokens(cfgs []TokenConfig) (*tokenSet, error) {
	ts := &tokenSet{tokens: make([]token, 0, len(cfgs))}
	seen := map[[sha256.Size]byte]string{}
	for i, c := range cfgs {
		h := c.SHA256
		if c.SHA256File != "" {
			b, err := os.ReadFile(c.SHA256File)
			if err != nil {
				return nil, fmt.Errorf("admin.tokens[%d] (%s): sha256_file: %w; point it at a file Vigil's user can read holding the token's SHA-256 "+
					"(the sha256 'vigil token new' prints; sha256sum's output works too), or give the hash as sha256", i, c.Name, err)
			}
			fields := strings.Fields(string(b))
			if len(fields) == 0 || !sha256HexRE.MatchString(strings.ToLower(fields[0])) {
				return nil, fmt.Errorf("admin.tokens[%d] (%s): sha256_file %s must start with the 64 hex digits of the token's SHA-256 (as 'vigil token new' or sha256sum print it)", i, c.Name, c.SHA256File)
			}
			h = strings.ToLower(fields[0])
			if err := weakHashError(c.Name, h); err != nil {
				return nil, fmt.Errorf("admin.tokens[%d] (%s): sha256_file %s: %w", i, c.Name, c.SHA256File, err)
			}
		}
		t := token{name: c.Name, scopes: c.Scopes}
		if _, err := hex.Decode(t.hash[:], []byte(h)); err != nil {
			return nil, fmt.Errorf("admin.tokens[%d] (%s): sha256: %w", i, c.Name, err)
		}
		if other, ok := seen[t.hash]; ok {
			return nil, fmt.Errorf("admin.tokens[%d] (%s): same sha256 as %s; generate a separate token with 'vigil token new'", i, c.Name, other)
		}
		seen[t.hash] = c.Name
		ts.tokens = append(ts.tokens, t)
	}
	return ts, nil
}

// lookup returns the token whose hash matches presented, or nil. The hash of
// presented is compared with every configured hash in constant time, and the
// loop never stops early, so timing reveals neither which nor whether.
func (ts *tokenSet) lookup(presented string) *token {
	sum := sha256.Sum256([]byte(presented))
	found := -1
	for i := range ts.tokens {
		eq := subtle.ConstantTimeCompare(sum[:], ts.tokens[i].hash[:])
		found = subtle.ConstantTimeSelect(eq, i, found)
	}
	if found < 0 {
		return nil
	}
	return &ts.tokens[found]
}

// bearer returns the token of a single "Authorization: Bearer <token>"
// header (the scheme is case-insensitive), or "" when there is none.
func bearer(h http.Header) string {
	v := h.Values("Authorization")
	if len(v) != 1 {
		return ""
	}
	scheme, tok, ok := strings.Cut(v[0], " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return ""
	}
	return strings.TrimSpace(tok)
}
