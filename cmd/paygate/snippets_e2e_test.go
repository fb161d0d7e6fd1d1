package main

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/paygate/paygate/gateway/client"
)

// The request-signing examples of docs/examples/signing, each run with its
// own toolchain where the machine has it: for fixed inputs each must print
// exactly the signature paygate's client computes (the signature the gateway
// verifies), and a request signed by it must be accepted by a real gateway.

type snippet struct {
	name  string
	tool  string   // the program that must be on PATH
	argv  []string // relative to docs/examples/signing
	algos []string
}

var snippets = []snippet{
	{"go", "go", []string{"go", "run", "./go"}, []string{"hmac-sha256", "rsa-sha256", "ed25519"}},
	{"python", "python3", []string{"python3", "sign.py"}, []string{"hmac-sha256"}},
	{"node", "node", []string{"node", "sign.js"}, []string{"hmac-sha256", "rsa-sha256", "ed25519"}},
	{"java", "java", []string{"java", "Sign.java"}, []string{"hmac-sha256", "rsa-sha256", "ed25519"}},
	{"php", "php", []string{"php", "sign.php"}, []string{"hmac-sha256", "rsa-sha256"}},
	{"shell", "openssl", []string{"bash", "sign.sh"}, []string{"hmac-sha256", "rsa-sha256", "ed25519"}},
}

// runSnippet runs s with env and returns the headers it printed.
func runSnippet(t *testing.T, s snippet, env []string) http.Header {
	t.Helper()
	cmd := exec.Command(s.argv[0], s.argv[1:]...)
	cmd.Dir = "../../docs/examples/signing"
	cmd.Env = append(os.Environ(), env...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s: %v\n%s", s.name, err, stderr.Bytes())
	}
	h := http.Header{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		k, v, ok := strings.Cut(line, ": ")
		if !ok {
			t.Fatalf("%s printed %q", s.name, line)
		}
		h.Set(k, strings.TrimSpace(v))
	}
	for _, k := range []string{"X-Paygate-Merchant", "X-Paygate-Timestamp", "X-Paygate-Nonce", "X-Paygate-Signature"} {
		if h.Get(k) == "" {
			t.Fatalf("%s printed no %s: %s", s.name, k, out)
		}
	}
	return h
}

func TestSigningSnippets(t *testing.T) {
	dir := t.TempDir()
	rk, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	_, ek, _ := ed25519.GenerateKey(rand.Reader)
	keyFile := map[string]string{}
	for algo, k := range map[string]any{"rsa-sha256": rk, "ed25519": ek} {
		der, err := x509.MarshalPKCS8PrivateKey(k)
		if err != nil {
			t.Fatal(err)
		}
		keyFile[algo] = filepath.Join(dir, algo+".pem")
		if err := os.WriteFile(keyFile[algo], pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	signers := map[string]*client.Signer{
		"hmac-sha256": client.HMAC("demo", []byte(demoSecret)),
		"rsa-sha256":  client.RSA("demo", rk),
		"ed25519":     client.Ed25519("demo", ek),
	}
	// A body with non-ASCII text and a trailing newline, and a query: the
	// places a signature most easily goes wrong.
	fixedBody := []byte("{\"subject\":\"咖啡 \\u00e9\",\"amount\":1999}\n")
	fixedFile := filepath.Join(dir, "fixed.json")
	os.WriteFile(fixedFile, fixedBody, 0o600)

	g := startE2E(t, e2eOpts{})
	ran := 0
	for _, s := range snippets {
		t.Run(s.name, func(t *testing.T) {
			if _, err := exec.LookPath(s.tool); err != nil {
				t.Skipf("%s is not installed: %v", s.tool, err)
			}
			if s.name == "shell" {
				if _, err := exec.LookPath("bash"); err != nil {
					t.Skip("bash is not installed")
				}
			}
			ran++
			for _, algo := range s.algos {
				env := []string{"PAYGATE_MERCHANT=demo", "PAYGATE_ALGORITHM=" + algo, "PAYGATE_SECRET=" + demoSecret, "PAYGATE_PRIVATE_KEY=" + keyFile[algo]}
				// Fixed inputs: the same signature as the client's (all three
				// algorithms are deterministic).
				for _, tc := range []struct {
					method, uri, file string
					body              []byte
				}{
					{"POST", "/v1/payments/pay_0123/refunds", fixedFile, fixedBody},
					{"GET", "/v1/payments?out_trade_no=o-1&x=%2F", "", nil},
				} {
					h := runSnippet(t, s, append(env, "PAYGATE_METHOD="+tc.method, "PAYGATE_URI="+tc.uri, "PAYGATE_BODY_FILE="+tc.file,
						"PAYGATE_TIMESTAMP=1700000000", "PAYGATE_NONCE=fixed-nonce-0123456789"))
					want, err := signers[algo].Sign(tc.method, tc.uri, 1700000000, "fixed-nonce-0123456789", tc.body)
					if err != nil {
						t.Fatal(err)
					}
					if got := h.Get("X-Paygate-Signature"); got != want {
						t.Errorf("%s %s %s %s: signature %s, want %s", s.name, algo, tc.method, tc.uri, got, want)
					}
					if h.Get("X-Paygate-Timestamp") != "1700000000" || h.Get("X-Paygate-Nonce") != "fixed-nonce-0123456789" || h.Get("X-Paygate-Merchant") != "demo" {
						t.Errorf("%s %s: headers %v", s.name, algo, h)
					}
				}
				if algo != "hmac-sha256" {
					continue // the test gateway's demo merchant has an hmac key
				}
				// A real request, signed now with a fresh nonce: 201.
				otn := fmt.Sprintf("snip-%s-%d", s.name, time.Now().UnixNano()%1e9)
				body := []byte(fmt.Sprintf(`{"out_trade_no":%q,"amount":1999,"currency":"CNY","method":"wechat_native","subject":"咖啡","notify_url":"http://127.0.0.1:1/n"}`, otn))
				bodyFile := filepath.Join(dir, otn+".json")
				os.WriteFile(bodyFile, body, 0o600)
				h := runSnippet(t, s, append(env, "PAYGATE_METHOD=POST", "PAYGATE_URI=/v1/payments", "PAYGATE_BODY_FILE="+bodyFile))
				if ts, err := strconv.ParseInt(h.Get("X-Paygate-Timestamp"), 10, 64); err != nil || time.Since(time.Unix(ts, 0)).Abs() > time.Minute {
					t.Errorf("%s: timestamp %q is not now", s.name, h.Get("X-Paygate-Timestamp"))
				}
				req, _ := http.NewRequest("POST", g.base+"/v1/payments", bytes.NewReader(body))
				req.Header = h
				req.Header.Set("Content-Type", "application/json")
				if r := do(t, req); r.Status != 201 {
					t.Errorf("%s: the gateway answered %d %s", s.name, r.Status, r.Body)
				}
			}
		})
	}
	if ran == 0 {
		t.Log("no snippet toolchain on this machine")
	}
}
