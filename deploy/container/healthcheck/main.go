// Command healthcheck is the container image's HEALTHCHECK: it GETs Vigil's
// /healthz (distroless images have no curl or wget) and exits 0 on a 2xx
// answer, 1 otherwise. Usage: healthcheck [URL]; the default is
// http://127.0.0.1:9750/healthz, or $VIGIL_HEALTHCHECK_URL when set.
package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"
)

const defaultURL = "http://127.0.0.1:9750/healthz"

func main() {
	url := defaultURL
	if v := os.Getenv("VIGIL_HEALTHCHECK_URL"); v != "" {
		url = v
	}
	if len(os.Args) > 1 {
		url = os.Args[1]
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	err := check(ctx, http.DefaultClient, url)
	cancel()
	if err != nil {
		fmt.Fprintln(os.Stderr, "healthcheck:", err)
		os.Exit(1)
	}
}

// check returns nil when url answers a GET with a 2xx status before ctx ends.
func check(ctx context.Context, client *http.Client, url string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return fmt.Errorf("build request: %w", err)
	}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("get %s: %w", url, err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("get %s: status %s", url, resp.Status)
	}
	return nil
}
