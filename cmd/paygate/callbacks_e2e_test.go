package main

import (
	"bytes"
	"crypto"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/paygate/paygate/payment"
	"github.com/paygate/paygate/store/storetest"
)

// Channel callbacks end to end (CONTRACT §6): the simulators' real signed
// notifications are captured by a recording proxy standing at
// server.public_url, then delivered again as they were (replays), altered
// without the channel's keys (tampering: refused, nothing changes) and
// altered and re-signed with the sandbox's own channel keys (a channel that
// states another amount: refused, an ALERT logged). After each step the
// stored state and the merchant's deliveries are asserted.

// The sandbox WeChat credentials of configTemplate.
const (
	wechatAPIv3Key = "sandboxAPIv3key0123456789abcdef0"
	wechatMchID    = "1900000001"
)

const callbackRoutes = `
  rules:
    - name: bank-redirect
      when: {methods: [bank_redirect]}
      channels: [bank-a]
  failover: {max_attempts: 2}`

// cbChannel is one channel type under test.
type cbChannel struct {
	typ     string // wechat | alipay | bank
	method  string
	channel string
}

var cbChannels = []cbChannel{
	{"wechat", "wechat_native", "wechat-main"},
	{"alipay", "alipay_qr", "alipay-main"},
	{"bank", "bank_redirect", "bank-a"},
}

// startWithRecorder starts the gateway with the channels' notify URLs
// pointing at a recording proxy in front of it.
func startWithRecorder(t *testing.T, o e2eOpts, so options) (*running, *callbackRecorder) {
	t.Helper()
	rec := newCallbackRecorder(t)
	o.publicURL = rec.url()
	g := startE2EWith(t, o, so)
	rec.forwardTo(g.base)
	return g, rec
}

