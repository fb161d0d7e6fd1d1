package banksim

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/paygate/paygate/sandbox"
)

// The ACP 5.1.0 signature vector: sandbox/keys/bank-merchant.pem and a
// fixed consume. The digest and signature were computed once with
// coreutils and OpenSSL (sha256sum of the string; openssl dgst -sha256
// -sign over the hex text) and are pinned here; adapters/bank pins the same
// vector, so the two independent implementations agree.
var vector = struct {
	fields    map[string]string
	canonical string
	digestHex string
	signature string
}{
	fields: map[string]string{
		"version": "5.1.0", "encoding": "utf-8", "signMethod": "01", "txnType": "01", "txnSubType": "01",
		"bizType": "000201", "channelType": "07", "accessType": "0", "currencyCode": "156",
		"merId": "777290058110048", "orderId": "0123456789ABCDEFGHIJabcd", "txnTime": "20261129150405",
		"txnAmt": "1999", "backUrl": "https://pay.example.com/callbacks/bank-a", "certId": "69026276696",
	},
	canonical: "accessType=0&backUrl=https://pay.example.com/callbacks/bank-a&bizType=000201&certId=69026276696" +
		"&channelType=07&currencyCode=156&encoding=utf-8&merId=777290058110048&orderId=0123456789ABCDEFGHIJabcd" +
		"&signMethod=01&txnAmt=1999&txnSubType=01&txnTime=20261129150405&txnType=01&version=5.1.0",
	digestHex: "8a9e77958ecd0e99c3d9d47f938760e31be4ce3b63b6d8a45fa55c9056d20a69",
	signature: "nhH3T1c3wiEseqk+e6c1Muq9q8JrWv4G/eKjB2aKGIB5pd7645WSQG93jvQ2FuQT6iXeEOdHqLuGueg/LVyRBr0c1cIogcke9qPfeAQUuuIe" +
		"3vpFV+AFM8Jn+H0s7FBPfgoFaeOXOIwe0oU49Wde2miWo5ZiVmXHYNyhwOQ9Puaqi4z2tQxW7Zoj+bRmkusMujAisdyCxOsls25oh4VOR7cUno29f5o4" +
		"WX3SLRFLoKdST7S65eBZyUTUoomZQw8xxrNyOJ4xjmHYXLmo2i4W1ThM4vtePlMTlzsfkqRpx+RNXVd8bQYpJJf1N4abMUm3HU2fp7wxkhZ2VncHo3nvew==",
}

func TestSignatureVector(t *testing.T) {
	key := readKey(t, "bank-merchant.pem")
	fields := map[string]string{}
	for k, v := range vector.fields {
		fields[k] = v
	}
	fields["signature"] = "ignored: never part of the signed string"
	if got := string(canonical(fields)); got != vector.canonical {
		t.Fatalf("canonical string\n got %s\nwant %s", got, vector.canonical)
	}
	// The pinned signature verifies with the public key.
	fields["signature"] = vector.signature
	if !verifyFields(&key.PublicKey, fields) {
		t.Fatal("pinned signature does not verify")
	}
	// Signing reproduces it (PKCS#1 v1.5 is deterministic).
	delete(fields, "signature")
	if err := signFields(key, fields); err != nil {
		t.Fatal(err)
	}
	if fields["signature"] != vector.signature {
		t.Fatalf("signature\n got %s\nwant %s", fields["signature"], vector.signature)
	}
	// The RSA signature covers the hex digest text, not the raw digest.
	sum := sha256.Sum256(canonical(fields))
	inner := hex.EncodeToString(sum[:])
	if inner != vector.digestHex {
		t.Fatalf("digest %s, want %s", inner, vector.digestHex)
	}
	fields["txnAmt"] = "1998"
	if verifyFields(&key.PublicKey, fields) {
		t.Fatal("signature verifies over a changed txnAmt")
	}
}

func TestSigningCertificate(t *testing.T) {
	f := newFixture(t)
	block, _ := pem.Decode([]byte(f.sim.certPEM))
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		at   time.Time
		ok   bool
	}{
		{"at start", start, true},
		{"a day before start", start.Add(-24 * time.Hour), false},
		{"just inside the validity", start.Add(certValidity - time.Minute), true},
		{"after the validity", start.Add(certValidity + time.Minute), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := cert.Verify(x509.VerifyOptions{Roots: f.roots, CurrentTime: tt.at,
				KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}})
			if (err == nil) != tt.ok {
				t.Fatalf("verify at %s: err %v, want ok=%v", tt.at, err, tt.ok)
			}
		})
	}
	if !cert.PublicKey.(*rsa.PublicKey).Equal(&f.sim.key.PublicKey) {
		t.Fatal("certificate is not for the signing key")
	}
}

