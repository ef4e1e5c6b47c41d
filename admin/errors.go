package admin

import (
	"encoding/json"
	"errors"
	"net/http"
)

// ClientError is an error whose Status, Code and Message are safe to show to
// an API client. A Backend returns one (possibly wrapped) to explain a
// refusal; any other error is answered with a generic 500 and logged with
// the request id, so internals never reach a response.
type ClientError struct {
	Status  int    // HTTP status, 4xx
	Code    string // stable machine-readable code, e.g. "invalid_config"
	Message string // one sentence for a person, with no secrets or internals
	Err     error  // the cause, for logs only
}

func (e *ClientError) Error() string {
	if e.Err != nil {
		return e.Message + ": " + e.Err.Error()
	}
	return e.Message
}

func (e *ClientError) Unwrap() error { return e.Err }

// InvalidConfig wraps a config validation error for Backend.Reload: the API
// answers 422 with code "invalid_config" and err's text as the message, so
// it must be written for the operator (file, line, key, fix) and hold no
// secret values (internal/secret types print as <secret>).
func InvalidConfig(err error) error {
	return &ClientError{Status: http.StatusUnprocessableEntity, Code: "invalid_config", Message: err.Error(), Err: err}
}

// Error codes, one per kind of refusal.
const (
	codeBadRequest       = "bad_request"
	codeUnauthorized     = "unauthorized"
	codeForbidden        = "forbidden"
	codeNotFound         = "not_found"
	codeMethodNotAllowed = "method_not_allowed"
	codeTooLarge         = "request_too_large"
	codeUnsupportedType  = "unsupported_media_type"
	codeRateLimited      = "rate_limited"
	codeInternal         = "internal"
	codeNotReady         = "not_ready"
)

// errorBody is the one error shape of the API.
type errorBody struct {
	Error errorDetail `json:"error"`
}

type errorDetail struct {
	Code      string `json:"code"`
	Message   string `json:"message"`
	RequestID string `json:"request_id"`
}

// writeBackendError answers for an error a Backend returned: a ClientError's
// own status and message, anything else as a logged, generic 500.
func (s *Server) writeBackendError(w http.ResponseWriter, r *http.Request, op string, err error) {
	if ce, ok := errors.AsType[*ClientError](err); ok && ce.Status >= 400 && ce.Status < 500 && ce.Code != "" {
		writeError(w, r, ce.Status, ce.Code, ce.Message)
		return
	}
	s.log(r).Error("admin backend call failed", "op", op, "err", err)
	writeError(w, r, http.StatusInternalServerError, codeInternal, "internal error; the daemon log has details under this request id")
}

// writeJSON answers with v as JSON. A value that cannot be encoded (only a
// Backend's can fail) becomes a logged, generic 500.
func (s *Server) writeJSON(w http.ResponseWriter, r *http.Request, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		s.log(r).Error("admin response encoding failed", "err", err)
		writeError(w, r, http.StatusInternalServerError, codeInternal, "internal error; the daemon log has details under this request id")
		return
	}
	writeRaw(w, status, b)
}

// writeError answers with status and the error body, carrying the request id.
func writeError(w http.ResponseWriter, r *http.Request, status int, code, message string) {
	b, _ := json.Marshal(errorBody{Error: errorDetail{Code: code, Message: message, RequestID: requestID(r)}}) // strings only: cannot fail
	writeRaw(w, status, b)
}

func writeRaw(w http.ResponseWriter, status int, b []byte) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}
