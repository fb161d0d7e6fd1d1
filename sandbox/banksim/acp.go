package banksim

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"math/big"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/paygate/paygate/config"
)

// The simulator's own implementation of the ACP 5.1.0 message codec and
// signature (signMethod 01). It deliberately shares no code with
// adapters/bank, so that a mistake on one side is caught by the other.

// Beijing time, UTC+8, no DST.
var beijing = time.FixedZone("CST", 8*60*60)

const acpLayout = "20060102150405"

// formValues decodes an x-www-form-urlencoded body; repeated or empty keys
// are refused.
func formValues(body []byte) (map[string]string, error) {
	v, err := url.ParseQuery(string(body))
	if err != nil {
		return nil, err
	}
	m := make(map[string]string, len(v))
	for k, vs := range v {
		if k == "" || len(vs) != 1 {
			return nil, fmt.Errorf("key %q empty or repeated", k)
		}
		m[k] = vs[0]
	}
	return m, nil
}

// encode renders fields as an x-www-form-urlencoded body.
func encode(fields map[string]string) string {
	v := url.Values{}
	for k, s := range fields {
		v.Set(k, s)
	}
	return v.Encode()
}

// canonical joins every field but signature as k=v&…, keys ascending.
func canonical(fields map[string]string) []byte {
	keys := make([]string, 0, len(fields))
	for k := range fields {
		if k == "signature" {
			continue
		}
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + fields[k]
	}
	return []byte(strings.Join(parts, "&"))
}

// signedHash is SHA-256 of the lowercase hex SHA-256 of the canonical string:
// what the RSA signature covers.
func signedHash(fields map[string]string) []byte {
	inner := sha256.Sum256(canonical(fields))
	outer := sha256.Sum256([]byte(hex.EncodeToString(inner[:])))
	return outer[:]
}

func signFields(key *rsa.PrivateKey, fields map[string]string) error {
	sig, err := rsa.SignPKCS1v15(nil, key, crypto.SHA256, signedHash(fields))
	if err != nil {
		return err
	}
	fields["signature"] = base64.StdEncoding.EncodeToString(sig)
	return nil
}

func verifyFields(pub *rsa.PublicKey, fields map[string]string) bool {
	sig, err := base64.StdEncoding.DecodeString(fields["signature"])
	if err != nil {
		return false
	}
	return rsa.VerifyPKCS1v15(pub, crypto.SHA256, signedHash(fields), sig) == nil
}

// Key files in keysDir: the test root CA and the middle CA it issued, each
// with its key.
const (
	caCertFile     = "bank-root-ca.pem"
	caKeyFile      = "bank-root-ca.key.pem"
	middleCertFile = "bank-middle-ca.pem"
	middleKeyFile  = "bank-middle-ca.key.pem"
)

// unionPayIdentity is the identity UnionPay's production signing
// certificates carry (the third '@'-separated field of the CN); a merchant
// verifying the bank requires it unless configured otherwise.
const unionPayIdentity = "中国银联股份有限公司"

// certValidity is how long the simulator's signing certificate is valid,
// from one hour before the simulator's start (env.Now).
const certValidity = 365 * 24 * time.Hour

// loadCA reads a CA certificate and its key from keysDir.
func loadCA(keysDir, certFile, keyFile string) (*x509.Certificate, *rsa.PrivateKey, error) {
	caPEM, err := os.ReadFile(filepath.Join(keysDir, certFile))
	if err != nil {
		return nil, nil, fmt.Errorf("test CA certificate: %w", err)
	}
	block, _ := pem.Decode(caPEM)
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, nil, fmt.Errorf("test CA certificate: %s holds no certificate", certFile)
	}
	ca, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return nil, nil, fmt.Errorf("test CA certificate: %w", err)
	}
	caKeyPEM, err := os.ReadFile(filepath.Join(keysDir, keyFile))
	if err != nil {
		return nil, nil, fmt.Errorf("test CA key: %w", err)
	}
	caKey, err := config.ParseRSAPrivateKey(caKeyPEM)
	if err != nil {
		return nil, nil, fmt.Errorf("test CA key: %w", err)
	}
	return ca, caKey, nil
}

// issueSigningCert creates the simulator's signing key and a certificate for
// it, valid around now, whose CN names identity the way UnionPay's do
// (041@Z12@<identity>@00000001). It is issued by the test middle CA in
// keysDir when viaMiddle (the real chain: root → middle → signing
// certificate), else directly by the test root. It returns the key and the
// certificate as PEM (the signPubKeyCert value).
func issueSigningCert(keysDir string, now time.Time, identity string, viaMiddle bool) (*rsa.PrivateKey, string, error) {
	certFile, keyFile := caCertFile, caKeyFile
	if viaMiddle {
		certFile, keyFile = middleCertFile, middleKeyFile
	}
	ca, caKey, err := loadCA(keysDir, certFile, keyFile)
	if err != nil {
		return nil, "", err
	}
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, "", err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 63))
	if err != nil {
		return nil, "", err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject: pkix.Name{
			CommonName:         "041@Z12@" + identity + "@00000001",
			Organization:       []string{"paygate sandbox"},
			OrganizationalUnit: []string{"ACP 5.1.0 simulator"},
		},
		NotBefore: now.Add(-time.Hour),
		NotAfter:  now.Add(certValidity),
		KeyUsage:  x509.KeyUsageDigitalSignature | x509.KeyUsageContentCommitment,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return nil, "", fmt.Errorf("issue signing certificate: %w", err)
	}
	return key, string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})), nil
}