func TestRequestRefusals(t *testing.T) {
	f := newFixture(t)
	other, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	with := func(k, v string) func(map[string]string) map[string]string {
		return func(m map[string]string) map[string]string {
			if v == "" {
				delete(m, k)
			} else {
				m[k] = v
			}
			return f.signed(m)
		}
	}
	tests := []struct {
		name  string
		path  string
		build func(map[string]string) map[string]string
		code  string
	}{
		{"version 5.0.0", pathBack, with("version", "5.0.0"), "10"},
		{"signMethod 11", pathBack, with("signMethod", "11"), "10"},
		{"unknown certId", pathBack, with("certId", "1"), "11"},
		{"signed with another key", pathBack, func(m map[string]string) map[string]string {
			signFields(other, m)
			return m
		}, "11"},
		{"changed after signing", pathBack, func(m map[string]string) map[string]string {
			f.signed(m)
			m["txnAmt"] = "1"
			return m
		}, "11"},
		{"no signature", pathBack, func(m map[string]string) map[string]string { return m }, "11"},
		{"another merId", pathBack, with("merId", "777290058110097"), "31"},
		{"missing backUrl", pathBack, with("backUrl", ""), "13"},
		{"txnTime not a time", pathBack, with("txnTime", "20261399150405"), "10"},
		{"txnTime short", pathBack, with("txnTime", "202611291504"), "10"},
		{"txnAmt zero", pathBack, with("txnAmt", "0"), "10"},
		{"txnAmt leading zero", pathBack, with("txnAmt", "0100"), "10"},
		{"txnAmt yuan", pathBack, with("txnAmt", "19.99"), "10"},
		{"orderId with dash", pathBack, with("orderId", "order-0001"), "10"},
		{"currency USD", pathBack, with("currencyCode", "840"), "10"},
		{"payTimeout before txnTime", pathBack, with("payTimeout", "20200101000000"), "10"},
		{"undo is not offered", pathBack, with("txnType", "31"), "32"},
		{"query of bizType 000201", pathQuery, func(m map[string]string) map[string]string {
			q := queryReq("ORDER0000000000000000001", m["txnTime"])
			q["bizType"] = "000201"
			return f.signed(q)
		}, "10"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ans := f.call(t, tt.path, tt.build(f.qrApply("ORDER0000000000000000001", "100")))
			if ans["respCode"] != tt.code {
				t.Fatalf("respCode %s (%s), want %s", ans["respCode"], ans["respMsg"], tt.code)
			}
		})
	}
	t.Run("not a form", func(t *testing.T) {
		resp, err := http.Post(f.url+pathBack, "application/x-www-form-urlencoded", strings.NewReader("a=%zz"))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		ans, err := formValues(b)
		if err != nil {
			t.Fatal(err)
		}
		f.verifyBank(t, ans)
		if ans["respCode"] != "10" {
			t.Fatalf("respCode %s, want 10", ans["respCode"])
		}
	})
	select {
	case no := <-f.created:
		t.Fatalf("a refused request created order %s", no)
	default:
	}
}

func TestRouting(t *testing.T) {
	f := newFixture(t)
	tests := []struct {
		name   string
		method string
		path   string
		status int
	}{
		{"unknown path", http.MethodPost, "/gateway/api/appTransReq.do", http.StatusNotFound},
		{"GET of the back endpoint", http.MethodGet, pathBack, http.StatusMethodNotAllowed},
		{"GET of the front endpoint", http.MethodGet, pathFront, http.StatusMethodNotAllowed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest(tt.method, f.url+tt.path, nil)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tt.status {
				t.Fatalf("HTTP %d, want %d", resp.StatusCode, tt.status)
			}
		})
	}
}

