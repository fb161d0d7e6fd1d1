// Command sign signs a paygate merchant request with the Go standard library
// only (a Go program can also use github.com/paygate/paygate/gateway/client).
//
// Environment: PAYGATE_MERCHANT, PAYGATE_ALGORITHM (hmac-sha256 | rsa-sha256 |
// ed25519; default hmac-sha256), PAYGATE_SECRET (hmac) or PAYGATE_PRIVATE_KEY
// (path of a PKCS#8 PEM private key), PAYGATE_METHOD, PAYGATE_URI (path plus
// "?" and the query, exactly as sent), PAYGATE_BODY_FILE (optional),
// PAYGATE_TIMESTAMP and PAYGATE_NONCE (optional). Prints the four X-Paygate-*
// headers, one "Name: value" per line.
package main

import (
	"crypto"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"strconv"
	"time"
)

// canonical is the message that is signed: five lines, each ending in "\n";
// the body as raw bytes.
func canonical(method, uri, ts, nonce string, body []byte) []byte {
	msg := []byte(method + "\n" + uri + "\n" + ts + "\n" + nonce + "\n")
	msg = append(msg, body...)
	return append(msg, '\n')
}

func privateKey(path string) (crypto.Signer, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	block, _ := pem.Decode(b)
	if block == nil {
		return nil, errors.New(path + ": no PEM block")
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, err
	}
	return k.(crypto.Signer), nil
}

func sign(algorithm string, msg []byte) ([]byte, error) {
	switch algorithm {
	case "hmac-sha256":
		m := hmac.New(sha256.New, []byte(os.Getenv("PAYGATE_SECRET")))
		m.Write(msg)
		return m.Sum(nil), nil
	case "rsa-sha256": // RSASSA-PKCS1-v1_5 over SHA-256
		k, err := privateKey(os.Getenv("PAYGATE_PRIVATE_KEY"))
		if err != nil {
			return nil, err
		}
		d := sha256.Sum256(msg)
		return rsa.SignPKCS1v15(nil, k.(*rsa.PrivateKey), crypto.SHA256, d[:])
	case "ed25519":
		k, err := privateKey(os.Getenv("PAYGATE_PRIVATE_KEY"))
		if err != nil {
			return nil, err
		}
		return ed25519.Sign(k.(ed25519.PrivateKey), msg), nil
	}
	return nil, errors.New("unknown algorithm " + algorithm)
}

func getenv(name, fallback string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return fallback
}

func main() {
	var body []byte
	if f := os.Getenv("PAYGATE_BODY_FILE"); f != "" {
		var err error
		if body, err = os.ReadFile(f); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	}
	ts := getenv("PAYGATE_TIMESTAMP", strconv.FormatInt(time.Now().Unix(), 10))
	var rnd [16]byte
	rand.Read(rnd[:])
	nonce := getenv("PAYGATE_NONCE", hex.EncodeToString(rnd[:]))
	sig, err := sign(getenv("PAYGATE_ALGORITHM", "hmac-sha256"), canonical(os.Getenv("PAYGATE_METHOD"), os.Getenv("PAYGATE_URI"), ts, nonce, body))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Println("X-Paygate-Merchant: " + os.Getenv("PAYGATE_MERCHANT"))
	fmt.Println("X-Paygate-Timestamp: " + ts)
	fmt.Println("X-Paygate-Nonce: " + nonce)
	fmt.Println("X-Paygate-Signature: " + base64.StdEncoding.EncodeToString(sig))
}
