package emit

import (
	"context"
	"sync"

	"github.com/vigil-sec/vigil/event"
)

type infoKey struct{}

// requestInfo is what handlers below the middleware record about their
// request. The middleware reads it when the handler returns; the mutex
// makes a late write from a goroutine the handler started safe (if lost).
type requestInfo struct {
	mu        sync.Mutex
	requestID string
	user      string
	clientID  string
	endpoint  string
	attrs     map[string]string
}

func infoFrom(ctx context.Context) *requestInfo {
	info, _ := ctx.Value(infoKey{}).(*requestInfo)
	return info
}

// SetUser records the user a request acts as, or tried to act as: on a
// login endpoint, the attempted user name, whether or not the login
// succeeds. Call it from a handler below Middleware, with the request's
// context, before the handler returns; elsewhere it does nothing.
func SetUser(ctx context.Context, user string) {
	if info := infoFrom(ctx); info != nil {
		info.mu.Lock()
		info.user = user
		info.mu.Unlock()
	}
}

// SetClientID records the API client (for example the id of the token that
// authenticated the request). Like SetUser, it works below Middleware.
func SetClientID(ctx context.Context, clientID string) {
	if info := infoFrom(ctx); info != nil {
		info.mu.Lock()
		info.clientID = clientID
		info.mu.Unlock()
	}
}

// SetEndpoint records the route template of the request ("/v1/items/{id}")
// for routers that do not set http.Request.Pattern. It takes precedence
// over WithRoute and Pattern.
func SetEndpoint(ctx context.Context, template string) {
	if info := infoFrom(ctx); info != nil {
		info.mu.Lock()
		info.endpoint = template
		info.mu.Unlock()
	}
}

// SetAttr adds a key/value attribute to the request's event (at most 32
// are kept; keys up to 64 bytes, values up to 256). Keep keys to a small
// fixed set: Vigil rules match on them.
func SetAttr(ctx context.Context, key, value string) {
	if info := infoFrom(ctx); info != nil {
		info.mu.Lock()
		if info.attrs == nil {
			info.attrs = make(map[string]string, 4)
		}
		if _, ok := info.attrs[key]; ok || len(info.attrs) < event.MaxAttrs {
			info.attrs[key] = value
		}
		info.mu.Unlock()
	}
}

// RequestID returns the id under which the middleware reports the request
// ("" outside Middleware). Put it in error responses and logs so that an
// alert can be traced to the request.
func RequestID(ctx context.Context) string {
	if info := infoFrom(ctx); info != nil {
		return info.requestID
	}
	return ""
}
