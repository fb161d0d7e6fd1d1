package gateway_test

import (
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/paygate/paygate/config"
	"github.com/paygate/paygate/gateway"
	"github.com/paygate/paygate/sandbox"
)

// Secrets planted in requests the servers cannot read; none may reach a log.
const (
	secretSig      = "U0lHTkFUVVJFLVNFQ1JFVC1kZWFkYmVlZg=="
	secretNonce    = "NONCE-SECRET-4b1d2c3e"
	secretOpenID   = "o-OPENID-SECRET-77aa"
	secretCallback = "CALLBACK-BODY-SECRET-91ff"
	secretAdmin    = "ADMIN-TOKEN-SECRET-5e5e"
)

// logText is every captured entry as one line of text, fields included.
func logText(logs *observer.ObservedLogs) []string {
	var out []string
	for _, e := range logs.All() {
		line := e.Message
		for k, v := range e.ContextMap() {
			line += " " + k + "=" + strings.ReplaceAll(toText(v), "\n", " ")
		}
		out = append(out, line)
	}
	return out
}

func toText(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case []byte:
		return string(x)
	case error:
		return x.Error()
	}
	return ""
}

// rawExchange writes req on a fresh connection to addr and reads until the
// server closes it (bounded).
func rawExchange(t *testing.T, addr, req string) string {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(c)
	return string(b)
}

// Requests fasthttp cannot read (a bad Transfer-Encoding, a garbage request
// line, headers cut off by read_timeout) are answered and logged with their
// kind and the client's address, never with their bytes: not the signature,
// the nonce, a payer's openid in the body, nor a channel notification's body.
func TestUnreadableRequestsNeverLogTheirBytes(t *testing.T) {
	core, logs := observer.New(zapcore.DebugLevel)
	cfg := testConfig(t, "http://127.0.0.1:1")
	cfg.Server.ReadTimeout = config.Duration(300 * time.Millisecond)
	in := startLogged(t, cfg, "", zap.New(core))
	addr := strings.TrimPrefix(in.url, "http://")

	authHeaders := "X-Paygate-Merchant: m-hmac\r\nX-Paygate-Timestamp: 1700000000\r\n" +
		"X-Paygate-Nonce: " + secretNonce + "\r\nX-Paygate-Signature: " + secretSig + "\r\n"
	body := `{"payer":{"openid":"` + secretOpenID + `"}}`
	cases := []struct {
		name, req, status string
	}{
		{"bad transfer-encoding", "POST /v1/payments HTTP/1.1\r\nHost: x\r\n" + authHeaders +
			"Transfer-Encoding: xchunked\r\nContent-Type: application/json\r\n\r\n" + body, "400"},
		{"callback with bad transfer-encoding", "POST /callbacks/wechat-main HTTP/1.1\r\nHost: x\r\n" +
			"Transfer-Encoding: xchunked\r\n\r\n" + secretCallback, "400"},
		{"garbage header line", "POST /v1/payments HTTP/1.1\r\nHost: x\r\n" + authHeaders +
			"no colon " + secretOpenID + "\r\nContent-Length: 3\r\n\r\nabc", "400"},
		{"headers cut off by read_timeout", "POST /v1/payments HTTP/1.1\r\nHost: x\r\n" + authHeaders +
			"X-Payer: " + secretOpenID + "\r\n", ""},
		{"body cut off by read_timeout", "POST /callbacks/wechat-main HTTP/1.1\r\nHost: x\r\nContent-Length: 500\r\n\r\n" + secretCallback, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := logs.Len()
			got := rawExchange(t, addr, tc.req)
			if tc.status != "" && !strings.HasPrefix(got, "HTTP/1.1 "+tc.status) {
				t.Fatalf("answer %q, want %s", got, tc.status)
			}
			// The log line is written once the answer is: wait for it briefly.
			deadline := time.Now().Add(2 * time.Second)
			for logs.Len() == before && time.Now().Before(deadline) {
				time.Sleep(5 * time.Millisecond)
			}
			if tc.status != "" && logs.Len() == before {
				t.Fatal("nothing was logged: the test would prove nothing")
			}
		})
	}
	lines := logText(logs)
	sawRemote := false
	for _, line := range lines {
		for _, s := range []string{secretSig, secretNonce, secretOpenID, secretCallback, "xchunked"} {
			if strings.Contains(line, s) {
				t.Errorf("log line quotes the request (%s): %s", s, line)
			}
		}
		if strings.Contains(line, "remote=127.0.0.1:") || strings.Contains(line, "client=127.0.0.1:") {
			sawRemote = true
		}
	}
	if !sawRemote {
		t.Errorf("no log line names the client's address: %q", lines)
	}
}

