package main

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/paygate/paygate/config"
	"github.com/paygate/paygate/gateway/client"
	"github.com/paygate/paygate/store/storetest"
)

// Secrets, keys, signatures and payer identifiers never reach the logs, at
// any level, through a whole flow: create (with a payer openid), failed auth,
// pay, callback, refund, notification delivery, admin calls.
func TestNoSecretsInLogs(t *testing.T) {
	rs := storetest.Redis(t)
	path := writeConfig(t, e2eOpts{redisAddr: rs.Addr()})
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	core, logs := observer.New(zapcore.DebugLevel)
	a, err := start(cfg, path, zap.New(core), options{notifyPoll: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		a.stop(ctx)
	})
	g := &running{t: t, app: a, path: path, base: "http://" + a.addr, admin: "http://" + a.adminAddr,
		signer: client.HMAC("demo", []byte(demoSecret)), logs: logs}
	site := newMerchantSite(t)

	const openid = "o-PAYER-IDENTIFIER-7f3a9c"
	r := g.call(http.MethodPost, "/v1/payments", map[string]any{"out_trade_no": "logs-1", "amount": 900, "currency": "CNY",
		"method": "wechat_jsapi", "subject": "S", "notify_url": site.url(), "payer": map[string]string{"openid": openid}})
	if r.Status != 201 {
		t.Fatalf("create: %d %s", r.Status, r.Body)
	}
	id := r.obj(t)["payment_id"].(string)
	// A request with a wrong signature: its signature must not be logged either.
	bad := client.HMAC("demo", []byte("wrong-secret-0123456789abcdef0123456"))
	req, _ := http.NewRequest(http.MethodGet, g.base+"/v1/payments/"+id, nil)
	bad.SetHeaders(req, nil)
	badSig := req.Header.Get("X-Paygate-Signature")
	if res := do(t, req); res.Status != 401 {
		t.Fatalf("bad signature: %d", res.Status)
	}
	g.pay(id)
	g.waitFor("/v1/payments/"+id, "succeeded", statusIs("succeeded"))
	site.waitEvent("payment.succeeded", id)
	rf := g.call(http.MethodPost, "/v1/payments/"+id+"/refunds", map[string]any{"out_refund_no": "logs-rf", "amount": 100})
	if rf.Status != 201 {
		t.Fatalf("refund: %d %s", rf.Status, rf.Body)
	}
	site.waitEvent("refund.succeeded", rf.obj(t)["refund_id"].(string))
	g.adminCall(http.MethodGet, "/admin/channels", "")
	g.adminCall(http.MethodGet, "/admin/routing/explain?merchant=demo&method=qr&amount=100", "")
	a.reloadNow("test")

	forbidden := map[string]string{
		"merchant secret": demoSecret, "webhook secret": demoWebhook, "admin token": adminToken,
		"apiv3 key": "sandboxAPIv3key0123456789abcdef0", "payer openid": openid, "bad signature": badSig,
		"private key": "PRIVATE KEY",
	}
	if logs.Len() < 5 {
		t.Fatalf("only %d log lines: the test would prove nothing", logs.Len())
	}
	for _, e := range logs.All() {
		line := e.Message
		for k, v := range e.ContextMap() {
			line += " " + k + "=" + strings.TrimSpace(toString(v))
		}
		for what, s := range forbidden {
			if s != "" && strings.Contains(line, s) {
				t.Errorf("log line carries the %s: %s", what, line)
			}
		}
	}
}

func toString(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case []byte:
		return string(x)
	default:
		return strings.TrimSpace(strings.ReplaceAll(fmtAny(x), "\n", " "))
	}
}

func fmtAny(v any) string { return fmt.Sprint(v) }