func TestPathPrefix(t *testing.T) {
	f := newFixture(t)
	notifier := sandbox.NewNotifier("bank-b", nil, 1, nil, nil)
	t.Cleanup(notifier.Stop)
	sim, err := New(testChannel(t, "http://127.0.0.1:0/banks/b/"), sandbox.Env{Notifier: notifier, Now: f.clock.Now}, keysDir)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	f.url = srv.URL + "/banks/b"
	ans := f.call(t, pathQuery, f.signed(queryReq("NOSUCHORDER00000", bj(start))))
	if ans["respCode"] != "34" {
		t.Fatalf("respCode %s, want 34", ans["respCode"])
	}
	f.url = srv.URL
	if status, _ := f.post(t, pathQuery, f.signed(queryReq("NOSUCHORDER00000", bj(start)))); status != http.StatusNotFound {
		t.Fatalf("without the prefix: HTTP %d, want 404", status)
	}
}

func TestFrontConsume(t *testing.T) {
	f := newFixture(t)
	const order = "FRONT000000000000000001"
	form := f.signed(f.consume(order, "1999"))

	q := f.call(t, pathQuery, f.signed(queryReq(order, form["txnTime"])))
	if q["respCode"] != "34" {
		t.Fatalf("before the payer posts the form: respCode %s, want 34", q["respCode"])
	}
	status, page := f.post(t, pathFront, form)
	if status != http.StatusOK || !strings.Contains(string(page), `content="00"`) || !strings.Contains(string(page), "19.99") {
		t.Fatalf("front page: HTTP %d\n%s", status, page)
	}
	if no := <-f.created; no != order {
		t.Fatalf("OrderCreated(%s), want %s", no, order)
	}
	q = f.call(t, pathQuery, f.signed(queryReq(order, form["txnTime"])))
	if q["respCode"] != "00" || q["origRespCode"] != "05" || q["txnAmt"] != "1999" || q["queryId"] != "" {
		t.Fatalf("awaiting payer: %v", q)
	}
	if q := f.call(t, pathQuery, f.signed(queryReq(order, bj(start.Add(time.Second))))); q["respCode"] != "34" {
		t.Fatalf("query with another txnTime: respCode %s, want 34", q["respCode"])
	}

	// The payer's browser reloads: the same form shows the same order.
	if status, _ := f.post(t, pathFront, form); status != http.StatusOK {
		t.Fatalf("repeated form: HTTP %d", status)
	}
	// The same orderId with another amount is a duplicate transaction.
	status, page = f.post(t, pathFront, f.signed(f.consume(order, "2000")))
	if status != http.StatusBadRequest || !strings.Contains(string(page), `content="12"`) {
		t.Fatalf("other content: HTTP %d\n%s", status, page)
	}
	// A form signed by someone else creates nothing.
	forged := f.consume("FRONT000000000000000002", "1")
	forged["signature"] = form["signature"]
	status, page = f.post(t, pathFront, forged)
	if status != http.StatusBadRequest || !strings.Contains(string(page), `content="11"`) {
		t.Fatalf("forged form: HTTP %d\n%s", status, page)
	}
	select {
	case no := <-f.created:
		t.Fatalf("unexpected OrderCreated(%s)", no)
	default:
	}

	if err := f.sim.Pay(order); err != nil {
		t.Fatal(err)
	}
	n := f.note(t)
	want := map[string]string{"txnType": "01", "txnSubType": "01", "bizType": "000201", "merId": testMerID,
		"orderId": order, "txnAmt": "1999", "txnTime": form["txnTime"], "respCode": "00", "currencyCode": "156"}
	for k, v := range want {
		if n[k] != v {
			t.Errorf("notification %s = %q, want %q", k, n[k], v)
		}
	}
	if len(n["queryId"]) != 21 {
		t.Errorf("queryId %q is not 21 digits", n["queryId"])
	}
	q = f.call(t, pathQuery, f.signed(queryReq(order, form["txnTime"])))
	if q["origRespCode"] != "00" || q["queryId"] != n["queryId"] || q["traceTime"] != n["traceTime"] {
		t.Fatalf("paid: %v", q)
	}
	if err := f.sim.Pay(order); !errors.Is(err, sandbox.ErrOrderState) {
		t.Fatalf("second Pay: %v, want ErrOrderState", err)
	}
	if err := f.sim.Fail(order); !errors.Is(err, sandbox.ErrOrderState) {
		t.Fatalf("Fail after Pay: %v, want ErrOrderState", err)
	}
}