// The admin listener's own server messages go through the same redaction:
// a bad TLS handshake carrying the admin token is logged as the fact and
// the peer, and a refused token never appears in the audit line.
func TestAdminListenerNeverLogsTheToken(t *testing.T) {
	core, logs := observer.New(zapcore.DebugLevel)
	cfg := testConfig(t, "http://127.0.0.1:1")
	in := startLogged(t, cfg, "", zap.New(core))
	admin := gateway.NewAdmin(in.srv, in.st, gateway.AdminOptions{Token: "the-real-admin-token-0123456789"})
	srv := httptest.NewUnstartedServer(admin)
	srv.Config.ErrorLog = admin.ErrorLog()
	srv.StartTLS()
	t.Cleanup(srv.Close)
	addr := strings.TrimPrefix(srv.URL, "https://")

	// Not a TLS client hello: net/http's TLS handshake error.
	rawExchange(t, addr, "\x16\x03\x01\x00\x30POST /admin/config/reload HTTP/1.1\r\nAuthorization: Bearer "+secretAdmin+"\r\n\r\n")
	// A refused token over TLS.
	c := srv.Client()
	req, _ := http.NewRequest(http.MethodPost, srv.URL+"/admin/config/reload", nil)
	req.Header.Set("Authorization", "Bearer "+secretAdmin)
	res, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusUnauthorized {
		t.Fatalf("refused token: %d", res.StatusCode)
	}
	// A client that gives up mid-handshake.
	tc, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true, MaxVersion: tls.VersionTLS12, CipherSuites: []uint16{tls.TLS_RSA_WITH_RC4_128_SHA}})
	if err == nil {
		tc.Close()
	}
	deadline := time.Now().Add(2 * time.Second)
	for time.Now().Before(deadline) && !hasLine(logs, "TLS handshake error") {
		time.Sleep(5 * time.Millisecond)
	}
	if !hasLine(logs, "http server: http: TLS handshake error") {
		t.Fatalf("net/http's handshake error was not logged through zap: %q", logText(logs))
	}
	for _, line := range logText(logs) {
		if strings.Contains(line, secretAdmin) || strings.Contains(line, "the-real-admin-token") {
			t.Errorf("log line carries an admin token: %s", line)
		}
	}
}

func hasLine(logs *observer.ObservedLogs, prefix string) bool {
	for _, l := range logText(logs) {
		if strings.Contains(l, prefix) {
			return true
		}
	}
	return false
}

// A well-formed incoming X-Request-Id is the request's id (header, error
// body, log line); a malformed one is replaced. A valid traceparent's trace
// id is in the request's log line; an invalid one is ignored.
func TestRequestIDAndTraceparent(t *testing.T) {
	core, logs := observer.New(zapcore.InfoLevel)
	in := startLogged(t, testConfig(t, "http://127.0.0.1:1"), "", zap.New(core))
	sg := hmacSigner("m-hmac", hmacSecret)
	const uri = "/v1/payments/pay_AAAAAAAAAAAAAAAAAAAAAAAA"
	const tid = "4bf92f3577b34da6a3ce929d0e0e4736"

	r := sg.do(t, in.url, http.MethodGet, uri, nil, reqOpts{extra: map[string][]string{
		"X-Request-Id": {"lb-7f3a.0_Z"}, "Traceparent": {"00-" + tid + "-00f067aa0ba902b7-01"}}})
	if r.status != 404 || r.header.Get("X-Request-Id") != "lb-7f3a.0_Z" || !strings.Contains(string(r.body), `"request_id":"lb-7f3a.0_Z"`) {
		t.Fatalf("honoured id: %d %v %s", r.status, r.header.Get("X-Request-Id"), r.body)
	}
	r2 := sg.do(t, in.url, http.MethodGet, uri, nil, reqOpts{extra: map[string][]string{
		"X-Request-Id": {"has space"}, "Traceparent": {"00-" + strings.Repeat("0", 32) + "-00f067aa0ba902b7-01"}}})
	fresh := r2.header.Get("X-Request-Id")
	if fresh == "" || fresh == "has space" || !strings.HasPrefix(fresh, "req_") {
		t.Fatalf("malformed id not replaced: %q", fresh)
	}
	lines := logs.FilterMessage("request").All()
	if len(lines) != 2 {
		t.Fatalf("%d request lines, want 2", len(lines))
	}
	first, second := lines[0].ContextMap(), lines[1].ContextMap()
	if first["request_id"] != "lb-7f3a.0_Z" || first["trace_id"] != tid {
		t.Errorf("first line: %v", first)
	}
	if _, has := second["trace_id"]; has || second["request_id"] != fresh {
		t.Errorf("second line: %v", second)
	}
}

