package emit

import (
	"bufio"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// TestWriterCapabilities checks that handlers below the middleware keep
// streaming, hijacking, deadlines and sendfile-style copies, against a real
// HTTP server.
func TestWriterCapabilities(t *testing.T) {
	ns := startNATS(t)
	e := newEmitter(t, ns.connect())
	tests := []struct {
		name    string
		handler func(t *testing.T, w http.ResponseWriter, r *http.Request)
		check   func(t *testing.T, resp *http.Response)
	}{
		{
			name: "flush reaches the client before the handler returns",
			handler: func(t *testing.T, w http.ResponseWriter, r *http.Request) {
				_, _ = io.WriteString(w, "first\n")
				w.(http.Flusher).Flush()
				<-r.Context().Done() // the client hangs up once it has read "first"
			},
			check: func(t *testing.T, resp *http.Response) {
				line, err := bufio.NewReader(resp.Body).ReadString('\n')
				if err != nil || line != "first\n" {
					t.Errorf("read %q, %v; want the flushed line", line, err)
				}
			},
		},
		{
			name: "ResponseController reaches the connection",
			handler: func(t *testing.T, w http.ResponseWriter, _ *http.Request) {
				rc := http.NewResponseController(w)
				if err := rc.SetWriteDeadline(time.Now().Add(time.Minute)); err != nil {
					t.Errorf("SetWriteDeadline: %v", err)
				}
				if err := rc.EnableFullDuplex(); err != nil {
					t.Errorf("EnableFullDuplex: %v", err)
				}
				if err := rc.Flush(); err != nil {
					t.Errorf("Flush: %v", err)
				}
			},
			check: func(t *testing.T, resp *http.Response) { checkEq(t, "status", resp.StatusCode, 200) },
		},
		{
			name: "hijack takes the connection",
			handler: func(t *testing.T, w http.ResponseWriter, _ *http.Request) {
				conn, brw, err := http.NewResponseController(w).Hijack()
				if err != nil {
					t.Errorf("Hijack: %v", err)
					return
				}
				defer conn.Close()
				_, _ = brw.WriteString("HTTP/1.1 418 I'm a teapot\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
				_ = brw.Flush()
			},
			check: func(t *testing.T, resp *http.Response) { checkEq(t, "status", resp.StatusCode, 418) },
		},
		{
			name: "io.Copy to the writer",
			handler: func(t *testing.T, w http.ResponseWriter, _ *http.Request) {
				if _, ok := w.(io.ReaderFrom); !ok {
					t.Error("writer is not an io.ReaderFrom")
				}
				_, _ = io.Copy(w, strings.NewReader(strings.Repeat("z", 100_000)))
			},
			check: func(t *testing.T, resp *http.Response) {
				b, _ := io.ReadAll(resp.Body)
				checkEq(t, "body length", len(b), 100_000)
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := Middleware(e)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { tt.handler(t, w, r) }))
			srv := httptest.NewServer(h)
			defer srv.Close()
			client := srv.Client()
			client.Timeout = 10 * time.Second // a flush that never arrives fails the read
			resp, err := client.Get(srv.URL)
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, resp)
			resp.Body.Close()
		})
	}
}

// bareWriter can do nothing but the three ResponseWriter methods.
type bareWriter struct{ statusWriter }

func TestRecorderWithoutCapabilities(t *testing.T) {
	rec := &recorder{rw: &bareWriter{statusWriter{header: http.Header{}}}}
	if _, _, err := rec.Hijack(); !errors.Is(err, http.ErrNotSupported) {
		t.Errorf("Hijack = %v, want http.ErrNotSupported", err)
	}
	rec.Flush() // must not panic
	if n, err := rec.ReadFrom(strings.NewReader("abc")); n != 3 || err != nil {
		t.Errorf("ReadFrom = %d, %v", n, err)
	}
	if got := rec.finalStatus(false); got != 200 {
		t.Errorf("status %d, want 200", got)
	}
}