func TestCallbacks(t *testing.T) {
	rs := storetest.Redis(t)
	g, rec := startWithRecorder(t, e2eOpts{redisAddr: rs.Addr(), routing: callbackRoutes}, options{})
	for _, cc := range cbChannels {
		t.Run(cc.typ, func(t *testing.T) {
			t.Parallel()
			g := g.with(t)
			site := newMerchantSite(t)
			a := g.mustCreate("cb-a-"+cc.typ, 1000, cc.method, site.url())
			b := g.mustCreate("cb-b-"+cc.typ, 2000, cc.method, site.url())
			aid, bid := a["payment_id"].(string), b["payment_id"].(string)
			if a["channel"] != cc.channel || b["channel"] != cc.channel {
				t.Fatalf("payments on %v and %v, want %s", a["channel"], b["channel"], cc.channel)
			}

			// Genuine: the simulator's notification makes A succeeded, the
			// gateway acknowledges it in the channel's form, the merchant
			// hears of it once.
			g.pay(aid)
			cbA := rec.waitFor(t, "paying "+aid, func(c capturedCallback) bool {
				if c.Channel != cc.channel {
					return false
				}
				f := callbackFacts(t, cc.typ, c)
				return f.refundNo == "" && f.orderNo == payment.OrderNo(aid)
			})
			assertAck(t, cc.typ, "genuine", cbA.Status, cbA.Answer, true)
			if !loggedCallback(g, aid, cc.channel, cbA.Status) {
				t.Fatalf("no request log line for the callback of %s", aid)
			}
			g.waitFor("/v1/payments/"+aid, "succeeded", statusIs("succeeded"))
			site.waitEvent("payment.succeeded", aid)
			g.drainOutbox()
			paidA, pendingB := g.get("/v1/payments/"+aid), g.get("/v1/payments/"+bid)
			if pendingB["status"] != "pending" {
				t.Fatalf("B: %v", pendingB)
			}
			verA, _ := g.versions(aid, "")
			verB, _ := g.versions(bid, "")
			unchanged := func(step string) {
				t.Helper()
				g.drainOutbox()
				samePayment(t, step+": A", paidA, g.get("/v1/payments/"+aid))
				samePayment(t, step+": B", pendingB, g.get("/v1/payments/"+bid))
				if a, _ := g.versions(aid, ""); a != verA {
					t.Fatalf("%s: A was stored again (version %d → %d)", step, verA, a)
				}
				if b, _ := g.versions(bid, ""); b != verB {
					t.Fatalf("%s: B was stored again (version %d → %d)", step, verB, b)
				}
				if n := site.count(eventID(aid, "payment.succeeded")); n != 1 {
					t.Fatalf("%s: payment.succeeded of A delivered %d times, want once", step, n)
				}
				for _, typ := range []string{"payment.succeeded", "payment.failed", "payment.closed"} {
					if n := site.count(eventID(bid, typ)); n != 0 {
						t.Fatalf("%s: B got %d %s events", step, n, typ)
					}
				}
			}

			// Replayed: the same notification again (also while B exists)
			// is acknowledged and changes neither A nor B.
			r := g.postCallback(cc.channel, cbA.Header, cbA.Body)
			assertAck(t, cc.typ, "replay", r.Status, r.Body, true)
			unchanged("replay")

			// Tampered without the channel's keys: refused in the channel's
			// failure form, nothing changes. Some edits re-target A's
			// notification at B, the forgery that matters.
			for _, tm := range tamperings(cc.typ) {
				h, body := tm.edit(t, cbA, payment.OrderNo(bid))
				r := g.postCallback(cc.channel, h, body)
				assertAck(t, cc.typ, tm.name, r.Status, r.Body, false)
				unchanged(tm.name)
			}

			// Wrong amount: a notification correctly signed with the
			// channel's own keys that says B was paid 1 fen more than
			// stored. Refused, B stays pending, an ALERT names B.
			h, body := resignPayment(t, cc.typ, cbA, payment.OrderNo(bid), 2001)
			r = g.postCallback(cc.channel, h, body)
			assertAck(t, cc.typ, "wrong amount", r.Status, r.Body, false)
			unchanged("wrong amount")
			if n := alerts(g, "ALERT channel reports a different amount", bid); n == 0 {
				t.Fatal("wrong amount: no ALERT logged for B")
			}
			// The same notification with the stored amount is accepted, so
			// it was the amount that was refused, not the forged signature.
			h, body = resignPayment(t, cc.typ, cbA, payment.OrderNo(bid), 2000)
			r = g.postCallback(cc.channel, h, body)
			assertAck(t, cc.typ, "re-signed with the right amount", r.Status, r.Body, true)
			paidB := g.waitFor("/v1/payments/"+bid, "succeeded", statusIs("succeeded"))
			if paidB["amount"] != float64(2000) {
				t.Fatalf("B: %v", paidB)
			}
			site.waitEvent("payment.succeeded", bid)

			// Reordered: after a refund succeeded (its own notification
			// included), A's payment notification arrives again. A stays
			// succeeded with its refunded amount, nothing is delivered again.
			rr := g.call(http.MethodPost, "/v1/payments/"+aid+"/refunds", map[string]any{"out_refund_no": "cb-rf-" + cc.typ, "amount": 300})
			if rr.Status != 201 {
				t.Fatalf("refund: %d %s", rr.Status, rr.Body)
			}
			rid := rr.obj(t)["refund_id"].(string)
			cbR := rec.waitFor(t, "refunding "+rid, func(c capturedCallback) bool {
				return c.Channel == cc.channel && callbackFacts(t, cc.typ, c).refundNo == payment.RefundOrderNo(rid)
			})
			assertAck(t, cc.typ, "genuine refund", cbR.Status, cbR.Answer, true)
			g.waitFor("/v1/refunds/"+rid, "succeeded", statusIs("succeeded"))
			site.waitEvent("refund.succeeded", rid)
			g.drainOutbox()
			refundedA, doneR := g.get("/v1/payments/"+aid), g.get("/v1/refunds/"+rid)
			if refundedA["refunded_amount"] != float64(300) || refundedA["status"] != "succeeded" {
				t.Fatalf("A after refund: %v", refundedA)
			}
			verA, verR := g.versions(aid, rid)
			for _, c := range []capturedCallback{cbA, cbR, cbA} {
				r := g.postCallback(cc.channel, c.Header, c.Body)
				assertAck(t, cc.typ, "reordered replay", r.Status, r.Body, true)
			}
			g.drainOutbox()
			samePayment(t, "reordered: A", refundedA, g.get("/v1/payments/"+aid))
			if a, r := g.versions(aid, rid); a != verA || r != verR {
				t.Fatalf("reordered: stored again (payment version %d → %d, refund %d → %d)", verA, a, verR, r)
			}
			if after := g.get("/v1/refunds/" + rid); after["status"] != "succeeded" || after["updated_at"] != doneR["updated_at"] {
				t.Fatalf("refund changed by replays: %v, was %v", after, doneR)
			}
			if n := site.count(eventID(aid, "payment.succeeded")); n != 1 {
				t.Fatalf("reordered: payment.succeeded of A delivered %d times", n)
			}
			if n := site.count(eventID(rid, "refund.succeeded")); n != 1 {
				t.Fatalf("reordered: refund.succeeded delivered %d times", n)
			}
			site.mu.Lock()
			defer site.mu.Unlock()
			if site.bad != 0 {
				t.Errorf("%d merchant notifications failed verification", site.bad)
			}
		})
	}
}