// Every admin action gets an audit line saying what, with what result, from
// where; a refused token gets one too, and no line carries a token.
func TestAdminAudit(t *testing.T) {
	core, logs := observer.New(zapcore.DebugLevel)
	in := startLogged(t, testConfig(t, "http://127.0.0.1:1"), "", zap.New(core))
	const token = "the-real-admin-token-0123456789"
	reloads := 0
	admin := gateway.NewAdmin(in.srv, in.st, gateway.AdminOptions{Token: token, Reload: func() error {
		reloads++
		if reloads == 2 {
			return errors.New("routing.rules[0]: bad")
		}
		return nil
	}})
	srv := httptest.NewServer(admin)
	t.Cleanup(srv.Close)
	call := func(method, path, tok string) int {
		req, _ := http.NewRequest(method, srv.URL+path, nil)
		if tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return res.StatusCode
	}
	steps := []struct {
		method, path, tok string
		status            int
		msg, result       string
	}{
		{"POST", "/admin/config/reload", token, 200, "admin action", "done"},
		{"POST", "/admin/config/reload", token, 422, "admin action", "refused"},
		{"POST", "/admin/notifications/evt_pay_AAAAAAAAAAAAAAAAAAAAAAAA_payment.succeeded/replay", token, 404, "admin action", "refused"},
		{"POST", "/admin/sandbox/faults", token, 404, "admin action", "refused"},
		{"GET", "/admin/channels", token, 200, "admin action", "done"},
		{"POST", "/admin/config/reload", secretAdmin, 401, "admin token refused", ""},
		{"GET", "/admin/channels", "", 401, "admin token refused", ""},
	}
	for _, st := range steps {
		if got := call(st.method, st.path, st.tok); got != st.status {
			t.Fatalf("%s %s: %d, want %d", st.method, st.path, got, st.status)
		}
	}
	audit := logs.FilterLoggerName("gateway.admin.audit").All()
	if len(audit) != len(steps) {
		t.Fatalf("%d audit lines for %d admin requests: %q", len(audit), len(steps), logText(logs))
	}
	for i, e := range audit {
		st, f := steps[i], e.ContextMap()
		if e.Message != st.msg || f["action"] != st.method+" "+st.path || !strings.HasPrefix(f["remote"].(string), "127.0.0.1:") {
			t.Errorf("line %d: %s %v", i, e.Message, f)
		}
		if st.result != "" && f["result"] != st.result {
			t.Errorf("line %d: result %v, want %s", i, f["result"], st.result)
		}
	}
	for _, line := range logText(logs) {
		if strings.Contains(line, token) || strings.Contains(line, secretAdmin) {
			t.Errorf("log line carries an admin token: %s", line)
		}
	}
}

// fakeSandbox records the faults set through the admin API.
type fakeSandbox struct{ faults []sandbox.Faults }

func (f *fakeSandbox) Pay(string, string) error  { return nil }
func (f *fakeSandbox) Fail(string, string) error { return nil }
func (f *fakeSandbox) SetFaults(x sandbox.Faults) error {
	f.faults = append(f.faults, x)
	return nil
}
func (f *fakeSandbox) Faults() []sandbox.Faults { return f.faults }

// A sandbox fault injection is audited with the settings it applied.
func TestAdminAuditFaults(t *testing.T) {
	core, logs := observer.New(zapcore.DebugLevel)
	in := startLogged(t, testConfig(t, "http://127.0.0.1:1"), "", zap.New(core))
	const token = "the-real-admin-token-0123456789"
	sb := &fakeSandbox{}
	srv := httptest.NewServer(gateway.NewAdmin(in.srv, in.st, gateway.AdminOptions{Token: token, Sandbox: sb}))
	t.Cleanup(srv.Close)
	req, _ := http.NewRequest(http.MethodPost, srv.URL+"/admin/sandbox/faults", strings.NewReader(`{"channel":"wechat-main","down":true,"error_rate":0.25}`))
	req.Header.Set("Authorization", "Bearer "+token)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 200 || len(sb.faults) != 1 {
		t.Fatalf("faults: %d, %d applied", res.StatusCode, len(sb.faults))
	}
	audit := logs.FilterLoggerName("gateway.admin.audit").All()
	if len(audit) != 1 {
		t.Fatalf("%d audit lines", len(audit))
	}
	f := audit[0].ContextMap()
	if f["action"] != "POST /admin/sandbox/faults" || f["result"] != "done" ||
		f["detail"] != "channel=wechat-main down=true error_rate=0.25 latency= drop_callbacks=false" {
		t.Errorf("audit line: %v", f)
	}
}
