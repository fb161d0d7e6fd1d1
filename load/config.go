// Package load is paygate's load generator (`paygate load`): it signs every
// request as a merchant would, with a fresh nonce each, and runs an open
// model — requests start on schedule whether or not earlier ones have
// answered, so a slow gateway shows as latency, never as a lower offered
// rate. Latency comes from an HDR histogram measured from each request's
// scheduled start. With a scenario it sets a sandbox fault on a channel for
// the middle third of the run and reports the three phases apart.
package load

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/paygate/paygate/config"
)

// Config is one run. ParseFlags builds it from the command line.
type Config struct {
	Target   string // merchant listener, http(s)://host[:port]
	Merchant string
	Secret   string // the merchant's hmac-sha256 secret

	Rate     float64       // requests started per second
	Duration time.Duration // how long requests are started
	Mix      Mix
	Method   string // payment method of creates
	Amount   int64  // fen, per create

	Scenario     string // baseline, channel-down, channel-errors, channel-slow
	FaultChannel string // the channel the scenario's fault is set on
	Admin        string // admin listener, http(s)://host:port (scenarios)
	AdminToken   string

	JSON            bool
	AllowRealOrders bool          // run against a gateway that is not in sandbox mode
	MaxInFlight     int           // requests in flight at most; a start beyond it is not sent (and counted)
	Timeout         time.Duration // per request
	NotifyURL       string        // notify_url of created payments
	// GetID, when set, makes every request a signed GET /v1/payments/{GetID}
	// (the read path alone; nothing is created, so the sandbox check is off).
	GetID string
}

// maxWeight bounds each -mix weight (the mix is expanded into one slot per
// unit of weight).
const maxWeight = 1000

// Mix weights the operations.
type Mix struct{ Create, Get, Refund int }

func (m Mix) String() string {
	return fmt.Sprintf("create=%d,get=%d,refund=%d", m.Create, m.Get, m.Refund)
}

// Set parses "create=N,get=N,refund=N" (any subset, in any order).
func (m *Mix) Set(s string) error {
	*m = Mix{}
	for _, part := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		n, err := strconv.Atoi(v)
		if !ok || err != nil || n < 0 || n > maxWeight {
			return fmt.Errorf("%q: want op=weight with a weight from 0 to %d", part, maxWeight)
		}
		switch k {
		case "create":
			m.Create = n
		case "get":
			m.Get = n
		case "refund":
			m.Refund = n
		default:
			return fmt.Errorf("unknown operation %q (create, get, refund)", k)
		}
	}
	if m.Create == 0 {
		return errors.New("create must have a weight: get and refund act on payments this run created")
	}
	return nil
}

// Scenarios and the fault each sets during the middle third of the run.
var scenarios = map[string]string{
	"baseline":       "",
	"channel-down":   `"down":true`,
	"channel-errors": `"error_rate":0.3`,
	"channel-slow":   `"latency":"2s"`,
}

// ErrUsage marks a command-line problem (exit status 2).
var ErrUsage = errors.New("bad flags")

