package gateway_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/paygate/paygate/store"
	"github.com/paygate/paygate/store/storetest"
)

// capture records the notifications a simulator sends to the gateway.
type capture struct {
	mu   sync.Mutex
	reqs []captured
	srv  *httptest.Server
}

type captured struct {
	path   string
	header http.Header
	body   []byte
}

func newCapture(t *testing.T) *capture {
	c := &capture{}
	c.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		c.mu.Lock()
		c.reqs = append(c.reqs, captured{r.URL.Path, r.Header.Clone(), b})
		c.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(c.srv.Close)
	return c
}

func (c *capture) wait(t *testing.T) captured {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		c.mu.Lock()
		if len(c.reqs) > 0 {
			r := c.reqs[0]
			c.mu.Unlock()
			return r
		}
		c.mu.Unlock()
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatal("no notification captured")
	return captured{}
}

func post(t *testing.T, url string, c captured, mutate func(h http.Header)) (int, []byte) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(c.body))
	req.Header = c.header.Clone()
	if mutate != nil {
		mutate(req.Header)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// A notification that fails verification changes nothing and, where it
// names a pending payment, makes the reconciler query the channel now; the
// genuine one then applies exactly once.
func TestRefusedNotificationPromptsQuery(t *testing.T) {
	rs := storetest.Redis(t)
	s := newSim(t)
	cfg := testConfig(t, s.srv.URL)
	cp := newCapture(t)
	cfg.Server.PublicURL = cp.srv.URL
	s.start(t, cfg)
	in := startInstance(t, cfg, rs.Addr())
	sg := hmacSigner("m-hmac", hmacSecret)

	r := sg.do(t, in.url, http.MethodPost, "/v1/payments", paymentBody("hint-1", 700, "wechat_native"), reqOpts{})
	if r.status != 201 {
		t.Fatalf("create: %d %s", r.status, r.body)
	}
	id := r.json(t)["payment_id"].(string)
	ctx := context.Background()
	if due, _ := in.st.ClaimSweep(ctx, "m-hmac", time.Now(), time.Second, 10); len(due) != 0 {
		t.Fatalf("payment due for a query before any notification: %v", due)
	}
	if err := s.sim.Pay(strings.TrimPrefix(id, "pay_")); err != nil {
		t.Fatal(err)
	}
	genuine := cp.wait(t)
	url := in.url + genuine.path

	status, body := post(t, url, genuine, func(h http.Header) { h.Set("Wechatpay-Signature", "WECHATPAY/SIGNTEST/"+h.Get("Wechatpay-Signature")) })
	if status < 400 || !strings.Contains(string(body), `"FAIL"`) {
		t.Fatalf("forged notification answered %d %s", status, body)
	}
	if rec, err := in.st.GetPayment(ctx, nil, "m-hmac", id); err != nil || rec.Status != "pending" {
		t.Fatalf("a refused notification changed the payment: %v %v", rec, err)
	}
	due, err := in.st.ClaimSweep(ctx, "m-hmac", time.Now(), time.Second, 10)
	if err != nil || len(due) != 1 || due[0].ID != id || due[0].Kind != store.SweepPayment {
		t.Fatalf("refused notification did not schedule a query: %v %v", due, err)
	}

	status, _ = post(t, url, genuine, nil)
	if status != http.StatusNoContent {
		t.Fatalf("genuine notification answered %d", status)
	}
	rec, err := in.st.GetPayment(ctx, nil, "m-hmac", id)
	if err != nil || rec.Status != "succeeded" {
		t.Fatalf("after the genuine notification: %v %v", rec, err)
	}
	v := rec.Version
	if status, _ = post(t, url, genuine, nil); status != http.StatusNoContent {
		t.Fatalf("duplicate answered %d", status)
	}
	if rec2, _ := in.st.GetPayment(ctx, nil, "m-hmac", id); rec2.Version != v {
		t.Fatalf("duplicate notification changed the payment (version %d → %d)", v, rec2.Version)
	}
}
