package wechatsim

import (
	"crypto/aes"
	"crypto/cipher"
	"encoding/base64"
	"encoding/json"
	"time"
)

// envelope is a notification body (PROTOCOLS §A.8).
type envelope struct {
	ID           string   `json:"id"`
	CreateTime   string   `json:"create_time"`
	ResourceType string   `json:"resource_type"`
	EventType    string   `json:"event_type"`
	Summary      string   `json:"summary"`
	Resource     resource `json:"resource"`
}

type resource struct {
	OriginalType   string `json:"original_type"`
	Algorithm      string `json:"algorithm"`
	Ciphertext     string `json:"ciphertext"`
	AssociatedData string `json:"associated_data"`
	Nonce          string `json:"nonce"`
}

// notificationBody encrypts plaintext with the APIv3 key (AES-256-GCM, a
// fresh 12-character nonce as IV, associated_data = original type) and
// wraps it in the notification envelope.
func (s *Sim) notificationBody(eventType, summary, originalType string, plaintext []byte) ([]byte, error) {
	nonce := randomString(12, alnum)
	ct, err := sealAEAD(s.apiv3Key, nonce, originalType, plaintext)
	if err != nil {
		return nil, err
	}
	return json.Marshal(envelope{
		ID:           "EV-" + randomString(8, hexLow) + "-" + randomString(4, hexLow) + "-" + randomString(4, hexLow) + "-" + randomString(4, hexLow) + "-" + randomString(12, hexLow),
		CreateTime:   s.now().In(beijing).Format(time.RFC3339),
		ResourceType: "encrypt-resource",
		EventType:    eventType,
		Summary:      summary,
		Resource: resource{
			OriginalType: originalType, Algorithm: "AEAD_AES_256_GCM",
			Ciphertext: ct, AssociatedData: originalType, Nonce: nonce,
		},
	})
}

// sealAEAD is AES-GCM with the nonce string as IV; the base64 result ends
// with the 16-byte tag.
func sealAEAD(key []byte, nonce, aad string, plaintext []byte) (string, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return "", err
	}
	gcm, err := cipher.NewGCMWithNonceSize(block, len(nonce))
	if err != nil {
		return "", err
	}
	return base64.StdEncoding.EncodeToString(gcm.Seal(nil, []byte(nonce), plaintext, []byte(aad))), nil
}
