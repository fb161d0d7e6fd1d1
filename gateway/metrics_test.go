package gateway_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/paygate/paygate/gateway"
)

// scrape returns the Prometheus text of m.
func scrape(t *testing.T, m *gateway.Metrics) string {
	t.Helper()
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	return rec.Body.String()
}

// Requests are counted by route pattern (never the path with its id),
// method and status; 401s by their error code; and the sandbox header is on
// every answer of a sandbox gateway.
func TestRequestMetrics(t *testing.T) {
	t.Parallel()
	m := gateway.NewMetrics()
	inst := startInstance(t, testConfig(t, "http://127.0.0.1:1"), "", gateway.WithMetrics(m))
	s := hmacSigner("m-hmac", hmacSecret)

	if r := s.do(t, inst.url, http.MethodGet, "/v1/payments/pay_000000000000000000000001", nil, reqOpts{}); r.status != 404 || r.header.Get("X-Paygate-Sandbox") != "true" {
		t.Fatalf("signed get of an unknown payment: %d %q", r.status, r.header.Get("X-Paygate-Sandbox"))
	}
	if r := s.do(t, inst.url, http.MethodGet, "/v1/payments/pay_000000000000000000000002", nil, reqOpts{omit: "X-Paygate-Nonce"}); r.status != 401 {
		t.Fatalf("no nonce: %d", r.status)
	}
	if r := s.do(t, inst.url, http.MethodGet, "/v1/refunds/rfd_1", nil, reqOpts{otherKey: true}); r.status != 401 {
		t.Fatalf("wrong key: %d", r.status)
	}
	if r := s.do(t, inst.url, http.MethodGet, "/no/such/path/pay_x", nil, reqOpts{}); r.status != 404 {
		t.Fatalf("unknown path: %d", r.status)
	}
	if r := s.do(t, inst.url, "BREW", "/v1/payments/pay_x", nil, reqOpts{}); r.status != 405 {
		t.Fatalf("unknown verb: %d", r.status)
	}
	if r := s.do(t, inst.url, http.MethodDelete, "/v1/payments", nil, reqOpts{}); r.status != 405 {
		t.Fatalf("delete: %d", r.status)
	}

	text := scrape(t, m)
	for _, want := range []string{
		`paygate_http_requests_total{code="404",method="GET",route="/v1/payments/{id}"} 1`,
		`paygate_http_requests_total{code="401",method="GET",route="/v1/payments/{id}"} 1`,
		`paygate_http_requests_total{code="401",method="GET",route="/v1/refunds/{id}"} 1`,
		`paygate_http_requests_total{code="404",method="GET",route="unmatched"} 1`,
		`paygate_http_requests_total{code="405",method="other",route="/v1/payments/{id}"} 1`,
		`paygate_http_requests_total{code="405",method="DELETE",route="/v1/payments"} 1`,
		`paygate_http_request_duration_seconds_count{method="GET",route="/v1/payments/{id}"} 2`,
		`paygate_auth_failures_total{reason="missing_auth"} 1`,
		`paygate_auth_failures_total{reason="bad_signature"} 1`,
		`paygate_auth_failures_total{reason="nonce_replayed"} 0`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	for _, never := range []string{"pay_0", "pay_x", "rfd_1", "/no/such", "BREW", "m-hmac"} {
		if strings.Contains(text, never) {
			t.Errorf("/metrics carries a request-supplied string %q", never)
		}
	}
}

// pprof is on the admin listener behind the admin token.
func TestPprofNeedsTheAdminToken(t *testing.T) {
	t.Parallel()
	inst := startInstance(t, testConfig(t, "http://127.0.0.1:1"), "")
	admin := httptest.NewServer(gateway.NewAdmin(inst.srv, inst.st, gateway.AdminOptions{Token: "test-admin-token"}))
	t.Cleanup(admin.Close)
	get := func(path, token string) (int, string) {
		req, _ := http.NewRequest(http.MethodGet, admin.URL+path, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	cases := []struct {
		name, path, token string
		status            int
		body              string
	}{
		{"index without token", "/admin/debug/pprof/", "", 401, "missing_auth"},
		{"heap with a wrong token", "/admin/debug/pprof/heap", "nope", 401, "missing_auth"},
		{"index", "/admin/debug/pprof/", "test-admin-token", 200, "goroutine"},
		{"goroutines", "/admin/debug/pprof/goroutine?debug=1", "test-admin-token", 200, "goroutine profile:"},
		{"cmdline", "/admin/debug/pprof/cmdline", "test-admin-token", 200, ""},
		{"unknown profile", "/admin/debug/pprof/nosuch", "test-admin-token", 404, "Unknown profile"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			status, body := get(tc.path, tc.token)
			if status != tc.status || !strings.Contains(body, tc.body) {
				t.Fatalf("%s: %d %.200s", tc.path, status, body)
			}
		})
	}
}

// The request wrapper resolves no labels per request once a series exists.
func TestObserveRequestDoesNotAllocate(t *testing.T) {
	m := gateway.NewMetrics()
	get := []byte("GET")
	m.ObserveRequest("GET /v1/payments/{id}", get, 200, nil, time.Millisecond)
	if n := testing.AllocsPerRun(100, func() {
		m.ObserveRequest("GET /v1/payments/{id}", get, 200, nil, time.Millisecond)
	}); n != 0 {
		t.Fatalf("%.1f allocations per request", n)
	}
}

// Outside sandbox mode the merchant listener does not claim to be a sandbox.
func TestNoSandboxHeaderOutsideSandboxMode(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t, "http://127.0.0.1:1")
	cfg.Sandbox.Enabled = false
	inst := startInstance(t, cfg, "")
	r := hmacSigner("m-hmac", hmacSecret).do(t, inst.url, http.MethodGet, "/v1/payments/pay_000000000000000000000001", nil, reqOpts{})
	if r.status != 404 || r.header.Get("X-Request-Id") == "" {
		t.Fatalf("signed get: %d %v", r.status, r.header)
	}
	if v, ok := r.header["X-Paygate-Sandbox"]; ok {
		t.Fatalf("X-Paygate-Sandbox: %q outside sandbox mode", v)
	}
}
