package config

import (
	"net"
	"path/filepath"
	"reflect"
	"strings"
	"time"
)

// Default returns a config holding every default and nothing else (no
// merchants, channels or rules). Parse decodes over it, so a key that is
// absent keeps its default and a key that is present, even as 0, replaces it.
func Default() *Config {
	return &Config{
		Server: Server{
			Listen:          ":8080",
			AdminListen:     "127.0.0.1:9090",
			MaxBodyBytes:    65536,
			MaxHeaderBytes:  8192,
			ReadTimeout:     Duration(10 * time.Second),
			WriteTimeout:    Duration(30 * time.Second),
			IdleTimeout:     Duration(60 * time.Second),
			MaxConnsPerIP:   1000,
			ShutdownTimeout: Duration(8 * time.Second), // fits an orchestrator's 10 s grace period
			ShutdownDelay:   Duration(2 * time.Second),
		},
		Store: Store{Redis: Redis{
			KeyPrefix:    "pg",
			DialTimeout:  Duration(2 * time.Second),
			ReadTimeout:  Duration(time.Second),
			WriteTimeout: Duration(time.Second),
		}, Postgres: Postgres{
			MaxConns:         20,
			MaxConnLifetime:  Duration(30 * time.Minute),
			MaxConnIdleTime:  Duration(5 * time.Minute),
			ConnectTimeout:   Duration(2 * time.Second),
			StatementTimeout: Duration(5 * time.Second),
			Migrate:          true, PurgeDeliveredAfter: Duration(7 * 24 * time.Hour), // purge: as long as the Redis store keeps them
		}},
		Sandbox: Sandbox{
			ControlListen: "127.0.0.1:9100",
			KeysDir:       "sandbox/keys",
			TimeScale:     1,
		},
		Security: Security{TimestampWindow: Duration(300 * time.Second)},
		Log:      Log{Level: "info", Format: "json"},
		Routing: Routing{
			Failover:    Failover{MaxAttempts: 2},
			Exploration: 0.02,
			Tolerance:   0.05,
			Health: Health{
				Window:            Duration(60 * time.Second),
				Buckets:           12,
				MinSamples:        20,
				SyncInterval:      Duration(2 * time.Second),
				HalfLife:          Duration(10 * time.Second),
				LatencyPercentile: 0.9,
			},
		},
		Notifications: Notifications{
			Schedule: DefaultSchedule(),
			Workers:  8,
			Timeout:  Duration(10 * time.Second),
			Lease:    Duration(30 * time.Second),
		},
		Reconcile: Reconcile{
			Delays:   durations(30*time.Second, 2*time.Minute, 5*time.Minute),
			Interval: Duration(time.Second),
			Lease:    Duration(30 * time.Second),
		},
	}
}

// DefaultSchedule is the default merchant notification retry schedule,
// WeChat Pay's ladder: 15 tries after the first, about 24h50m in all.
func DefaultSchedule() []Duration {
	return durations(15*time.Second, 15*time.Second, 30*time.Second, 3*time.Minute, 10*time.Minute,
		20*time.Minute, 30*time.Minute, 30*time.Minute, 30*time.Minute, time.Hour,
		3*time.Hour, 3*time.Hour, 3*time.Hour, 6*time.Hour, 6*time.Hour)
}

func durations(ds ...time.Duration) []Duration {
	out := make([]Duration, len(ds))
	for i, d := range ds {
		out[i] = Duration(d)
	}
	return out
}

func defaultMerchant() Merchant {
	return Merchant{Limits: Limits{MaxAmount: 5000000, RequestsPerSecond: 500}}
}

func defaultChannel() Channel {
	return Channel{
		Currencies:    []string{"CNY"},
		Timeout:       Duration(3 * time.Second),
		LatencyTarget: Duration(time.Second),
		Breaker: Breaker{
			MinRequests:         20,
			FailureRatio:        0.5,
			OpenFor:             Duration(10 * time.Second),
			HalfOpenRequests:    5,
			Interval:            Duration(30 * time.Second),
			ConsecutiveFailures: 5,
		},
	}
}

// finish applies the defaults that depend on other keys and resolves
// relative file paths against dir.
func (c *Config) finish(dir string) {
	c.Server.PublicURL = strings.TrimRight(c.Server.PublicURL, "/")
	if c.Server.PublicURL == "" {
		c.Server.PublicURL = publicURLFor(c.Server.Listen)
		if c.Server.TLS.Enabled() && c.Server.PublicURL != "" {
			c.Server.PublicURL = "https" + strings.TrimPrefix(c.Server.PublicURL, "http")
		}
	}
	if dir != "" {
		c.Sandbox.KeysDir = under(dir, c.Sandbox.KeysDir)
		resolveFiles(reflect.ValueOf(c).Elem(), dir)
	}
}

// publicURLFor derives the URL channels call back on from the listen
// address: its host, or 127.0.0.1 when it listens on every address. ""
// when listen is not host:port (Validate reports it).
func publicURLFor(listen string) string {
	host, port, err := net.SplitHostPort(listen)
	if err != nil || port == "" {
		return ""
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	return "http://" + net.JoinHostPort(host, port)
}

// resolveFiles makes every relative *_file path absolute under dir.
func resolveFiles(v reflect.Value, dir string) {
	switch v.Kind() {
	case reflect.Struct:
		t := v.Type()
		for i := 0; i < t.NumField(); i++ {
			f := v.Field(i)
			name, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ",")
			if f.Kind() == reflect.String && strings.HasSuffix(name, "_file") {
				f.SetString(under(dir, f.String()))
				continue
			}
			resolveFiles(f, dir)
		}
	case reflect.Slice:
		for i := 0; i < v.Len(); i++ {
			resolveFiles(v.Index(i), dir)
		}
	}
}

func under(dir, p string) string {
	if p == "" || filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(dir, p)
}
