package gateway_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/paygate/paygate/config"
	"github.com/paygate/paygate/gateway"
	"github.com/paygate/paygate/store/storetest"
)

// riskConfig is the test config with risk rules added (validated).
func riskConfig(t *testing.T, simURL string, rules ...config.RiskRule) *config.Config {
	t.Helper()
	cfg := testConfig(t, simURL)
	cfg.Risk.Rules = rules
	if err := cfg.Validate(); err != nil {
		t.Fatalf("risk config: %v", err)
	}
	return cfg
}

// riskEnv is a Redis, a simulator that counts its orders, and a config with
// risk rules; start adds gateway instances on them.
type riskEnv struct {
	rs  *storetest.Server
	sim *sim
	cfg *config.Config
}

func newRiskEnv(t *testing.T, rules ...config.RiskRule) *riskEnv {
	t.Helper()
	e := &riskEnv{rs: storetest.Redis(t), sim: newSim(t)}
	e.cfg = riskConfig(t, e.sim.srv.URL, rules...)
	e.sim.start(t, e.cfg)
	return e
}

func (e *riskEnv) start(t *testing.T, opts ...gateway.Option) *instance {
	t.Helper()
	return startInstance(t, e.cfg, e.rs.Addr(), opts...)
}

// adminGet GETs path from an admin handler of in with the test token.
func adminGet(t *testing.T, in *instance, o gateway.AdminOptions, path string) (int, []byte) {
	t.Helper()
	o.Token = "test-admin-token"
	admin := httptest.NewServer(gateway.NewAdmin(in.srv, in.st, o))
	defer admin.Close()
	req, _ := http.NewRequest(http.MethodGet, admin.URL+path, nil)
	req.Header.Set("Authorization", "Bearer "+o.Token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

var (
	perIPRule = config.RiskRule{Name: "per-ip", Limit: config.RiskLimit{Count: 5, Per: config.Duration(time.Minute), By: config.RiskByClientIP}}
	blockRule = config.RiskRule{Name: "bad-range", Block: config.RiskBlock{ClientIP: []string{"203.0.113.0/24"}}}
)

func ipBody(otn, ip string) []byte {
	return []byte(fmt.Sprintf(`{"out_trade_no":%q,"amount":100,"currency":"CNY","method":"qr","subject":"Coffee","notify_url":"http://127.0.0.1:1/notify","payer":{"client_ip":%q}}`, otn, ip))
}

// concurrentCreates sends 20 creates from one client IP at once, spread
// over the instances, and counts the answers.
func concurrentCreates(t *testing.T, sg signer, ins ...*instance) (created, refused int) {
	t.Helper()
	var (
		wg  sync.WaitGroup
		mu  sync.Mutex
		bad []string
	)
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := sg.do(t, ins[i%len(ins)].url, http.MethodPost, "/v1/payments", ipBody(fmt.Sprintf("conc-%d", i), "198.51.100.20"), reqOpts{})
			mu.Lock()
			defer mu.Unlock()
			switch {
			case r.status == 201:
				created++
			case r.status == 403 && r.errCode(t) == "risk_rejected":
				refused++
				if strings.Contains(string(r.body), "per-ip") {
					bad = append(bad, "the refusal names the rule: "+string(r.body))
				}
			default:
				bad = append(bad, fmt.Sprintf("%d %s", r.status, r.body))
			}
		}()
	}
	wg.Wait()
	for _, b := range bad {
		t.Error(b)
	}
	return created, refused
}

