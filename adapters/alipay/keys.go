package alipay

import (
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"
)

// minKeyBits is the smallest RSA key RSA2 accepts (Alipay issues 2048-bit keys).
const minKeyBits = 2048

// parsePrivateKey reads the app private key: PEM ("PRIVATE KEY" PKCS#8 or
// "RSA PRIVATE KEY" PKCS#1), or the bare base64 DER that Alipay's key tool
// writes (either encoding).
func parsePrivateKey(text []byte) (*rsa.PrivateKey, error) {
	der, err := keyDER(text)
	if err != nil {
		return nil, err
	}
	var key *rsa.PrivateKey
	if k, err := x509.ParsePKCS8PrivateKey(der); err == nil {
		rk, ok := k.(*rsa.PrivateKey)
		if !ok {
			return nil, fmt.Errorf("private key is a %T, not RSA", k)
		}
		key = rk
	} else if k, err := x509.ParsePKCS1PrivateKey(der); err == nil {
		key = k
	} else {
		return nil, errors.New("private key is neither PKCS#8 nor PKCS#1 RSA")
	}
	if key.N.BitLen() < minKeyBits {
		return nil, fmt.Errorf("private key has %d bits; RSA2 needs at least %d", key.N.BitLen(), minKeyBits)
	}
	return key, nil
}

// parsePublicKey reads the Alipay public key: PEM ("PUBLIC KEY" PKIX or "RSA
// PUBLIC KEY" PKCS#1) or the bare base64 DER shown in Alipay's console.
func parsePublicKey(text []byte) (*rsa.PublicKey, error) {
	der, err := keyDER(text)
	if err != nil {
		return nil, err
	}
	var key *rsa.PublicKey
	if k, err := x509.ParsePKIXPublicKey(der); err == nil {
		rk, ok := k.(*rsa.PublicKey)
		if !ok {
			return nil, fmt.Errorf("public key is a %T, not RSA", k)
		}
		key = rk
	} else if k, err := x509.ParsePKCS1PublicKey(der); err == nil {
		key = k
	} else {
		return nil, errors.New("public key is neither PKIX nor PKCS#1 RSA")
	}
	if key.N.BitLen() < minKeyBits {
		return nil, fmt.Errorf("public key has %d bits; RSA2 needs at least %d", key.N.BitLen(), minKeyBits)
	}
	return key, nil
}

func keyDER(text []byte) ([]byte, error) {
	if block, _ := pem.Decode(text); block != nil {
		return block.Bytes, nil
	}
	s := strings.Join(strings.Fields(string(text)), "")
	if s == "" {
		return nil, errors.New("key is empty")
	}
	der, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return nil, errors.New("key is neither PEM nor base64 DER")
	}
	return der, nil
}
