package config

import (
	"os"
	"path/filepath"
	"testing"
)

// A WeChat platform certificate (the older "platform certificate" mode) is
// as good as the bare public key: ParseRSAPublicKey takes the certificate's key.
func TestParseRSAPublicKeyFromCertificate(t *testing.T) {
	dir := fixtureDir(t)
	b, err := os.ReadFile(filepath.Join(dir, "root.pem"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ParseRSAPublicKey(b); err != nil {
		t.Fatalf("certificate refused: %v", err)
	}
}