// ParseFlags parses the flags of `paygate load`. Every error wraps ErrUsage,
// except flag.ErrHelp for -h.
func ParseFlags(args []string, stderr io.Writer) (*Config, error) {
	c := &Config{Mix: Mix{Create: 1}}
	fs := flag.NewFlagSet("load", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.Target, "target", "http://127.0.0.1:8080", "the gateway's merchant listener")
	fs.StringVar(&c.Merchant, "merchant", "", "merchant id (required)")
	secret := fs.String("secret", "", "the merchant's hmac-sha256 secret")
	secretEnv := fs.String("secret_env", "", "name of an environment variable holding the secret")
	secretFile := fs.String("secret_file", "", "path of a file holding the secret")
	fs.Float64Var(&c.Rate, "rate", 500, "requests started per second (open model)")
	fs.DurationVar(&c.Duration, "duration", 30*time.Second, "how long requests are started")
	fs.Var(&c.Mix, "mix", "operation weights: create=N,get=N,refund=N")
	fs.StringVar(&c.Method, "method", "qr", "payment method of creates")
	fs.Int64Var(&c.Amount, "amount", 1500, "amount of each create, in fen")
	fs.StringVar(&c.Scenario, "scenario", "baseline", "baseline, channel-down, channel-errors or channel-slow")
	fs.StringVar(&c.FaultChannel, "fault-channel", "wechat-main", "the channel a scenario's fault is set on")
	fs.StringVar(&c.Admin, "admin", "", "the gateway's admin listener (needed by scenarios), e.g. http://127.0.0.1:9090")
	fs.StringVar(&c.AdminToken, "admin-token", "", "the admin bearer token")
	fs.BoolVar(&c.JSON, "json", false, "print exactly one JSON object on stdout")
	fs.BoolVar(&c.AllowRealOrders, "allow-real-orders", false, "run against a gateway that is not in sandbox mode: REAL channel orders and refunds will be made")
	fs.IntVar(&c.MaxInFlight, "max-inflight", 1000, "requests in flight at most; starts beyond it are not sent and are counted as not_sent")
	fs.DurationVar(&c.Timeout, "timeout", 10*time.Second, "per-request timeout")
	fs.StringVar(&c.NotifyURL, "notify-url", "http://127.0.0.1:9/paygate-load", "notify_url of the created payments")
	fs.StringVar(&c.GetID, "get-id", "", "read only this payment: every request is a signed GET /v1/payments/{id}; -mix does not apply")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, err // -h: the usage was printed
		}
		return nil, fmt.Errorf("%w: %v", ErrUsage, err)
	}
	bad := func(format string, a ...any) (*Config, error) {
		err := fmt.Errorf("%w: "+format, append([]any{ErrUsage}, a...)...)
		fmt.Fprintf(stderr, "paygate load: %s\n", strings.TrimPrefix(err.Error(), ErrUsage.Error()+": "))
		return nil, err
	}
	if fs.NArg() > 0 {
		return bad("unexpected argument %q", fs.Arg(0))
	}
	s, err := config.ResolveSecret(config.Secret(*secret), *secretEnv, *secretFile)
	switch {
	case err != nil:
		return bad("secret: %v", err)
	case s == "":
		return bad("one of -secret, -secret_env, -secret_file is required")
	}
	c.Secret = s
	if c.Merchant == "" {
		return bad("-merchant is required")
	}
	if err := checkURL(c.Target); err != nil {
		return bad("-target: %v", err)
	}
	if c.Rate <= 0 || c.Rate > 1e6 {
		return bad("-rate must be in (0, 1000000], got %v", c.Rate)
	}
	if c.Duration <= 0 {
		return bad("-duration must be positive, got %s", c.Duration)
	}
	if c.Rate*c.Duration.Seconds() < 1 {
		return bad("-rate × -duration is under one request")
	}
	if c.Amount < 1 {
		return bad("-amount must be at least 1 fen, got %d", c.Amount)
	}
	if c.MaxInFlight < 1 {
		return bad("-max-inflight must be at least 1, got %d", c.MaxInFlight)
	}
	if c.Timeout <= 0 {
		return bad("-timeout must be positive, got %s", c.Timeout)
	}
	if c.GetID != "" {
		if !isIDToken(c.GetID) {
			return bad("-get-id %q: want 1-64 characters of [A-Za-z0-9_-]", c.GetID)
		}
		if c.Scenario != "baseline" {
			return bad("-get-id reads one payment; it takes no -scenario")
		}
		c.Mix = Mix{Get: 1}
	}
	if _, ok := scenarios[c.Scenario]; !ok {
		return bad("-scenario %q: want baseline, channel-down, channel-errors or channel-slow", c.Scenario)
	}
	if c.Scenario != "baseline" {
		if c.Admin == "" || c.AdminToken == "" {
			return bad("-scenario %s needs -admin and -admin-token (it sets the fault through the sandbox controls)", c.Scenario)
		}
		if err := checkURL(c.Admin); err != nil {
			return bad("-admin: %v", err)
		}
		if c.FaultChannel == "" {
			return bad("-scenario %s needs -fault-channel", c.Scenario)
		}
	}
	return c, nil
}

// isIDToken: 1-64 characters of [A-Za-z0-9_-], so that an id is one path
// segment as it stands.
func isIDToken(s string) bool {
	if len(s) < 1 || len(s) > 64 {
		return false
	}
	for _, c := range []byte(s) {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

func checkURL(s string) error {
	u, err := url.Parse(s)
	if err != nil {
		return err
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" {
		return fmt.Errorf("%q: want http(s)://host[:port]", s)
	}
	return nil
}
