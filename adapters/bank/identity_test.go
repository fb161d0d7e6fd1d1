package bank

import (
	"context"
	"crypto/x509"
	"crypto/x509/pkix"
	"net/http"
	"testing"
	"time"

	"github.com/paygate/paygate/adapters"
	"github.com/paygate/paygate/payment"
)

// The pinned root also issues merchants' certificates, so a message signed
// under the root is the bank's only when its certificate names the bank: the
// third '@'-separated field of the CN must be the expected identity.

const (
	merchantCN = "041@Z12@上海某某商贸有限公司@00000002"    // what the same root issues a merchant
	testEnvCN  = "041@Z12@00040000:SIGN@00000001" // UnionPay's test environment
	testEnvID  = "00040000:SIGN"
)

func TestCertIdentity(t *testing.T) {
	cases := []struct{ cn, want string }{
		{bankCN, DefaultIdentity},
		{testEnvCN, testEnvID},
		{"041@Z12", ""},
		{"中国银联股份有限公司", ""},
		{"a@b@@c", ""},
	}
	for _, c := range cases {
		if got := certIdentity(&x509.Certificate{Subject: subject(c.cn)}); got != c.want {
			t.Errorf("certIdentity(%q) = %q, want %q", c.cn, got, c.want)
		}
	}
}

// Answers: a certificate from the pinned root is trusted only with the
// expected identity; everything else is refused as an unverifiable answer.
func TestAnswerCertificateIdentity(t *testing.T) {
	ca := testCA(t)
	valid := func(cn string) signer { return ca.issueAs(t, cn, start.Add(-time.Hour), start.Add(24*time.Hour)) }
	merchant, testEnv, bank, noFields := valid(merchantCN), valid(testEnvCN), valid(bankCN), valid("bank signing cert")
	tests := []struct {
		name     string
		identity string // the channel's cert_identity
		signer   signer
		ok       bool
	}{
		{"merchant certificate from the pinned root", "", merchant, false},
		{"CN without identity field", "", noFields, false},
		{"test-environment certificate, not configured", "", testEnv, false},
		{"UnionPay certificate", "", bank, true},
		{"test-environment certificate, configured", testEnvID, testEnv, true},
		{"UnionPay certificate where the test identity is configured", testEnvID, bank, false},
		{"merchant certificate where the test identity is configured", testEnvID, merchant, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, harnessOptions{identity: tt.identity, wrap: rewrite(t, func(m map[string]string) map[string]string {
				return tt.signer.resign(t, m)
			})})
			res, err := h.client.Create(context.Background(), h.order(payment.MethodQR, 100))
			if tt.ok {
				if err != nil || res.Action.CodeURL == "" {
					t.Fatalf("create: %+v, %v", res, err)
				}
				return
			}
			e := wantErr(t, err, adapters.KindAmbiguous, "bad_response_signature")
			if e.NotCreated() {
				t.Fatalf("error %v must be ambiguous", e)
			}
		})
	}
}

// Notifications: the same rule. A back notification re-signed by a
// merchant's certificate from the same root is refused (the bank resends;
// nothing is applied); the genuine one is accepted.
func TestNotifyCertificateIdentity(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	_, _, genuine := h.paidWith(t, 1999)
	ca := testCA(t)
	parse := func(body []byte) (*adapters.Notification, error) {
		return h.client.ParseNotify(context.Background(), &adapters.Callback{Body: body, ContentType: "application/x-www-form-urlencoded"})
	}
	resigned := func(cn string) []byte {
		m, err := parseForm(genuine.body)
		if err != nil {
			t.Fatal(err)
		}
		return []byte(encodeForm(ca.issueAs(t, cn, start.Add(-time.Hour), start.Add(24*time.Hour)).resign(t, m)))
	}
	for _, cn := range []string{merchantCN, testEnvCN, "bank signing cert"} {
		_, err := parse(resigned(cn))
		wantErr(t, err, adapters.KindBadSignature, "bad_signature")
		if ack := h.client.Ack(err); ack.Status != http.StatusBadRequest {
			t.Fatalf("%s: ack %+v", cn, ack)
		}
	}
	if n, err := parse(resigned(bankCN)); err != nil || n.Status != adapters.OrderPaid {
		t.Fatalf("bank certificate: %+v, %v", n, err)
	}
	if n, err := parse(genuine.body); err != nil || n.Status != adapters.OrderPaid {
		t.Fatalf("simulator's own notification: %+v, %v", n, err)
	}
}

// The test identity, configured on both sides, works end to end: the
// simulator issues its certificate with it and the adapter accepts it.
func TestConfiguredTestIdentity(t *testing.T) {
	h := newHarness(t, harnessOptions{identity: testEnvID})
	req, qid := h.paid(t, 1999)
	if st, err := h.client.Query(context.Background(), queryOf(req)); err != nil || st.Status != adapters.OrderPaid || st.ChannelTradeNo != qid {
		t.Fatalf("query: %+v, %v", st, err)
	}
}

// The real chain: root → middle → signing certificate. With the middle
// certificate configured, answers and notifications verify; without it the
// signing certificate does not chain to the root and is refused. A
// merchant's certificate from the middle is refused like one from the root.
func TestMiddleCertificate(t *testing.T) {
	t.Run("configured", func(t *testing.T) {
		h := newHarness(t, harnessOptions{middle: true})
		req, qid := h.paid(t, 1999)
		st, err := h.client.Query(context.Background(), queryOf(req))
		if err != nil || st.Status != adapters.OrderPaid || st.ChannelTradeNo != qid {
			t.Fatalf("query: %+v, %v", st, err)
		}
	})
	t.Run("missing", func(t *testing.T) {
		h := newHarness(t, harnessOptions{middle: true, adapterMiddle: x509.NewCertPool()})
		_, err := h.client.Create(context.Background(), h.order(payment.MethodQR, 100))
		wantErr(t, err, adapters.KindAmbiguous, "bad_response_signature")
	})
	t.Run("middles never make an unpinned root trusted", func(t *testing.T) {
		rogue := rogueCA(t).issue(t, start.Add(-time.Hour), start.Add(24*time.Hour))
		h := newHarness(t, harnessOptions{middle: true, wrap: rewrite(t, func(m map[string]string) map[string]string {
			return rogue.resign(t, m)
		})})
		_, err := h.client.Create(context.Background(), h.order(payment.MethodQR, 100))
		wantErr(t, err, adapters.KindAmbiguous, "bad_response_signature")
	})
	t.Run("merchant certificate from the middle", func(t *testing.T) {
		merchant := middleCA(t).issueAs(t, merchantCN, start.Add(-time.Hour), start.Add(24*time.Hour))
		h := newHarness(t, harnessOptions{middle: true, wrap: rewrite(t, func(m map[string]string) map[string]string {
			return merchant.resign(t, m)
		})})
		_, err := h.client.Create(context.Background(), h.order(payment.MethodQR, 100))
		wantErr(t, err, adapters.KindAmbiguous, "bad_response_signature")
	})
}

func subject(cn string) pkix.Name { return pkix.Name{CommonName: cn} }
