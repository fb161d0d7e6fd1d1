package config

import (
	"fmt"
	"os"
	"strings"
)

// Secret is a secret written inline in the config. It prints, formats,
// marshals and logs as "[REDACTED]", so that dumping or logging a config (or
// any part of it) can never leak one; its value is read only through
// ResolveSecret and the Resolve methods.
type Secret string

const redacted = "[REDACTED]"

func (Secret) String() string               { return redacted }
func (Secret) GoString() string             { return redacted }
func (Secret) MarshalJSON() ([]byte, error) { return []byte(`"` + redacted + `"`), nil }
func (Secret) MarshalYAML() (any, error)    { return redacted, nil }
func (s Secret) Format(f fmt.State, _ rune) { f.Write([]byte(redacted)) }

// ResolveSecret returns the value of a secret written in one of its three
// forms: inline (value), the name of an environment variable (envName), or
// the path of a file (file; one trailing newline is dropped). Exactly one
// form may be set; none set returns "" and no error. Whether the inline form
// is allowed (sandbox mode only) is checked by Validate, not here.
func ResolveSecret(value Secret, envName, file string) (string, error) {
	n := 0
	for _, s := range []string{string(value), envName, file} {
		if s != "" {
			n++
		}
	}
	switch {
	case n > 1:
		return "", fmt.Errorf("set only one of the inline, _env and _file forms")
	case value != "":
		return string(value), nil
	case envName != "":
		v, ok := os.LookupEnv(envName)
		if !ok || v == "" {
			return "", fmt.Errorf("environment variable %s is not set", envName)
		}
		return v, nil
	case file != "":
		b, err := os.ReadFile(file)
		if err != nil {
			return "", fmt.Errorf("read secret file: %w", err)
		}
		return strings.TrimSuffix(strings.TrimSuffix(string(b), "\n"), "\r"), nil
	}
	return "", nil
}

// The resolved values of the config's secrets. Each reads the environment
// or a file when that form is used, so call them once at start (or reload)
// and keep the result; Validate has already checked that they resolve.

// ResolveSecret returns the merchant's hmac-sha256 shared secret.
func (k Key) ResolveSecret() (string, error) {
	return ResolveSecret(k.Secret, k.SecretEnv, k.SecretFile)
}

// ResolveWebhookSecret returns the key that signs the merchant's notifications.
func (m Merchant) ResolveWebhookSecret() (string, error) {
	return ResolveSecret(m.WebhookSecret, m.WebhookSecretEnv, m.WebhookSecretFile)
}

// ResolveAdminToken returns the admin API bearer token.
func (s Server) ResolveAdminToken() (string, error) {
	return ResolveSecret(s.AdminToken, s.AdminTokenEnv, s.AdminTokenFile)
}

// ResolvePassword returns the Redis password ("" when none is set).
func (r Redis) ResolvePassword() (string, error) {
	return ResolveSecret(r.Password, r.PasswordEnv, r.PasswordFile)
}

// ResolvePrivateKey returns the channel's private signing key, PEM text.
func (c Credentials) ResolvePrivateKey() (string, error) {
	return ResolveSecret(c.PrivateKey, c.PrivateKeyEnv, c.PrivateKeyFile)
}

// ResolveAPIv3Key returns the WeChat Pay APIv3 key (32 bytes).
func (c Credentials) ResolveAPIv3Key() (string, error) {
	return ResolveSecret(c.APIv3Key, c.APIv3KeyEnv, c.APIv3KeyFile)
}

// ResolveDSN returns the PostgreSQL connection string ("" when none is set).
func (p Postgres) ResolveDSN() (string, error) {
	return ResolveSecret(p.DSN, p.DSNEnv, p.DSNFile)
}