func TestRiskVelocityOneInstance(t *testing.T) {
	e := newRiskEnv(t, perIPRule)
	s, in := e.sim, e.start(t)
	sg := hmacSigner("m-hmac", hmacSecret)
	created, refused := concurrentCreates(t, sg, in)
	if created != 5 || refused != 15 {
		t.Fatalf("created %d, refused %d; want 5 and 15", created, refused)
	}
	if got := s.creates.Load(); got != 5 {
		t.Fatalf("channel orders: %d, want 5", got)
	}
	// A replay of a created out_trade_no answers the payment, uncounted,
	// although the window is full.
	for i := range 20 {
		r := sg.do(t, in.url, http.MethodPost, "/v1/payments", ipBody(fmt.Sprintf("conc-%d", i), "198.51.100.20"), reqOpts{})
		switch r.status {
		case 200:
			if r.header.Get("Idempotent-Replayed") != "true" {
				t.Fatalf("replay without the header: %v", r.header)
			}
		case 403:
			// A refused out_trade_no was never stored: it is judged afresh
			// (and the window is still full).
			g := sg.do(t, in.url, http.MethodGet, fmt.Sprintf("/v1/payments?out_trade_no=conc-%d", i), nil, reqOpts{})
			if g.status != 404 {
				t.Fatalf("a refused create left a payment: %d %s", g.status, g.body)
			}
		default:
			t.Fatalf("replay of conc-%d: %d %s", i, r.status, r.body)
		}
	}
	if got := s.creates.Load(); got != 5 {
		t.Fatalf("channel orders after replays: %d, want 5", got)
	}
}

func TestRiskVelocityTwoInstances(t *testing.T) {
	e := newRiskEnv(t, perIPRule)
	s := e.sim
	created, refused := concurrentCreates(t, hmacSigner("m-hmac", hmacSecret), e.start(t), e.start(t))
	if created != 5 || refused != 15 {
		t.Fatalf("created %d, refused %d across two instances; want 5 and 15", created, refused)
	}
	if got := s.creates.Load(); got != 5 {
		t.Fatalf("channel orders: %d, want 5", got)
	}
}

func TestRiskBlockCreatesNothing(t *testing.T) {
	e := newRiskEnv(t, blockRule)
	s := e.sim
	m := gateway.NewMetrics()
	in := e.start(t, gateway.WithMetrics(m))
	sg := hmacSigner("m-hmac", hmacSecret)
	nonce := newNonce()
	r := sg.do(t, in.url, http.MethodPost, "/v1/payments", ipBody("blocked-1", "203.0.113.77"), reqOpts{nonce: nonce})
	if r.status != 403 || r.errCode(t) != "risk_rejected" || strings.Contains(string(r.body), "bad-range") {
		t.Fatalf("blocked create: %d %s", r.status, r.body)
	}
	// The refusal claimed the nonce.
	if again := sg.do(t, in.url, http.MethodPost, "/v1/payments", ipBody("blocked-1", "203.0.113.77"), reqOpts{nonce: nonce}); again.errCode(t) != "nonce_replayed" {
		t.Fatalf("same nonce again: %d %s", again.status, again.body)
	}
	// A retry with a fresh nonce is refused the same way; nothing exists.
	if again := sg.do(t, in.url, http.MethodPost, "/v1/payments", ipBody("blocked-1", "203.0.113.77"), reqOpts{}); again.errCode(t) != "risk_rejected" {
		t.Fatalf("retry: %d %s", again.status, again.body)
	}
	if g := sg.do(t, in.url, http.MethodGet, "/v1/payments?out_trade_no=blocked-1", nil, reqOpts{}); g.status != 404 {
		t.Fatalf("a blocked create left a payment: %d %s", g.status, g.body)
	}
	if ok := sg.do(t, in.url, http.MethodPost, "/v1/payments", ipBody("fine-1", "198.51.100.1"), reqOpts{}); ok.status != 201 {
		t.Fatalf("an address outside the range: %d %s", ok.status, ok.body)
	}
	if got := s.creates.Load(); got != 1 {
		t.Fatalf("channel orders: %d, want 1 (only the unblocked payer)", got)
	}

	get := func(path string) (int, string) {
		status, b := adminGet(t, in, gateway.AdminOptions{Metrics: m.Handler()}, path)
		return status, string(b)
	}
	if _, body := get("/metrics"); !strings.Contains(body, `paygate_risk_decisions_total{outcome="refused",rule="bad-range"} 2`) {
		t.Errorf("metrics lack the refusals:\n%s", grepLines(body, "paygate_risk"))
	}
	if _, body := get("/"); !strings.Contains(body, `<td>bad-range</td><td>block</td>`) || strings.Contains(body, "203.0.113") {
		t.Errorf("status page risk rules:\n%s", body)
	}
}

