package admin

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/vigil-sec/vigil/notify"
)

// createSilence creates one silence as the admin token and returns its id.
func (f *fixture) createSilence(t *testing.T) string {
	t.Helper()
	resp, body := f.do(t, "admin", "POST", "/api/v1/silences", strings.NewReader(silenceBody))
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("create silence: %d %s", resp.StatusCode, body)
	}
	var s notify.Silence
	if err := json.Unmarshal(body, &s); err != nil {
		t.Fatal(err)
	}
	return s.ID
}

func TestSilences(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.MaxBodyBytes = 1024 })
	tests := []struct {
		name        string
		method      string
		path        string
		body        string
		contentType string
		wantStatus  int
		wantCode    string
	}{
		{"create", "POST", "/api/v1/silences", silenceBody, "application/json", 201, ""},
		{"create with charset", "POST", "/api/v1/silences", silenceBody, "application/json; charset=utf-8", 201, ""},
		{"list", "GET", "/api/v1/silences", "", "", 200, ""},
		{"invalid silence", "POST", "/api/v1/silences", `{"matchers":[],"comment":"x"}`, "application/json", 400, "invalid_silence"},
		{"unknown field", "POST", "/api/v1/silences", `{"matcherz":[]}`, "application/json", 400, codeBadRequest},
		{"two objects", "POST", "/api/v1/silences", silenceBody + silenceBody, "application/json", 400, codeBadRequest},
		{"not JSON", "POST", "/api/v1/silences", `matchers=rule`, "application/json", 400, codeBadRequest},
		{"wrong media type", "POST", "/api/v1/silences", silenceBody, "text/plain", 415, codeUnsupportedType},
		{"body over the limit", "POST", "/api/v1/silences", `{"comment":"` + strings.Repeat("x", 2000) + `"}`, "application/json", 413, codeTooLarge},
		{"expire unknown", "DELETE", "/api/v1/silences/0123456789abcdef0123456789abcdef", "", "", 404, codeNotFound},
		{"expire odd id", "DELETE", "/api/v1/silences/..%2f..%2fetc", "", "", 404, codeNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := http.NewRequest(tt.method, f.url+tt.path, strings.NewReader(tt.body))
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Authorization", "Bearer "+f.tokens["admin"])
			if tt.contentType != "" {
				req.Header.Set("Content-Type", tt.contentType)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var body json.RawMessage
			_ = json.NewDecoder(resp.Body).Decode(&body)
			if resp.StatusCode != tt.wantStatus {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tt.wantStatus, body)
			}
			checkSecurityHeaders(t, resp, false)
			if tt.wantCode != "" {
				checkErrorBody(t, resp, body, tt.wantCode)
			}
			if tt.wantStatus == 201 {
				var s notify.Silence
				if err := json.Unmarshal(body, &s); err != nil || s.ID == "" || s.CreatedBy != "admin-token" {
					t.Fatalf("created %+v (%v); want an id and created_by defaulting to the token name", s, err)
				}
				if resp.Header.Get("Location") != "/api/v1/silences/"+s.ID {
					t.Errorf("Location = %q", resp.Header.Get("Location"))
				}
			}
		})
	}
	t.Run("chunked body over the limit", func(t *testing.T) {
		// No Content-Length: the limit must hold while reading.
		big := `{"comment":"` + strings.Repeat("x", 4096) + `"}`
		req, _ := http.NewRequest("POST", f.url+"/api/v1/silences", struct{ *strings.Reader }{strings.NewReader(big)})
		req.ContentLength = -1
		req.Header.Set("Authorization", "Bearer "+f.tokens["admin"])
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusRequestEntityTooLarge {
			t.Fatalf("status %d, want 413", resp.StatusCode)
		}
	})
	t.Run("audit of create and expire", func(t *testing.T) {
		id := f.createSilence(t)
		resp, _ := f.do(t, "write", "DELETE", "/api/v1/silences/"+id, nil)
		if resp.StatusCode != http.StatusNoContent {
			t.Fatalf("expire: %d", resp.StatusCode)
		}
		lines := f.logs.lines(t, "audit")
		var created, expired bool
		for _, l := range lines {
			created = created || l["action"] == "silence.create" && l["silence_id"] == id && l["actor"] == "admin-token" && l["outcome"] == "success"
			expired = expired || l["action"] == "silence.expire" && l["silence_id"] == id && l["actor"] == "write-token" && l["status"] == float64(204)
		}
		if !created || !expired {
			t.Fatalf("audit lines missing (created %v, expired %v): %v", created, expired, lines)
		}
	})
}

// plainBackend hides testBackend's silence methods.
type plainBackend struct{ Backend }

func TestSilencesAbsentWithoutSilenceBackend(t *testing.T) {
	f := newFixture(t, nil)
	s, err := New(DefaultConfig(), plainBackend{f.backend}, Options{Logger: f.srv.logger})
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range []string{"GET", "POST"} {
		req, _ := http.NewRequest(m, "/api/v1/silences", nil)
		req.RemoteAddr = "127.0.0.1:1234"
		rec := httptest.NewRecorder()
		s.Handler().ServeHTTP(rec, req)
		if rec.Code != http.StatusNotFound {
			t.Fatalf("%s /api/v1/silences = %d, want 404", m, rec.Code)
		}
	}
}
