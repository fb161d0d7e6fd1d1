package banksim

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"go.uber.org/zap"

	"github.com/paygate/paygate/sandbox"
)

// FuzzBackRequest posts arbitrary bodies to backTransReq.do and
// queryTrans.do: the simulator must never panic, must always answer a
// signed form, and must never answer 00 to a request it could not verify
// (the fuzzer cannot forge the merchant's signature). Seeds:
// testdata/fuzz/FuzzBackRequest (genuine QR apply, query and refund
// requests signed with sandbox/keys/bank-merchant.pem, and broken ones).
func FuzzBackRequest(f *testing.F) {
	c := &clock{t: start}
	sim, err := New(testChannel(f, "http://127.0.0.1:0"), sandbox.Env{Now: c.Now, Logger: zap.NewNop()}, keysDir)
	if err != nil {
		f.Fatal(err)
	}
	s := sim.(*Sim)
	merchant := readKey(f, "bank-merchant.pem")
	f.Add(false, []byte("version=5.1.0&txnType=00"))
	f.Fuzz(func(t *testing.T, query bool, body []byte) {
		path := pathBack
		if query {
			path = pathQuery
		}
		req := httptest.NewRequest(http.MethodPost, path, strings.NewReader(string(body)))
		rec := httptest.NewRecorder()
		s.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK {
			t.Fatalf("HTTP %d", rec.Code)
		}
		ans, err := formValues(rec.Body.Bytes())
		if err != nil || ans["respCode"] == "" || ans["signature"] == "" {
			t.Fatalf("answer %q", rec.Body.String())
		}
		if !verifyFields(&s.key.PublicKey, ans) {
			t.Fatal("answer signature does not verify")
		}
		in, err := formValues(body)
		if ans["respCode"] == "00" && (err != nil || !verifyFields(&merchant.PublicKey, in)) {
			t.Fatalf("00 to an unverifiable request %q", body)
		}
	})
}
