package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"testing"
)

// runLoad runs `paygate load args...` and decodes its stdout as exactly one
// JSON object.
func runLoad(t *testing.T, args ...string) map[string]any {
	t.Helper()
	var out, errb bytes.Buffer
	if code := run(append([]string{"load", "-json"}, args...), &out, &errb); code != 0 {
		t.Fatalf("paygate load: exit %d: %s", code, errb.String())
	}
	dec := json.NewDecoder(&out)
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		t.Fatalf("stdout is not a JSON object: %v: %s", err, out.String())
	}
	if err := dec.Decode(new(any)); !errors.Is(err, io.EOF) {
		t.Fatalf("stdout has more than one JSON value: %v", err)
	}
	return m
}

func keysOf(m map[string]any) string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return strings.Join(ks, " ")
}

// `paygate load` against the real sandbox gateway: the -json summary has the
// documented shape (phases only with a scenario); channel-down takes
// wechat-main away for the middle third (its creates fail over) and gives
// it back afterwards.
func TestLoadAgainstTheSandboxGateway(t *testing.T) {
	g := startE2E(t, e2eOpts{})
	common := []string{"-target", g.base, "-merchant", "demo", "-secret", demoSecret}

	base := runLoad(t, append(common, "-rate", "20", "-duration", "1s", "-mix", "create=1,get=1")...)
	if got, want := keysOf(base), "achieved_rate answered channels duration_s errors latency_ms not_sent ops sent start_lag_ms status target_rate"; got != want {
		t.Fatalf("baseline keys: %s, want %s", got, want)
	}
	if base["sent"] != float64(20) || base["answered"] != float64(20) {
		t.Fatalf("baseline: %v", base)
	}
	if got := keysOf(base["latency_ms"].(map[string]any)); got != "max p50 p90 p99" {
		t.Fatalf("latency_ms keys: %s", got)
	}
	if got := keysOf(base["errors"].(map[string]any)); got != "connect other timeout" {
		t.Fatalf("errors keys: %s", got)
	}

	s := runLoad(t, append(common, "-rate", "20", "-duration", "6s", "-scenario", "channel-down", "-fault-channel", "wechat-main",
		"-admin", g.admin, "-admin-token", adminToken)...)
	if s["scenario"] != "channel-down" || s["fault_channel"] != "wechat-main" {
		t.Fatalf("scenario fields: %v", s)
	}
	phases, _ := s["phases"].([]any)
	if len(phases) != 3 {
		t.Fatalf("phases: %v", s["phases"])
	}
	byName := map[string]map[string]any{}
	for i, name := range []string{"before", "fault", "after"} {
		p := phases[i].(map[string]any)
		if p["name"] != name {
			t.Fatalf("phase %d is %v, want %s", i, p["name"], name)
		}
		if got := keysOf(p); got != "answered channels errors latency_ms name sent status" {
			t.Fatalf("phase keys: %s", got)
		}
		byName[name] = p["channels"].(map[string]any)
	}
	wx := func(phase string) float64 { v, _ := byName[phase]["wechat-main"].(float64); return v }
	// The fault is set when the fault phase starts: the first requests of
	// the phase may still reach the channel while the admin call is on its way.
	if wx("before") < 10 || wx("fault")*2 >= wx("before") {
		t.Fatalf("wechat-main took %v creates before the fault and %v during it: the fault was not set", wx("before"), wx("fault"))
	}
	// The gateway counted the load by route pattern.
	m := do(t, mustReq(t, http.MethodGet, g.admin+"/metrics", ""))
	for _, want := range []string{
		`paygate_http_requests_total{code="201",method="POST",route="/v1/payments"}`,
		`paygate_http_requests_total{code="200",method="GET",route="/v1/payments/{id}"}`,
		`paygate_http_request_duration_seconds_bucket{method="POST",route="/v1/payments",le="+Inf"}`,
		`paygate_routing_failovers_total{from="wechat-main",to="alipay-main"}`, // the fault phase's creates moved
	} {
		if !strings.Contains(string(m.Body), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	// Cleared at 2/3: the simulator is up again.
	f := g.adminCall(http.MethodGet, "/admin/sandbox/faults", "")
	var faults struct {
		Faults []struct {
			Channel string
			Down    bool
		}
	}
	if err := json.Unmarshal(f.Body, &faults); err != nil || len(faults.Faults) == 0 {
		t.Fatalf("faults: %d %s", f.Status, f.Body)
	}
	for _, x := range faults.Faults {
		if x.Down {
			t.Fatalf("%s is still down after the run", x.Channel)
		}
	}
}

func TestLoadExitStatus(t *testing.T) {
	// Not a sandbox gateway: a 404 without X-Paygate-Sandbox.
	plain := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet {
			t.Errorf("the refused run sent %s %s", r.Method, r.URL)
		}
		w.WriteHeader(http.StatusNotFound)
	}))
	t.Cleanup(plain.Close)
	cases := []struct {
		name   string
		args   []string
		status int
		stderr string
	}{
		{"help", []string{"-h"}, 0, "-allow-real-orders"},
		{"no secret", []string{"-merchant", "demo"}, 2, "-secret"},
		{"bad rate", []string{"-merchant", "demo", "-secret", "s", "-rate", "x"}, 2, "invalid value"},
		{"scenario without admin", []string{"-merchant", "demo", "-secret", "s", "-scenario", "channel-errors"}, 2, "-admin"},
		{"bad mix", []string{"-merchant", "demo", "-secret", "s", "-mix", "refund=1"}, 2, "create"},
		{"not sandbox", []string{"-target", plain.URL, "-merchant", "demo", "-secret", "s", "-duration", "1s"}, 1, "refused: the target is not in sandbox mode"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			if code := run(append([]string{"load"}, tc.args...), &out, &errb); code != tc.status || !strings.Contains(errb.String(), tc.stderr) {
				t.Fatalf("exit %d, want %d; stderr %q lacks %q", code, tc.status, errb.String(), tc.stderr)
			}
		})
	}
}
