package receiver

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode"
)

// Error is a failed send, with what the notifier needs to decide what to do
// next. Receivers return it (wrapped or not); Classify reads it.
type Error struct {
	Err error
	// Status is the HTTP status code, when the endpoint answered.
	Status int
	// Retryable is true when another attempt may succeed (5xx, 408, 429,
	// network errors, timeouts).
	Retryable bool
	// RetryAfter is the wait the endpoint asked for (429 and 503 with a
	// Retry-After header); zero when it did not ask.
	RetryAfter time.Duration
	// Disable is true when no later notification can succeed until the
	// configuration changes (HTTP 410 Gone, a revoked token, an archived
	// channel): the notifier stops using the receiver until reload.
	Disable bool
}

func (e *Error) Error() string { return e.Err.Error() }

// Unwrap returns the underlying error.
func (e *Error) Unwrap() error { return e.Err }

// Permanent marks err as not worth retrying.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &Error{Err: err}
}

// Temporary marks err as worth retrying, after at least wait if wait > 0.
func Temporary(err error, wait time.Duration) error {
	if err == nil {
		return nil
	}
	return &Error{Err: err, Retryable: true, RetryAfter: wait}
}

// Class is the notifier's reading of a send error.
type Class struct {
	Retryable  bool
	RetryAfter time.Duration
	Disable    bool
}

// Classify reads err. An *Error in the chain decides; a context deadline (the
// attempt timed out) is retryable; any other error is retryable too, since an
// unknown failure is more often transient than not and retries are bounded by
// the notifier's max_elapsed.
func Classify(err error) Class {
	if e, ok := errors.AsType[*Error](err); ok {
		return Class{Retryable: e.Retryable, RetryAfter: e.RetryAfter, Disable: e.Disable}
	}
	return Class{Retryable: true}
}

// StatusError builds the error for an HTTP answer that is not 2xx. body is a
// prefix of the response body; a short, printable excerpt of it goes into the
// message. now is used to read a Retry-After given as an HTTP date.
func StatusError(status int, header http.Header, body []byte, now time.Time) *Error {
	msg := fmt.Sprintf("endpoint answered %d %s", status, http.StatusText(status))
	if ex := excerpt(body, 200); ex != "" {
		msg += ": " + ex
	}
	e := &Error{Err: errors.New(msg), Status: status}
	switch {
	case status == http.StatusGone:
		e.Disable = true
	case status >= 300 && status < 400:
		e.Err = fmt.Errorf("%s (redirects are not followed; configure the final URL)", msg)
	case status == http.StatusTooManyRequests, status == http.StatusServiceUnavailable:
		e.Retryable = true
		e.RetryAfter, _ = ParseRetryAfter(header.Get("Retry-After"), now)
	case status == http.StatusRequestTimeout, status >= 500:
		e.Retryable = true
	}
	return e
}

// TransportError wraps a failure to get any answer (connection refused, reset,
// timeout). The request URL is dropped: it may carry a secret (a Slack
// incoming-webhook URL is one).
func TransportError(err error) *Error {
	if ue, ok := errors.AsType[*url.Error](err); ok {
		err = ue.Err
	}
	if errors.Is(err, context.Canceled) {
		return &Error{Err: fmt.Errorf("request canceled: %w", err), Retryable: true}
	}
	return &Error{Err: fmt.Errorf("request failed: %w", err), Retryable: true}
}

// ParseRetryAfter reads a Retry-After header value: delay seconds or an HTTP
// date. It reports false when v is empty or unreadable.
func ParseRetryAfter(v string, now time.Time) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		if secs < 0 {
			return 0, false
		}
		return time.Duration(min(secs, 86400)) * time.Second, true
	}
	t, err := http.ParseTime(v)
	if err != nil {
		return 0, false
	}
	d := t.Sub(now)
	if d < 0 {
		d = 0
	}
	return min(d, 24*time.Hour), true
}

// excerpt returns up to n printable characters of b, on one line.
func excerpt(b []byte, n int) string {
	var sb strings.Builder
	for _, r := range string(b) {
		if sb.Len() >= n {
			sb.WriteString("…")
			break
		}
		switch {
		case r == '\n' || r == '\r' || r == '\t':
			sb.WriteByte(' ')
		case unicode.IsPrint(r):
			sb.WriteRune(r)
		}
	}
	return strings.TrimSpace(sb.String())
}
