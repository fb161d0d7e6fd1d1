package banksim

import (
	"crypto/x509"
	"encoding/pem"
	"os"
	"testing"
	"time"

	"github.com/paygate/paygate/sandbox"
)

// The simulator's certificate is shaped like UnionPay's: its CN names the
// channel's cert_identity (default UnionPay's own) in the third
// '@'-separated field, and with middle_cert_file it is issued by the middle
// CA, which chains to the root.
func TestSigningCertificateIdentityAndChain(t *testing.T) {
	read := func(name string) *x509.CertPool {
		b, err := os.ReadFile(keysDir + "/" + name)
		if err != nil {
			t.Fatal(err)
		}
		p := x509.NewCertPool()
		if !p.AppendCertsFromPEM(b) {
			t.Fatalf("%s holds no certificate", name)
		}
		return p
	}
	roots, middles := read(caCertFile), read(middleCertFile)
	cases := []struct {
		name, identity, wantCN string
		viaMiddle              bool
	}{
		{"default, from the root", "", "041@Z12@中国银联股份有限公司@00000001", false},
		{"test identity, from the middle", "00040000:SIGN", "041@Z12@00040000:SIGN@00000001", true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ch := testChannel(t, "http://127.0.0.1:1")
			ch.Credentials.CertIdentity = c.identity
			if c.viaMiddle {
				ch.Credentials.MiddleCertFile = keysDir + "/" + middleCertFile
			}
			sim, err := New(ch, sandbox.Env{ChannelID: "bank-a", Now: func() time.Time { return start }}, keysDir)
			if err != nil {
				t.Fatal(err)
			}
			block, _ := pem.Decode([]byte(sim.(*Sim).certPEM))
			cert, err := x509.ParseCertificate(block.Bytes)
			if err != nil {
				t.Fatal(err)
			}
			if cert.Subject.CommonName != c.wantCN {
				t.Fatalf("CN %q, want %q", cert.Subject.CommonName, c.wantCN)
			}
			opts := x509.VerifyOptions{Roots: roots, CurrentTime: start, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}
			_, errRootOnly := cert.Verify(opts)
			opts.Intermediates = middles
			_, errWithMiddle := cert.Verify(opts)
			if errWithMiddle != nil {
				t.Fatalf("does not chain to the root: %v", errWithMiddle)
			}
			if c.viaMiddle != (errRootOnly != nil) {
				t.Fatalf("issued via the middle: %v, but verify without it: %v", c.viaMiddle, errRootOnly)
			}
		})
	}
}
