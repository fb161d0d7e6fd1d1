package config

import (
	"crypto"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
)

// minRSABits is the smallest RSA key accepted anywhere in the config.
const minRSABits = 2048

// PublicKeyPEM returns the merchant's public key PEM text, inline or read
// from public_key_file (rsa-sha256 and ed25519 merchants).
func (k Key) PublicKeyPEM() (string, error) {
	switch {
	case k.PublicKey != "" && k.PublicKeyFile != "":
		return "", errors.New("set only one of public_key, public_key_file")
	case k.PublicKey != "":
		return k.PublicKey, nil
	case k.PublicKeyFile != "":
		b, err := os.ReadFile(k.PublicKeyFile)
		if err != nil {
			return "", fmt.Errorf("read public key file: %w", err)
		}
		return string(b), nil
	}
	return "", errors.New("public_key or public_key_file is required")
}

// ParsePublicKey returns the merchant's public key, checked against the
// algorithm: *rsa.PublicKey (at least 2048 bits) for rsa-sha256,
// ed25519.PublicKey for ed25519.
func (k Key) ParsePublicKey() (crypto.PublicKey, error) {
	text, err := k.PublicKeyPEM()
	if err != nil {
		return nil, err
	}
	pub, err := parsePublicKey([]byte(text))
	if err != nil {
		return nil, err
	}
	switch key := pub.(type) {
	case *rsa.PublicKey:
		if k.Algorithm != AlgRSASHA256 {
			return nil, fmt.Errorf("is an RSA key, not an %s key", k.Algorithm)
		}
		if key.N.BitLen() < minRSABits {
			return nil, fmt.Errorf("RSA key has %d bits; at least %d are required", key.N.BitLen(), minRSABits)
		}
	case ed25519.PublicKey:
		if k.Algorithm != AlgEd25519 {
			return nil, fmt.Errorf("is an Ed25519 key, not an %s key", k.Algorithm)
		}
	default:
		return nil, fmt.Errorf("unsupported public key type %T", pub)
	}
	return pub, nil
}

// Merchant key algorithms.
const (
	AlgHMACSHA256 = "hmac-sha256"
	AlgRSASHA256  = "rsa-sha256"
	AlgEd25519    = "ed25519"
)

// pemBlock returns the first PEM block of text.
func pemBlock(text []byte) (*pem.Block, error) {
	b, _ := pem.Decode(text)
	if b == nil {
		return nil, errors.New("no PEM block found")
	}
	return b, nil
}

// parsePublicKey parses a PKIX ("PUBLIC KEY") or PKCS#1 ("RSA PUBLIC KEY") PEM public key.
func parsePublicKey(text []byte) (crypto.PublicKey, error) {
	b, err := pemBlock(text)
	if err != nil {
		return nil, err
	}
	switch b.Type {
	case "PUBLIC KEY":
		pub, err := x509.ParsePKIXPublicKey(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("parse public key: %w", err)
		}
		return pub, nil
	case "RSA PUBLIC KEY":
		pub, err := x509.ParsePKCS1PublicKey(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("parse public key: %w", err)
		}
		return pub, nil
	}
	return nil, fmt.Errorf("PEM block is %q, want \"PUBLIC KEY\"", b.Type)
}

// ParseRSAPublicKey parses a PEM RSA public key of at least 2048 bits: PKIX
// ("PUBLIC KEY"), PKCS#1 ("RSA PUBLIC KEY"), or the key of a "CERTIFICATE".
// Every adapter and simulator parses keys with it and ParseRSAPrivateKey.
func ParseRSAPublicKey(text []byte) (*rsa.PublicKey, error) {
	var pub crypto.PublicKey
	var err error
	if b, _ := pem.Decode(text); b != nil && b.Type == "CERTIFICATE" {
		c, err := parseCertificate(text)
		if err != nil {
			return nil, err
		}
		pub = c.PublicKey
	} else if pub, err = parsePublicKey(text); err != nil {
		return nil, err
	}
	key, ok := pub.(*rsa.PublicKey)
	if !ok {
		return nil, fmt.Errorf("want an RSA public key, got %T", pub)
	}
	if key.N.BitLen() < minRSABits {
		return nil, fmt.Errorf("RSA key has %d bits; at least %d are required", key.N.BitLen(), minRSABits)
	}
	return key, nil
}

// ParseRSAPrivateKey parses a PEM PKCS#1 ("RSA PRIVATE KEY") or PKCS#8
// ("PRIVATE KEY") RSA private key of at least 2048 bits.
func ParseRSAPrivateKey(text []byte) (*rsa.PrivateKey, error) {
	b, err := pemBlock(text)
	if err != nil {
		return nil, err
	}
	var key *rsa.PrivateKey
	switch b.Type {
	case "RSA PRIVATE KEY":
		key, err = x509.ParsePKCS1PrivateKey(b.Bytes)
		if err != nil {
			return nil, errors.New("parse private key: malformed PKCS#1 key")
		}
	case "PRIVATE KEY":
		k, err := x509.ParsePKCS8PrivateKey(b.Bytes)
		if err != nil {
			return nil, errors.New("parse private key: malformed PKCS#8 key")
		}
		var ok bool
		if key, ok = k.(*rsa.PrivateKey); !ok {
			return nil, fmt.Errorf("want an RSA private key, got %T", k)
		}
	default:
		return nil, fmt.Errorf("PEM block is %q, want \"PRIVATE KEY\" or \"RSA PRIVATE KEY\"", b.Type)
	}
	if key.N.BitLen() < minRSABits {
		return nil, fmt.Errorf("RSA key has %d bits; at least %d are required", key.N.BitLen(), minRSABits)
	}
	return key, nil
}

// parseCertificate parses a PEM X.509 certificate.
func parseCertificate(text []byte) (*x509.Certificate, error) {
	b, err := pemBlock(text)
	if err != nil {
		return nil, err
	}
	if b.Type != "CERTIFICATE" {
		return nil, fmt.Errorf("PEM block is %q, want \"CERTIFICATE\"", b.Type)
	}
	c, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		return nil, fmt.Errorf("parse certificate: %w", err)
	}
	return c, nil
}

// RSAPrivateKey resolves (inline, _env or _file) and parses a channel's
// private signing key. Errors name the key, never its material.
func (c Credentials) RSAPrivateKey() (*rsa.PrivateKey, error) {
	text, err := c.ResolvePrivateKey()
	if err != nil {
		return nil, fmt.Errorf("credentials.private_key: %w", err)
	}
	if text == "" {
		return nil, errors.New("credentials.private_key: required")
	}
	key, err := ParseRSAPrivateKey([]byte(text))
	if err != nil {
		return nil, fmt.Errorf("credentials.private_key: %w", err)
	}
	return key, nil
}

// ReadRSAPublicKey reads and parses the RSA public key (or certificate) in
// file; key names the config key for errors.
func ReadRSAPublicKey(key, file string) (*rsa.PublicKey, error) {
	if file == "" {
		return nil, fmt.Errorf("credentials.%s: required", key)
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("credentials.%s: %w", key, err)
	}
	pub, err := ParseRSAPublicKey(b)
	if err != nil {
		return nil, fmt.Errorf("credentials.%s: %w", key, err)
	}
	return pub, nil
}