func TestQRApply(t *testing.T) {
	f := newFixture(t)
	const order = "QR00000000000000000001"
	req := f.signed(f.qrApply(order, "500"))
	a := f.call(t, pathBack, req)
	if a["respCode"] != "00" || !strings.HasPrefix(a["qrCode"], "https://qr.95516.com/") ||
		a["orderId"] != order || a["merId"] != testMerID || a["txnAmt"] != "500" {
		t.Fatalf("qr apply: %v", a)
	}
	<-f.created
	b := f.call(t, pathBack, req)
	if b["respCode"] != "00" || b["qrCode"] != a["qrCode"] {
		t.Fatalf("repeated apply: %v, want the same qrCode", b)
	}
	c := f.call(t, pathBack, f.signed(f.qrApply(order, "501")))
	if c["respCode"] != "12" {
		t.Fatalf("other amount: respCode %s, want 12", c["respCode"])
	}
}

func TestPayAndFail(t *testing.T) {
	f := newFixture(t)
	if err := f.sim.Pay("UNKNOWN00000000000"); !errors.Is(err, sandbox.ErrNoOrder) {
		t.Fatalf("Pay unknown: %v", err)
	}
	if err := f.sim.Fail("UNKNOWN00000000000"); !errors.Is(err, sandbox.ErrNoOrder) {
		t.Fatalf("Fail unknown: %v", err)
	}
	const order = "FAIL0000000000000000001"
	req := f.qrApply(order, "300")
	f.call(t, pathBack, f.signed(req))
	<-f.created
	if err := f.sim.Fail(order); err != nil {
		t.Fatal(err)
	}
	n := f.note(t)
	if n["respCode"] != "61" || n["orderId"] != order || n["settleAmt"] != "" {
		t.Fatalf("failure notification: %v", n)
	}
	q := f.call(t, pathQuery, f.signed(queryReq(order, req["txnTime"])))
	if q["origRespCode"] != "61" {
		t.Fatalf("origRespCode %s, want 61", q["origRespCode"])
	}
	if err := f.sim.Pay(order); !errors.Is(err, sandbox.ErrOrderState) {
		t.Fatalf("Pay after Fail: %v", err)
	}
	// A refund id is not a payable order.
	qid := f.paidQR(t, "PAID0000000000000000001", "100")
	f.call(t, pathBack, f.signed(f.refundReq("PAID0000000000000000001REF001", qid, "1")))
	f.note(t)
	if err := f.sim.Pay("PAID0000000000000000001REF001"); !errors.Is(err, sandbox.ErrNoOrder) {
		t.Fatalf("Pay of a refund: %v", err)
	}
}

func TestExpiry(t *testing.T) {
	f := newFixture(t)
	const order = "EXPIRE000000000000000001"
	req := f.qrApply(order, "100")
	f.call(t, pathBack, f.signed(req))
	<-f.created
	late := f.consume("EXPIRE000000000000000002", "100")
	f.clock.Add(15 * time.Minute)

	q := f.call(t, pathQuery, f.signed(queryReq(order, req["txnTime"])))
	if q["origRespCode"] != "69" {
		t.Fatalf("after payTimeout: origRespCode %s, want 69", q["origRespCode"])
	}
	if err := f.sim.Pay(order); !errors.Is(err, sandbox.ErrOrderState) {
		t.Fatalf("Pay after payTimeout: %v", err)
	}
	status, page := f.post(t, pathFront, f.signed(late))
	if status != http.StatusBadRequest || !strings.Contains(string(page), `content="39"`) {
		t.Fatalf("form posted after payTimeout: HTTP %d\n%s", status, page)
	}
	select {
	case n := <-f.notes:
		t.Fatalf("expiry sent a notification: %v", n)
	case <-time.After(50 * time.Millisecond):
	}
}

