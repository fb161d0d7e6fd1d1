package load

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// scenario sets a sandbox fault on one channel through the admin API at 1/3
// of the run and clears it at 2/3 (and on any early end).
type scenario struct {
	cfg    *Config
	client *http.Client
}

func newScenario(cfg *Config) *scenario {
	return &scenario{cfg: cfg, client: &http.Client{Timeout: 5 * time.Second}}
}

// check proves the admin API is reachable, the token right and sandbox
// controls on, before any load is sent.
func (s *scenario) check() error {
	status, body, err := s.call(http.MethodGet, "")
	if err != nil {
		return fmt.Errorf("scenario: cannot reach the admin API: %w", err)
	}
	if status != http.StatusOK {
		return fmt.Errorf("scenario: GET %s/admin/sandbox/faults answered %d: %s", s.cfg.Admin, status, strings.TrimSpace(body))
	}
	return nil
}

// run sets the fault at start+D/3 and clears it at start+2D/3; if ctx ends
// first, it clears a fault it set.
func (s *scenario) run(ctx context.Context, start time.Time, log io.Writer) {
	third := s.cfg.Duration / 3
	set := false
	defer func() {
		if set {
			s.apply(false, log)
		}
	}()
	for i, at := range []time.Time{start.Add(third), start.Add(2 * third)} {
		t := time.NewTimer(time.Until(at))
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		if i == 0 {
			set = s.apply(true, log)
		} else if set {
			set = !s.apply(false, log)
		}
	}
}

// apply sets (or clears) the fault and reports whether the admin API took it.
func (s *scenario) apply(on bool, log io.Writer) bool {
	fault := ""
	if on {
		fault = "," + scenarios[s.cfg.Scenario]
	}
	status, body, err := s.call(http.MethodPost, `{"channel":`+strconv.Quote(s.cfg.FaultChannel)+fault+`}`)
	what := map[bool]string{true: "set", false: "clear"}[on]
	if err != nil || status != http.StatusOK {
		fmt.Fprintf(log, "\npaygate load: could not %s the %s fault on %s: %d %v %s\n", what, s.cfg.Scenario, s.cfg.FaultChannel, status, err, strings.TrimSpace(body))
		return false
	}
	return true
}

func (s *scenario) call(method, body string) (int, string, error) {
	req, err := http.NewRequest(method, strings.TrimRight(s.cfg.Admin, "/")+"/admin/sandbox/faults", strings.NewReader(body))
	if err != nil {
		return 0, "", err
	}
	req.Header.Set("Authorization", "Bearer "+s.cfg.AdminToken)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	return resp.StatusCode, string(b), nil
}