func TestRiskExplainEndpoint(t *testing.T) {
	in := newRiskEnv(t, perIPRule, blockRule).start(t)
	sg := hmacSigner("m-hmac", hmacSecret)
	for i := range 5 {
		if r := sg.do(t, in.url, http.MethodPost, "/v1/payments", ipBody(fmt.Sprintf("x-%d", i), "198.51.100.9"), reqOpts{}); r.status != 201 {
			t.Fatalf("create %d: %d %s", i, r.status, r.body)
		}
	}
	explain := func(q string) (int, map[string]any) {
		status, b := adminGet(t, in, gateway.AdminOptions{}, "/admin/risk/explain?"+q)
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatalf("%s: %v", b, err)
		}
		return status, m
	}
	tests := []struct {
		name, query, decision, rule string
	}{
		{"window full", "merchant=m-hmac&method=qr&amount=100&client_ip=198.51.100.9", "refused", "per-ip"},
		{"blocked", "merchant=m-hmac&method=qr&amount=100&client_ip=203.0.113.1", "refused", "bad-range"},
		{"other address", "merchant=m-hmac&method=qr&amount=100&client_ip=198.51.100.10", "passed", ""},
		{"no address", "merchant=m-hmac&method=qr&amount=100", "passed", ""},
	}
	for _, tt := range tests {
		status, m := explain(tt.query)
		rule, _ := m["rule"].(string)
		if status != 200 || m["decision"] != tt.decision || rule != tt.rule {
			t.Errorf("%s: %d %v; want %s by %q", tt.name, status, m, tt.decision, tt.rule)
		}
	}
	// Explaining counted nothing: the other address still creates 5.
	for i := range 5 {
		if r := sg.do(t, in.url, http.MethodPost, "/v1/payments", ipBody(fmt.Sprintf("y-%d", i), "198.51.100.10"), reqOpts{}); r.status != 201 {
			t.Fatalf("create %d after explains: %d %s", i, r.status, r.body)
		}
	}
	for _, q := range []string{"merchant=nobody&method=qr&amount=1", "merchant=m-hmac&method=cash&amount=1",
		"merchant=m-hmac&method=qr&amount=0", "merchant=m-hmac&method=qr&amount=1&client_ip=nope"} {
		if status, m := explain(q); status != 400 {
			t.Errorf("%s: %d %v, want 400", q, status, m)
		}
	}
}

// TestRiskReload: a reload swaps the rules (the edge's Prepare/commit).
func TestRiskReload(t *testing.T) {
	e := newRiskEnv(t)
	in := e.start(t)
	sg := hmacSigner("m-hmac", hmacSecret)
	if r := sg.do(t, in.url, http.MethodPost, "/v1/payments", ipBody("r-1", "203.0.113.5"), reqOpts{}); r.status != 201 {
		t.Fatalf("before the reload: %d %s", r.status, r.body)
	}
	commit, err := in.srv.Prepare(riskConfig(t, e.sim.srv.URL, blockRule))
	if err != nil {
		t.Fatal(err)
	}
	if r := sg.do(t, in.url, http.MethodPost, "/v1/payments", ipBody("r-2", "203.0.113.5"), reqOpts{}); r.status != 201 {
		t.Fatalf("prepared, not committed: %d %s", r.status, r.body)
	}
	commit()
	if r := sg.do(t, in.url, http.MethodPost, "/v1/payments", ipBody("r-3", "203.0.113.5"), reqOpts{}); r.errCode(t) != "risk_rejected" {
		t.Fatalf("after the reload: %d %s", r.status, r.body)
	}
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
