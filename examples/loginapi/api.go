package main

import (
	"crypto/subtle"
	"encoding/json"
	"net/http"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/vigil-sec/vigil/emit"
)

// The demo's only account and token. A real service checks a password hash
// and issues real tokens; what matters here is what it tells Vigil.
const (
	demoUser     = "demo"
	demoPassword = "demo"
	demoToken    = "demo-token"
	demoClient   = "demo-app"
)

// newMux returns the API's routes. Route patterns become the events'
// endpoints ("/v1/invoices/{id}"), so Vigil's labels stay bounded.
func newMux(reg *prometheus.Registry) *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/auth/login", login)
	mux.HandleFunc("GET /v1/invoices/{id}", invoice)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) })
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	return mux
}

func login(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 4096)
	if err := r.ParseForm(); err != nil {
		writeJSON(w, r, http.StatusBadRequest, map[string]string{"error": "malformed form"})
		return
	}
	user := r.PostForm.Get("user")
	// The attempted user name, whether or not the login succeeds: Vigil's
	// credential-stuffing rule counts distinct users per source.
	emit.SetUser(r.Context(), user)
	if !equal(user, demoUser) || !equal(r.PostForm.Get("password"), demoPassword) {
		writeJSON(w, r, http.StatusUnauthorized, map[string]string{"error": "invalid credentials"})
		return
	}
	emit.SetClientID(r.Context(), demoClient)
	writeJSON(w, r, http.StatusOK, map[string]string{"token": demoToken})
}

func invoice(w http.ResponseWriter, r *http.Request) {
	token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || !equal(token, demoToken) {
		writeJSON(w, r, http.StatusUnauthorized, map[string]string{"error": "missing or invalid token"})
		return
	}
	emit.SetUser(r.Context(), demoUser)
	emit.SetClientID(r.Context(), demoClient)
	writeJSON(w, r, http.StatusOK, map[string]string{"id": r.PathValue("id"), "amount": "42.00"})
}

func equal(a, b string) bool { return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1 }

// writeJSON answers with v; errors carry the request id so that a user's
// report can be matched with what Vigil saw.
func writeJSON(w http.ResponseWriter, r *http.Request, status int, v map[string]string) {
	if status >= 400 {
		v["request_id"] = emit.RequestID(r.Context())
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
