package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"

	"github.com/vigil-sec/vigil/notify"
)

// SilenceBackend is the optional part of a Backend that keeps silences
// (notify.Notifier has these methods). When the Backend implements it, the
// server answers GET and POST /api/v1/silences and DELETE
// /api/v1/silences/{id}; otherwise those paths are 404.
type SilenceBackend interface {
	// ListSilences returns every silence, newest first.
	ListSilences(ctx context.Context) ([]notify.Silence, error)
	// CreateSilence validates and stores s (a *notify.ValidationError says
	// what is wrong) and returns it with its id.
	CreateSilence(ctx context.Context, s notify.Silence) (notify.Silence, error)
	// ExpireSilence ends silence id now; notify.ErrSilenceNotFound if none.
	ExpireSilence(ctx context.Context, id string) error
}

// maxSilenceIDLen bounds the id taken from the path before it is used or
// logged.
const maxSilenceIDLen = 64

func (s *Server) silenceRoutes() []route {
	if s.silences == nil {
		return nil
	}
	return []route{
		{method: http.MethodGet, path: "/api/v1/silences", access: accessScope, scope: ScopeRead, success: http.StatusOK, handler: s.handleListSilences},
		{method: http.MethodPost, path: "/api/v1/silences", access: accessScope, scope: ScopeWrite, action: "silence.create", success: http.StatusCreated, handler: s.handleCreateSilence},
		{method: http.MethodDelete, path: "/api/v1/silences/{id}", access: accessScope, scope: ScopeWrite, action: "silence.expire", success: http.StatusNoContent, handler: s.handleExpireSilence},
	}
}

func (s *Server) handleListSilences(w http.ResponseWriter, r *http.Request) {
	sils, err := s.silences.ListSilences(r.Context())
	if err != nil {
		s.writeBackendError(w, r, "list silences", err)
		return
	}
	if sils == nil {
		sils = []notify.Silence{}
	}
	s.writeJSON(w, r, http.StatusOK, map[string]any{"silences": sils})
}

// handleCreateSilence takes one JSON silence. created_by defaults to the
// token's name; the audit line records the token either way.
func (s *Server) handleCreateSilence(w http.ResponseWriter, r *http.Request) {
	var in notify.Silence
	if !decodeJSON(w, r, &in) {
		return
	}
	ri := info(r)
	if in.CreatedBy == "" && ri.token != nil {
		in.CreatedBy = ri.token.name
	}
	out, err := s.silences.CreateSilence(r.Context(), in)
	if verr, ok := errors.AsType[*notify.ValidationError](err); ok {
		writeError(w, r, http.StatusBadRequest, "invalid_silence", verr.Error())
		return
	}
	if err != nil {
		s.writeBackendError(w, r, "create silence", err)
		return
	}
	ri.audit = append(ri.audit, "silence_id", out.ID, "matchers", out.Matchers,
		"starts_at", out.StartsAt, "ends_at", out.EndsAt, "created_by", out.CreatedBy, "comment", out.Comment)
	w.Header().Set("Location", "/api/v1/silences/"+out.ID)
	s.writeJSON(w, r, http.StatusCreated, out)
}

func (s *Server) handleExpireSilence(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if len(id) > maxSilenceIDLen || !acceptableRequestID(id) {
		writeError(w, r, http.StatusNotFound, codeNotFound, "no silence with this id")
		return
	}
	ri := info(r)
	ri.audit = append(ri.audit, "silence_id", id)
	err := s.silences.ExpireSilence(r.Context(), id)
	if errors.Is(err, notify.ErrSilenceNotFound) {
		writeError(w, r, http.StatusNotFound, codeNotFound, "no silence with this id")
		return
	}
	if err != nil {
		s.writeBackendError(w, r, "expire silence", err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// decodeJSON reads exactly one JSON object of the request body into v,
// refusing other media types (415), bodies over the limit (413), unknown
// fields and trailing data (400).
func decodeJSON(w http.ResponseWriter, r *http.Request, v any) bool {
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		writeError(w, r, http.StatusUnsupportedMediaType, codeUnsupportedType, "send the body as Content-Type: application/json")
		return false
	}
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if err == nil {
		if dec.Decode(&struct{}{}) != io.EOF {
			err = errors.New("the body must hold one JSON object and nothing after it")
		}
	}
	if mbe, ok := errors.AsType[*http.MaxBytesError](err); ok {
		w.Header().Set("Connection", "close")
		writeError(w, r, http.StatusRequestEntityTooLarge, codeTooLarge, fmt.Sprintf("request body over the %d-byte limit", mbe.Limit))
		return false
	}
	if err != nil {
		writeError(w, r, http.StatusBadRequest, codeBadRequest, "invalid JSON body: "+jsonProblem(err))
		return false
	}
	return true
}

// jsonProblem describes a decoding error without echoing the body.
func jsonProblem(err error) string {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		return fmt.Sprintf("syntax error at byte %d", se.Offset)
	case errors.As(err, &te):
		return fmt.Sprintf("field %q must be %s", te.Field, te.Type)
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "the body is empty or cut short"
	}
	return err.Error() // unknown field names, trailing data: our own or encoding/json's wording
}
