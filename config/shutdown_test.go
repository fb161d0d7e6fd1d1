package config

import (
	"reflect"
	"testing"
	"time"
)

// server.shutdown_delay is a part of server.shutdown_timeout: at least 0,
// below the whole. The defaults fit an orchestrator's 10 s grace period.
func TestShutdownDelay(t *testing.T) {
	t.Parallel()
	d := Default().Server
	if d.ShutdownTimeout.D() > 10*time.Second || d.ShutdownDelay.D() <= 0 || d.ShutdownDelay >= d.ShutdownTimeout {
		t.Fatalf("defaults: delay %s, timeout %s", d.ShutdownDelay, d.ShutdownTimeout)
	}
	tests := []struct {
		name         string
		delay, total time.Duration
		want         []string
	}{
		{"default-like", 2 * time.Second, 8 * time.Second, nil},
		{"no delay", 0, 8 * time.Second, nil},
		{"negative", -time.Second, 8 * time.Second, []string{`server.shutdown_delay: must be at least 0 and below server.shutdown_timeout (8s), got -1s`}},
		{"the whole budget", 8 * time.Second, 8 * time.Second, []string{`server.shutdown_delay: must be at least 0 and below server.shutdown_timeout (8s), got 8s`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg, _ := mustBase(t)
			cfg.Server.ShutdownDelay, cfg.Server.ShutdownTimeout = Duration(tt.delay), Duration(tt.total)
			err := cfg.Validate()
			if tt.want == nil {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if got := problems(t, err); !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("problems %q, want %q", got, tt.want)
			}
		})
	}
}