// with returns a copy of g that reports to t (for subtests).
func (g *running) with(t testing.TB) *running {
	c := *g
	c.t = t
	return &c
}

func eventID(objectID, typ string) string {
	return "evt_" + objectID + "_" + strings.ReplaceAll(typ, ".", "_")
}

// samePayment fails unless the payment did not change at all.
func samePayment(t testing.TB, what string, before, after map[string]any) {
	t.Helper()
	for _, k := range []string{"status", "updated_at", "amount", "refunded_amount", "channel", "channel_trade_no", "paid_at", "failure"} {
		if fmt.Sprint(before[k]) != fmt.Sprint(after[k]) {
			t.Fatalf("%s: %s changed from %v to %v", what, k, before[k], after[k])
		}
	}
}

// alerts counts the ALERT log entries with message prefix msg about paymentID.
func alerts(g *running, msg, paymentID string) int {
	n := 0
	for _, e := range g.logs.FilterMessageSnippet(msg).All() {
		if e.ContextMap()["payment_id"] == paymentID {
			n++
		}
	}
	return n
}

// loggedCallback reports whether the gateway's request log has the callback
// line naming the payment, the channel and the status it answered. (Reading
// the logged fields while other requests run also checks that no field
// aliases a request buffer fasthttp reuses.)
func loggedCallback(g *running, paymentID, channel string, status int) bool {
	for _, e := range g.logs.FilterMessage("request").All() {
		c := e.ContextMap()
		if c["route"] == "POST /callbacks/{channel_id}" && c["method"] == "POST" && c["payment_id"] == paymentID &&
			c["channel"] == channel && fmt.Sprint(c["status"]) == strconv.Itoa(status) {
			return true
		}
	}
	return false
}

// assertAck checks the gateway answered a notification in the channel's
// success (ok) or failure form.
func assertAck(t testing.TB, typ, what string, status int, body []byte, ok bool) {
	t.Helper()
	var good bool
	switch typ {
	case "wechat":
		if ok {
			good = status >= 200 && status < 300
		} else {
			var fail struct{ Code string }
			good = status >= 400 && json.Unmarshal(body, &fail) == nil && fail.Code == "FAIL"
		}
	case "alipay":
		want := "success"
		if !ok {
			want = "fail"
		}
		good = status == 200 && string(body) == want
	case "bank":
		if ok {
			good = status == 200
		} else {
			good = status >= 400 && status < 500
		}
	}
	if !good {
		form := "success"
		if !ok {
			form = "failure"
		}
		t.Fatalf("%s: answered %d %q, want %s's %s form", what, status, body, typ, form)
	}
}

// cbFacts is what a captured notification is about.
type cbFacts struct {
	orderNo  string
	refundNo string
}