func TestRefunds(t *testing.T) {
	f := newFixture(t)
	const order = "REFUND000000000000000001"
	qid := f.paidQR(t, order, "1000")
	unpaid := f.qrApply("UNPAID000000000000000001", "1000")
	f.call(t, pathBack, f.signed(unpaid))
	<-f.created
	if err := f.sim.Fail("UNPAID000000000000000001"); err != nil {
		t.Fatal(err)
	}
	failedQID := f.note(t)["queryId"]

	type step struct {
		name     string
		refundNo string
		origQry  string
		amount   string
		code     string
		notified bool
	}
	steps := []step{
		{"partial", order + "R00001", qid, "300", "00", true},
		{"second partial", order + "R00002", qid, "600", "00", true},
		{"same refund again", order + "R00002", qid, "600", "00", false},
		{"same number, other amount", order + "R00002", qid, "100", "12", false},
		{"above the remaining 100", order + "R00003", qid, "101", "33", false},
		{"unknown origQryId", order + "R00004", "999999999999999999999", "1", "35", false},
		{"failed consume", order + "R00005", failedQID, "1", "35", false},
		{"number of a consume", order, qid, "1", "12", false},
		{"the remaining 100", order + "R00006", qid, "100", "00", true},
		{"nothing left", order + "R00007", qid, "1", "33", false},
	}
	queryIDs := map[string]string{}
	for _, s := range steps {
		req := f.refundReq(s.refundNo, s.origQry, s.amount)
		a := f.call(t, pathBack, f.signed(req))
		if a["respCode"] != s.code {
			t.Fatalf("%s: respCode %s (%s), want %s", s.name, a["respCode"], a["respMsg"], s.code)
		}
		if s.code == "00" {
			if prev, ok := queryIDs[s.refundNo]; ok && prev != a["queryId"] {
				t.Fatalf("%s: queryId %s, first answer had %s", s.name, a["queryId"], prev)
			}
			queryIDs[s.refundNo] = a["queryId"]
		}
		if !s.notified {
			continue
		}
		n := f.note(t)
		if n["txnType"] != "04" || n["orderId"] != s.refundNo || n["txnAmt"] != s.amount ||
			n["origQryId"] != qid || n["respCode"] != "00" || n["queryId"] != a["queryId"] {
			t.Fatalf("%s: refund notification %v", s.name, n)
		}
		q := f.call(t, pathQuery, f.signed(queryReq(s.refundNo, req["txnTime"])))
		if q["origRespCode"] != "00" || q["txnAmt"] != s.amount || q["origQryId"] != qid {
			t.Fatalf("%s: refund query %v", s.name, q)
		}
	}
	select {
	case n := <-f.notes:
		t.Fatalf("unexpected notification %v", n)
	case <-time.After(50 * time.Millisecond):
	}
}

func TestNotificationRetriedUntilHTTP200(t *testing.T) {
	f := newFixture(t)
	const order = "RETRY000000000000000001"
	f.call(t, pathBack, f.signed(f.qrApply(order, "100")))
	<-f.created
	f.ackStatus.Store(http.StatusInternalServerError)
	if err := f.sim.Pay(order); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for f.attempts.Load() < 2 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond) // waiting for the notifier's real-time retries (5 ms apart)
	}
	f.ackStatus.Store(http.StatusOK)
	n := f.note(t)
	if n["orderId"] != order {
		t.Fatalf("notification %v", n)
	}
	if got := f.attempts.Load(); got != 3 {
		t.Fatalf("%d attempts, want 3 (two refused, one acknowledged)", got)
	}
}

func TestUnavailable(t *testing.T) {
	f := newFixture(t)
	rec := httptest.NewRecorder()
	f.sim.Unavailable(rec)
	if rec.Code != http.StatusOK {
		t.Fatalf("HTTP %d, want 200", rec.Code)
	}
	ans, err := formValues(rec.Body.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	f.verifyBank(t, ans)
	if ans["respCode"] != "06" {
		t.Fatalf("respCode %s, want 06", ans["respCode"])
	}
}

func TestConcurrentOrders(t *testing.T) {
	f := newFixture(t)
	f.created = make(chan string, 64)
	f.notes = make(chan map[string]string, 64)
	var wg sync.WaitGroup
	for i := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			order := fmt.Sprintf("CONC%020d", i)
			req := f.signed(f.qrApply(order, "100"))
			status, body := f.post(t, pathBack, req)
			ans, err := formValues(body)
			if status != http.StatusOK || err != nil || ans["respCode"] != "00" {
				t.Errorf("%s: HTTP %d %v", order, status, ans)
				return
			}
			if err := f.sim.Pay(order); err != nil {
				t.Errorf("%s: %v", order, err)
			}
		}()
	}
	wg.Wait()
	seen := map[string]bool{}
	for range 16 {
		n := f.note(t)
		if seen[n["queryId"]] {
			t.Fatalf("queryId %s assigned twice", n["queryId"])
		}
		seen[n["queryId"]] = true
	}
}
