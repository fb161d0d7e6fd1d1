package config

import (
	"fmt"
	"os"
	"strings"
)

// ResolveSecret returns the value of a secret written in one of its three
// forms: inline (value), the name of an environment variable (envName), or
// the path of a file (file; one trailing newline is dropped). Exactly one
// form may be set; none set returns "" and no error. Whether the inline form
// is allowed (sandbox mode only) is checked by Validate, not here.
func ResolveSecret(value, envName, file string) (string, error) {
	n := 0
	for _, s := range []string{value, envName, file} {
		if s != "" {
			n++
		}
	}
	switch {
	case n > 1:
		return "", fmt.Errorf("set only one of the inline, _env and _file forms")
	case value != "":
		return value, nil
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