// callbackFacts decodes a captured notification (decrypting WeChat's
// resource with the sandbox APIv3 key).
func callbackFacts(t testing.TB, typ string, c capturedCallback) cbFacts {
	t.Helper()
	switch typ {
	case "wechat":
		plain := wechatPlain(t, c.Body)
		s := func(k string) string { v, _ := plain[k].(string); return v }
		return cbFacts{orderNo: s("out_trade_no"), refundNo: s("out_refund_no")}
	case "alipay":
		f := formOf(t, c.Body)
		return cbFacts{orderNo: f["out_trade_no"], refundNo: f["out_biz_no"]}
	default:
		f := formOf(t, c.Body)
		if f["txnType"] == "04" {
			return cbFacts{orderNo: f["orderId"][:24], refundNo: f["orderId"]}
		}
		return cbFacts{orderNo: f["orderId"]}
	}
}

func formOf(t testing.TB, body []byte) map[string]string {
	t.Helper()
	v, err := url.ParseQuery(string(body))
	if err != nil {
		t.Fatalf("callback is not a form: %v", err)
	}
	m := make(map[string]string, len(v))
	for k, vs := range v {
		m[k] = vs[0]
	}
	return m
}

func encodeForm(m map[string]string) []byte {
	v := url.Values{}
	for k, s := range m {
		v.Set(k, s)
	}
	return []byte(v.Encode())
}

// flipDigit changes the first digit of s, so that a money amount keeps its
// format but not its value.
func flipDigit(s string) string {
	for i := 0; i < len(s); i++ {
		if d := s[i]; d >= '0' && d <= '9' {
			n := '0' + (d-'0'+5)%10
			if n == '0' && i == 0 {
				n = '9'
			}
			return s[:i] + string(rune(n)) + s[i+1:]
		}
	}
	return s + "1"
}

// tampering is an edit of a genuine notification made without the channel's
// signing key.
type tampering struct {
	name string
	edit func(t testing.TB, c capturedCallback, otherOrderNo string) (http.Header, []byte)
}

func tamperings(typ string) []tampering {
	switch typ {
	case "wechat":
		return []tampering{
			{"ciphertext byte flipped", func(t testing.TB, c capturedCallback, _ string) (http.Header, []byte) {
				return c.Header.Clone(), wechatFlipCiphertext(t, c.Body)
			}},
			{"ciphertext byte flipped, then signed by the platform key", func(t testing.TB, c capturedCallback, _ string) (http.Header, []byte) {
				body := wechatFlipCiphertext(t, c.Body)
				return wechatSign(t, c.Header, body), body
			}},
			{"re-encrypted for another payment with the APIv3 key, old signature", func(t testing.TB, c capturedCallback, other string) (http.Header, []byte) {
				return c.Header.Clone(), wechatReseal(t, c.Body, func(p map[string]any) { p["out_trade_no"] = other })
			}},
			{"amount changed and re-encrypted, old signature", func(t testing.TB, c capturedCallback, _ string) (http.Header, []byte) {
				return c.Header.Clone(), wechatReseal(t, c.Body, func(p map[string]any) { setAmount(p, 1) })
			}},
			{"signed with the merchant's key instead of the platform's", func(t testing.TB, c capturedCallback, _ string) (http.Header, []byte) {
				h := wechatSign(t, c.Header, c.Body)
				h.Set("Wechatpay-Signature", wechatSignature(rsaKey(t, "wechat-merchant.pem"), h.Get("Wechatpay-Timestamp"), h.Get("Wechatpay-Nonce"), c.Body))
				return h, c.Body
			}},
		}
	case "alipay":
		return []tampering{
			{"amount digit flipped", func(t testing.TB, c capturedCallback, _ string) (http.Header, []byte) {
				f := formOf(t, c.Body)
				f["total_amount"] = flipDigit(f["total_amount"])
				return c.Header.Clone(), encodeForm(f)
			}},
			{"re-targeted at another payment", func(t testing.TB, c capturedCallback, other string) (http.Header, []byte) {
				f := formOf(t, c.Body)
				f["out_trade_no"] = other
				return c.Header.Clone(), encodeForm(f)
			}},
			{"signed with the app's key instead of Alipay's", func(t testing.TB, c capturedCallback, _ string) (http.Header, []byte) {
				f := formOf(t, c.Body)
				alipaySign(rsaKey(t, "alipay-app.pem"), f)
				return c.Header.Clone(), encodeForm(f)
			}},
		}
	default:
		return []tampering{
			{"txnAmt digit flipped", func(t testing.TB, c capturedCallback, _ string) (http.Header, []byte) {
				f := formOf(t, c.Body)
				f["txnAmt"] = flipDigit(f["txnAmt"])
				return c.Header.Clone(), encodeForm(f)
			}},
			{"re-targeted at another payment", func(t testing.TB, c capturedCallback, other string) (http.Header, []byte) {
				f := formOf(t, c.Body)
				f["orderId"] = other
				return c.Header.Clone(), encodeForm(f)
			}},
			{"signed under a certificate outside the pinned CA", func(t testing.TB, c capturedCallback, _ string) (http.Header, []byte) {
				f := formOf(t, c.Body)
				key, cert := selfSignedBankCert(t)
				bankSign(t, key, cert, f)
				return c.Header.Clone(), encodeForm(f)
			}},
		}
	}
}

