package emit

import (
	"bufio"
	"io"
	"net"
	"net/http"
)

// recorder wraps a handler's ResponseWriter to learn the response status.
// It implements http.Flusher, http.Hijacker and io.ReaderFrom by passing the
// call on, and Unwrap, so that http.ResponseController reaches every other
// capability (deadlines, full duplex) of the writer it wraps. Flush is a
// no-op and Hijack fails with http.ErrNotSupported when the wrapped writer
// cannot do them.
type recorder struct {
	rw       http.ResponseWriter
	status   int
	hijacked bool
}

func (w *recorder) Header() http.Header { return w.rw.Header() }

// WriteHeader records the first final status; informational 1xx responses
// (other than 101 Switching Protocols) may precede it.
func (w *recorder) WriteHeader(code int) {
	if w.status == 0 && (code >= 200 || code == http.StatusSwitchingProtocols) {
		w.status = code
	}
	w.rw.WriteHeader(code)
}

func (w *recorder) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.rw.Write(b)
}

// Unwrap lets http.ResponseController find the wrapped writer.
func (w *recorder) Unwrap() http.ResponseWriter { return w.rw }

func (w *recorder) Flush() {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	_ = http.NewResponseController(w.rw).Flush()
}

func (w *recorder) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	conn, brw, err := http.NewResponseController(w.rw).Hijack()
	if err == nil {
		w.hijacked = true
	}
	return conn, brw, err
}

// ReadFrom keeps the wrapped writer's fast path (sendfile) for io.Copy.
func (w *recorder) ReadFrom(r io.Reader) (int64, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	if rf, ok := w.rw.(io.ReaderFrom); ok {
		return rf.ReadFrom(r)
	}
	return io.Copy(writerOnly{w.rw}, r)
}

// writerOnly hides every method but Write, so io.Copy cannot loop back into
// ReadFrom.
type writerOnly struct{ io.Writer }

// finalStatus is the status to report: what the handler wrote, 101 for a
// hijacked connection, 500 when the handler panicked before writing, else
// 200 (net/http's answer to a handler that writes nothing).
func (w *recorder) finalStatus(panicked bool) int {
	switch {
	case w.status != 0:
		return w.status
	case w.hijacked:
		return http.StatusSwitchingProtocols
	case panicked:
		return http.StatusInternalServerError
	default:
		return http.StatusOK
	}
}
