package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"time"
)

// healthcheckCmd asks a running paygate's admin listener whether it is ready
// (or, with -path /healthz, alive). It exists for container health checks in
// images that have no shell or curl: exit 0 on HTTP 200, 1 otherwise.
func healthcheckCmd(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("healthcheck", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "127.0.0.1:9090", "admin listener address (server.admin_listen)")
	path := fs.String("path", "/readyz", "/readyz (ready for traffic) or /healthz (process alive)")
	timeout := fs.Duration("timeout", 3*time.Second, "give up after this long")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *path != "/readyz" && *path != "/healthz" {
		fmt.Fprintf(stderr, "paygate healthcheck: -path must be /readyz or /healthz, got %q\n", *path)
		return 2
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	url := "http://" + *addr + *path
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		fmt.Fprintf(stderr, "paygate healthcheck: %v\n", err)
		return 2
	}
	// No proxy from the environment: the admin listener is local.
	client := &http.Client{Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}}
	res, err := client.Do(req)
	if err != nil {
		fmt.Fprintf(stderr, "paygate healthcheck: %s: %v\n", url, err)
		return 1
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(res.Body, 512))
	if res.StatusCode != http.StatusOK {
		fmt.Fprintf(stderr, "paygate healthcheck: %s: HTTP %d %s\n", url, res.StatusCode, body)
		return 1
	}
	fmt.Fprintf(stdout, "ok: %s: HTTP %d\n", url, res.StatusCode)
	return 0
}
