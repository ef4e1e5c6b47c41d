package receiver

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"
)

// DefaultMaxBody is how much of a response body is read when no limit is set.
const DefaultMaxBody = 64 << 10

// HTTP sends requests for receivers: it turns non-2xx answers and transport
// failures into *Error, never puts the request URL in an error, and reads
// response bodies through a size limit. It implements the Do method that
// slack-go's client accepts.
type HTTP struct {
	client  *http.Client
	maxBody int64
	now     func() time.Time
}

// NewHTTP returns an HTTP using client (DefaultClient when nil), reading at
// most maxBody bytes of a response (DefaultMaxBody when <= 0).
func NewHTTP(client *http.Client, maxBody int64, now func() time.Time) *HTTP {
	if client == nil {
		client = DefaultClient()
	}
	if maxBody <= 0 {
		maxBody = DefaultMaxBody
	}
	if now == nil {
		now = time.Now
	}
	return &HTTP{client: client, maxBody: maxBody, now: now}
}

// DefaultClient returns an HTTP client that does not follow redirects (a
// signed POST must not be replayed elsewhere) and has bounded connection
// timeouts. Per-request deadlines come from the request context.
func DefaultClient() *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.DialContext = (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext
	tr.TLSHandshakeTimeout = 5 * time.Second
	tr.ResponseHeaderTimeout = 30 * time.Second
	tr.MaxIdleConnsPerHost = 4
	return &http.Client{
		Transport: tr,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
}

// Do sends req. A 2xx response is returned with its body limited to the
// configured size (reading past it fails); any other status is returned as an
// *Error after the body has been drained and closed.
func (h *HTTP) Do(req *http.Request) (*http.Response, error) {
	resp, err := h.client.Do(req)
	if err != nil {
		return nil, TransportError(err)
	}
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		resp.Body = &limitedBody{rc: resp.Body, left: h.maxBody}
		return resp, nil
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, h.maxBody))
	_ = resp.Body.Close()
	return nil, StatusError(resp.StatusCode, resp.Header, body, h.now())
}

// Post sends body to url with the given headers and returns the response
// body (at most the size limit) of a 2xx answer.
func (h *HTTP) Post(ctx context.Context, url string, header http.Header, body []byte) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		// The parse error would quote the URL; config validation has
		// already checked it, so say what failed without it.
		return nil, Permanent(errors.New("build request: invalid URL"))
	}
	for k, vs := range header {
		req.Header[k] = vs
	}
	resp, err := h.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, Temporary(fmt.Errorf("read response: %w", err), 0)
	}
	return b, nil
}

// ErrBodyTooLarge is returned when a response body exceeds the size limit.
var ErrBodyTooLarge = errors.New("response body exceeds the size limit")

type limitedBody struct {
	rc   io.ReadCloser
	left int64
}

func (l *limitedBody) Read(p []byte) (int, error) {
	if l.left <= 0 {
		// Probe for one more byte to tell "exactly at the limit" from "over".
		var one [1]byte
		n, err := l.rc.Read(one[:])
		if n > 0 {
			return 0, ErrBodyTooLarge
		}
		return 0, err
	}
	if int64(len(p)) > l.left {
		p = p[:l.left]
	}
	n, err := l.rc.Read(p)
	l.left -= int64(n)
	return n, err
}

func (l *limitedBody) Close() error { return l.rc.Close() }