// resignPayment turns a genuine payment notification into one for orderNo
// stating amount (fen), correctly signed with the sandbox channel's own keys,
// as the channel would send it.
func resignPayment(t testing.TB, typ string, c capturedCallback, orderNo string, amount int64) (http.Header, []byte) {
	t.Helper()
	switch typ {
	case "wechat":
		body := wechatReseal(t, c.Body, func(p map[string]any) {
			p["out_trade_no"] = orderNo
			setAmount(p, amount)
		})
		return wechatSign(t, c.Header, body), body
	case "alipay":
		f := formOf(t, c.Body)
		y := fmt.Sprintf("%d.%02d", amount/100, amount%100)
		f["out_trade_no"] = orderNo
		f["trade_no"] += "9"
		for _, k := range []string{"total_amount", "receipt_amount", "invoice_amount", "buyer_pay_amount"} {
			f[k] = y
		}
		f["fund_bill_list"] = `[{"amount":"` + y + `","fundChannel":"ALIPAYACCOUNT"}]`
		alipaySign(rsaKey(t, "alipay-platform.pem"), f)
		return c.Header.Clone(), encodeForm(f)
	default:
		f := formOf(t, c.Body)
		f["orderId"] = orderNo
		f["txnAmt"] = strconv.FormatInt(amount, 10)
		f["queryId"] += "9"
		key, cert := caIssuedBankCert(t)
		bankSign(t, key, cert, f)
		return c.Header.Clone(), encodeForm(f)
	}
}

// --- WeChat Pay: AES-256-GCM resource, RSA-SHA256 over ts\nnonce\nbody\n ---

type wechatEnvelope struct {
	ID           string         `json:"id"`
	CreateTime   string         `json:"create_time"`
	ResourceType string         `json:"resource_type"`
	EventType    string         `json:"event_type"`
	Summary      string         `json:"summary"`
	Resource     wechatResource `json:"resource"`
}

type wechatResource struct {
	OriginalType   string `json:"original_type"`
	Algorithm      string `json:"algorithm"`
	Ciphertext     string `json:"ciphertext"`
	AssociatedData string `json:"associated_data"`
	Nonce          string `json:"nonce"`
}

func wechatGCM(t testing.TB, nonce string) cipher.AEAD {
	t.Helper()
	block, err := aes.NewCipher([]byte(wechatAPIv3Key))
	if err != nil {
		t.Fatal(err)
	}
	gcm, err := cipher.NewGCMWithNonceSize(block, len(nonce))
	if err != nil {
		t.Fatal(err)
	}
	return gcm
}

