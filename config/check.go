package config

import (
	"errors"
	"fmt"
	"io"
	"strings"
)

// Check is `paygate config check`: it loads the config at path and writes
// either "ok: <summary>" (returning exit code 0) or one line per problem,
// "YAML.path: message" or "line N: message" (returning 1).
func Check(path string, w io.Writer) int {
	cfg, err := Load(path)
	if err != nil {
		var pe *ProblemsError
		if errors.As(err, &pe) {
			for _, p := range pe.Problems {
				fmt.Fprintln(w, p)
			}
		} else {
			fmt.Fprintln(w, err)
		}
		return 1
	}
	fmt.Fprintf(w, "ok: %s: %s\n", path, cfg.Summary())
	return 0
}

// Summary describes c in one line, for `config check` and reload logs:
// "1 merchant, 4 channels, 2 routing rules; sandbox mode; embedded store".
func (c *Config) Summary() string {
	parts := []string{
		plural(len(c.Merchants), "merchant") + ", " + plural(len(c.Channels), "channel") + ", " +
			plural(len(c.Routing.Rules), "routing rule"),
	}
	if n := len(c.Risk.Rules); n > 0 {
		parts[0] += ", " + plural(n, "risk rule")
	}
	if c.Sandbox.Enabled {
		parts = append(parts, "sandbox mode")
	}
	switch n := len(c.Store.Redis.Addrs); {
	case n == 0:
		parts = append(parts, "embedded store")
	case n == 1:
		parts = append(parts, "redis "+c.Store.Redis.Addrs[0])
	default:
		parts = append(parts, fmt.Sprintf("redis cluster (%d seeds)", n))
	}
	if c.Store.Postgres.Configured() {
		parts = append(parts, "postgres ledger") // the DSN is a secret: not shown
	}
	return strings.Join(parts, "; ")
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}
