// Command loginapi is a small example API that reports every request to
// Vigil with the emit package: a login endpoint (the target of brute-force
// and credential-stuffing attacks) and a token-protected invoices endpoint.
//
//	vigil run &                                # Vigil with its embedded NATS on 127.0.0.1:4222
//	go run ./examples/loginapi --listen 127.0.0.1:8080
//	curl -i -X POST 127.0.0.1:8080/v1/auth/login -d 'user=alice&password=guess'
//
// Log in with user "demo", password "demo" to get the token "demo-token" for
// GET /v1/invoices/{id}. The emitter's own metrics (vigil_emit_*) are on
// /metrics. It keeps serving, at full speed, when NATS is down.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigil-sec/vigil/emit"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "loginapi:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("loginapi", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", "127.0.0.1:8080", "HTTP listen address")
	natsURL := fs.String("nats-url", "nats://127.0.0.1:4222", "NATS server(s) Vigil reads from")
	service := fs.String("service", "loginapi", "service name in Vigil")
	trusted := fs.String("trusted-proxies", "", "comma-separated IPs/CIDRs of reverse proxies whose X-Forwarded-For is believed")
	if err := fs.Parse(args); err != nil {
		return err
	}
	logger := slog.New(slog.NewTextHandler(stderr, nil))
	proxies, err := emit.ParseTrustedProxies(splitList(*trusted)...)
	if err != nil {
		return err
	}

	reg := prometheus.NewRegistry()
	em, err := emit.Connect(*natsURL, emit.WithService(*service), emit.WithRegisterer(reg), emit.WithLogger(logger))
	if err != nil {
		return err
	}
	handler := emit.Middleware(em, emit.WithTrustedProxies(proxies...))(newMux(reg))
	srv := &http.Server{Addr: *listen, Handler: handler, ReadHeaderTimeout: 5 * time.Second}

	errc := make(chan error, 1)
	go func() { errc <- srv.ListenAndServe() }()
	logger.Info("loginapi listening", "addr", *listen, "nats", *natsURL)
	select {
	case err = <-errc:
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if serr := srv.Shutdown(shutdownCtx); serr != nil && err == nil {
		err = serr
	}
	<-errc // ListenAndServe has returned
	if cerr := em.Close(shutdownCtx); cerr != nil {
		logger.Warn("vigil events lost at shutdown", "err", cerr)
	}
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return err
}

func splitList(s string) []string {
	var out []string
	for _, part := range strings.Split(s, ",") {
		if part = strings.TrimSpace(part); part != "" {
			out = append(out, part)
		}
	}
	return out
}