func wechatEnv(t testing.TB, body []byte) wechatEnvelope {
	t.Helper()
	var env wechatEnvelope
	if err := json.Unmarshal(body, &env); err != nil {
		t.Fatalf("WeChat notification: %v: %s", err, body)
	}
	return env
}

func wechatPlain(t testing.TB, body []byte) map[string]any {
	t.Helper()
	env := wechatEnv(t, body)
	ct, err := base64.StdEncoding.DecodeString(env.Resource.Ciphertext)
	if err != nil {
		t.Fatal(err)
	}
	plain, err := wechatGCM(t, env.Resource.Nonce).Open(nil, []byte(env.Resource.Nonce), ct, []byte(env.Resource.AssociatedData))
	if err != nil {
		t.Fatalf("WeChat resource does not decrypt: %v", err)
	}
	var m map[string]any
	if err := json.Unmarshal(plain, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// wechatReseal decrypts the resource, lets edit change it, and encrypts it
// again under a fresh nonce: what a forger holding the APIv3 key (but not
// the platform's signing key) can do.
func wechatReseal(t testing.TB, body []byte, edit func(map[string]any)) []byte {
	t.Helper()
	env := wechatEnv(t, body)
	plain := wechatPlain(t, body)
	edit(plain)
	pb, err := json.Marshal(plain)
	if err != nil {
		t.Fatal(err)
	}
	nonce := randomAlnum(12)
	env.Resource.Nonce = nonce
	env.Resource.Ciphertext = base64.StdEncoding.EncodeToString(wechatGCM(t, nonce).Seal(nil, []byte(nonce), pb, []byte(env.Resource.AssociatedData)))
	out, err := json.Marshal(env)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func wechatFlipCiphertext(t testing.TB, body []byte) []byte {
	t.Helper()
	env := wechatEnv(t, body)
	ct, err := base64.StdEncoding.DecodeString(env.Resource.Ciphertext)
	if err != nil {
		t.Fatal(err)
	}
	ct[len(ct)/2] ^= 0x01
	// Re-encode only that field, keeping every other byte of the body.
	return bytes.Replace(body, []byte(env.Resource.Ciphertext), []byte(base64.StdEncoding.EncodeToString(ct)), 1)
}

func setAmount(p map[string]any, fen int64) {
	amt, _ := p["amount"].(map[string]any)
	if amt == nil {
		amt = map[string]any{}
		p["amount"] = amt
	}
	amt["total"] = fen
	if _, ok := amt["payer_total"]; ok {
		amt["payer_total"] = fen
	}
}

// wechatSign signs body with the sandbox WeChat platform key, now, as
// WeChat signs each notification delivery.
func wechatSign(t testing.TB, orig http.Header, body []byte) http.Header {
	t.Helper()
	h := orig.Clone()
	ts, nonce := strconv.FormatInt(time.Now().Unix(), 10), randomAlnum(32)
	h.Set("Wechatpay-Timestamp", ts)
	h.Set("Wechatpay-Nonce", nonce)
	h.Set("Wechatpay-Signature", wechatSignature(rsaKey(t, "wechat-platform.pem"), ts, nonce, body))
	return h
}

func wechatSignature(key *rsa.PrivateKey, ts, nonce string, body []byte) string {
	sum := sha256.Sum256([]byte(ts + "\n" + nonce + "\n" + string(body) + "\n"))
	sig, err := rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, sum[:])
	if err != nil {
		panic(err)
	}
	return base64.StdEncoding.EncodeToString(sig)
}

// --- Alipay: RSA2 over the sorted k=v pairs without sign and sign_type ---

func alipaySign(key *rsa.PrivateKey, f map[string]string) {
	keys := make([]string, 0, len(f))
	for k, v := range f {
		if k != "sign" && k != "sign_type" && v != "" {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + f[k]
	}
	sum := sha256.Sum256([]byte(strings.Join(parts, "&")))
	sig, err := rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, sum[:])
	if err != nil {
		panic(err)
	}
	f["sign_type"] = "RSA2"
	f["sign"] = base64.StdEncoding.EncodeToString(sig)
}

// --- Bank (ACP 5.1.0, signMethod 01): RSA over SHA-256(hex(SHA-256(k=v&…))) ---

func bankSign(t testing.TB, key *rsa.PrivateKey, certPEM string, f map[string]string) {
	t.Helper()
	f["signPubKeyCert"] = certPEM
	delete(f, "signature")
	keys := make([]string, 0, len(f))
	for k := range f {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + f[k]
	}
	inner := sha256.Sum256([]byte(strings.Join(parts, "&")))
	outer := sha256.Sum256([]byte(hex.EncodeToString(inner[:])))
	sig, err := rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, outer[:])
	if err != nil {
		t.Fatal(err)
	}
	f["signature"] = base64.StdEncoding.EncodeToString(sig)
}

var bankCerts struct {
	sync.Once
	key          *rsa.PrivateKey
	issued, self string
	err          error
}

// caIssuedBankCert is a signing certificate issued by the sandbox's test
// bank CA (the one the adapter pins), as banksim issues its own.
func caIssuedBankCert(t testing.TB) (*rsa.PrivateKey, string) {
	t.Helper()
	loadBankCerts(t)
	return bankCerts.key, bankCerts.issued
}

// selfSignedBankCert is a certificate for the same key that chains to
// nothing the adapter trusts.
func selfSignedBankCert(t testing.TB) (*rsa.PrivateKey, string) {
	t.Helper()
	loadBankCerts(t)
	return bankCerts.key, bankCerts.self
}

func loadBankCerts(t testing.TB) {
	t.Helper()
	bankCerts.Do(func() {
		caPEM, err := os.ReadFile("../../sandbox/keys/bank-root-ca.pem")
		if err != nil {
			bankCerts.err = err
			return
		}
		block, _ := pem.Decode(caPEM)
		ca, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			bankCerts.err = err
			return
		}
		caKey := rsaKey(t, "bank-root-ca.key.pem")
		key, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			bankCerts.err = err
			return
		}
		issue := func(parent *x509.Certificate, signer *rsa.PrivateKey) string {
			tmpl := &x509.Certificate{
				SerialNumber: big.NewInt(time.Now().UnixNano()),
				Subject:      pkix.Name{CommonName: "041@Z12@中国银联股份有限公司@00000001"}, // the bank's identity
				NotBefore:    time.Now().Add(-time.Hour),
				NotAfter:     time.Now().Add(24 * time.Hour),
				KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageContentCommitment,
			}
			if parent == nil {
				parent = tmpl
			}
			der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, signer)
			if err != nil {
				bankCerts.err = err
				return ""
			}
			return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
		}
		bankCerts.key = key
		bankCerts.issued = issue(ca, caKey)
		bankCerts.self = issue(nil, key)
	})
	if bankCerts.err != nil {
		t.Fatalf("bank certificates: %v", bankCerts.err)
	}
}

// --- keys ---

var (
	keyMu    sync.Mutex
	keyCache = map[string]*rsa.PrivateKey{}
)

// rsaKey loads a private key (PKCS#1 or PKCS#8) from sandbox/keys.
func rsaKey(t testing.TB, name string) *rsa.PrivateKey {
	t.Helper()
	keyMu.Lock()
	defer keyMu.Unlock()
	if k := keyCache[name]; k != nil {
		return k
	}
	b, err := os.ReadFile("../../sandbox/keys/" + name)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(b)
	if block == nil {
		t.Fatalf("%s: no PEM", name)
	}
	var k *rsa.PrivateKey
	if k, err = x509.ParsePKCS1PrivateKey(block.Bytes); err != nil {
		pk, err := x509.ParsePKCS8PrivateKey(block.Bytes)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		k = pk.(*rsa.PrivateKey)
	}
	keyCache[name] = k
	return k
}

func randomAlnum(n int) string {
	const alnum = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
	b := make([]byte, n)
	rand.Read(b)
	for i := range b {
		b[i] = alnum[int(b[i])%len(alnum)]
	}
	return string(b)
}
