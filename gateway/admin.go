package gateway

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/pprof"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/paygate/paygate/payment"
	"github.com/paygate/paygate/routing"
	"github.com/paygate/paygate/sandbox"
	"github.com/paygate/paygate/store"
)

// The admin listener (CONTRACT §7) is plain net/http: it serves operators,
// not merchant traffic, and net/http gives Prometheus' handler and the status
// page for free. /healthz, /readyz and /metrics are open; /admin/* needs the
// bearer token.

// AdminStore is what the admin API reads (implemented by *store.Store).
type AdminStore interface {
	Ping(ctx context.Context) error
	PaymentMerchant(ctx context.Context, paymentID string) (string, error)
	GetPayment(ctx context.Context, n *store.Nonce, merchant, paymentID string) (*payment.Record, error)
	DeadEvents(ctx context.Context, merchant string, limit int) ([]store.DeadEvent, error)
	ReplayEvent(ctx context.Context, merchant, eventID string, now time.Time) error
	OutboxStats(ctx context.Context, merchant string) (pending, dead int64, err error)
}

// SandboxControl drives the channel simulators (*sandbox.Server, or a client
// of a separate `paygate sim`).
type SandboxControl interface {
	Pay(channelID, orderNo string) error
	Fail(channelID, orderNo string) error
	SetFaults(f sandbox.Faults) error
	Faults() []sandbox.Faults
}

// ReloadFunc reloads the configuration now and returns its problems, if any.
type ReloadFunc func() error

// Admin is the admin listener's handler.
type Admin struct {
	s       *Server
	st      AdminStore
	token   atomic.Pointer[string] // swapped by a reload
	reload  ReloadFunc
	sandbox SandboxControl // nil outside sandbox mode
	metrics http.Handler
	logger  *zap.Logger
	browser *http.Client

	lastReload func() ReloadStatus
	draining   atomic.Bool   // set by Drain: shutdown has begun
	version    string        // shown on the status page
	refresh    time.Duration // the status page's self-refresh period
	audit      *zap.Logger
}

// ReloadStatus is the outcome of the last configuration reload.
type ReloadStatus struct {
	At     time.Time `json:"at"`
	OK     bool      `json:"ok"`
	Error  string    `json:"error,omitempty"`
	Source string    `json:"source,omitempty"`
}

// AdminOptions are the Admin's collaborators.
type AdminOptions struct {
	Token      string
	Reload     ReloadFunc
	LastReload func() ReloadStatus
	Sandbox    SandboxControl
	Metrics    http.Handler
	// Version is shown on the status page ("" shows "unknown").
	Version string
	// StatusRefresh is how often the status page reloads itself; 0 means
	// 5 s, and it is never less than 1 s.
	StatusRefresh time.Duration
}

// NewAdmin builds the admin handler.
func NewAdmin(s *Server, st AdminStore, o AdminOptions) *Admin {
	a := &Admin{s: s, st: st, reload: o.Reload, lastReload: o.LastReload, sandbox: o.Sandbox, metrics: o.Metrics,
		logger: s.logger.Named("admin"), browser: &http.Client{Timeout: 5 * time.Second},
		version: o.Version, refresh: o.StatusRefresh}
	a.audit = a.logger.Named("audit")
	if a.version == "" {
		a.version = "unknown"
	}
	if a.refresh <= 0 {
		a.refresh = defaultStatusRefresh
	}
	a.SetToken(o.Token)
	return a
}

func (a *Admin) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("X-Request-Id", a.s.requestID())
	switch {
	case r.URL.Path == "/healthz":
		writeAdminJSON(w, http.StatusOK, map[string]string{"status": "ok"})
		return
	case r.URL.Path == "/readyz":
		if a.draining.Load() {
			writeAdminJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "shutting_down"})
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		if err := a.st.Ping(ctx); err != nil {
			writeAdminJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "unavailable", "store": "unreachable"})
			return
		}
		writeAdminJSON(w, http.StatusOK, map[string]string{"status": "ready"})
		return
	case r.URL.Path == "/metrics" && a.metrics != nil:
		a.metrics.ServeHTTP(w, r)
		return
	case r.URL.Path == "/":
		a.statusPage(w, r)
		return
	case strings.HasPrefix(r.URL.Path, "/admin/"):
		if !a.authorized(r) {
			a.auditRefused(r, w.Header().Get("X-Request-Id"))
			a.fail(w, apiErr(http.StatusUnauthorized, codeMissingAuth, "Authorization: Bearer <admin token> is required"))
			return
		}
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		a.api(rec, r)
		a.auditAction(r, rec, w.Header().Get("X-Request-Id"))
		return
	}
	a.fail(w, apiErr(http.StatusNotFound, codeNotFound, "no such endpoint"))
}

// Drain makes /readyz answer 503 from now on: shutdown has begun, and load
// balancers should stop sending traffic before the listeners close.
func (a *Admin) Drain() { a.draining.Store(true) }

// ErrorLog is the admin listener's net/http ErrorLog: net/http's own
// messages, redacted like the merchant listener's (edgelog.go).
func (a *Admin) ErrorLog() *log.Logger { return redactingErrorLog(a.logger) }

// SetToken replaces the admin bearer token (config reload).
func (a *Admin) SetToken(token string) { a.token.Store(&token) }

func (a *Admin) authorized(r *http.Request) bool {
	h := r.Header.Get("Authorization")
	tok, ok := strings.CutPrefix(h, "Bearer ")
	want := *a.token.Load()
	return ok && want != "" && subtle.ConstantTimeCompare([]byte(tok), []byte(want)) == 1
}

func (a *Admin) fail(w http.ResponseWriter, err error) {
	status, code, msg := statusOf(err)
	writeAdminJSON(w, status, map[string]any{"error": map[string]string{"code": code, "message": msg, "request_id": w.Header().Get("X-Request-Id")}})
}

func writeAdminJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

func (a *Admin) api(w http.ResponseWriter, r *http.Request) {
	seg := strings.Split(strings.Trim(strings.TrimPrefix(r.URL.Path, "/admin/"), "/"), "/")
	verb := func(v string) bool {
		if r.Method != v {
			w.Header().Set("Allow", v)
			a.fail(w, apiErr(http.StatusMethodNotAllowed, codeHTTPMethod, "%s is not allowed here", r.Method))
			return false
		}
		return true
	}
	switch {
	case len(seg) == 1 && seg[0] == "channels":
		if verb(http.MethodGet) {
			writeAdminJSON(w, http.StatusOK, map[string]any{"channels": a.s.router.Channels()})
		}
	case len(seg) == 2 && seg[0] == "routing" && seg[1] == "explain":
		if verb(http.MethodGet) {
			a.explain(w, r)
		}
	case len(seg) == 2 && seg[0] == "risk" && seg[1] == "explain":
		if verb(http.MethodGet) {
			a.riskExplain(w, r)
		}
	case len(seg) == 2 && seg[0] == "config" && seg[1] == "reload":
		if verb(http.MethodPost) {
			a.doReload(w)
		}
	case len(seg) == 2 && seg[0] == "notifications" && seg[1] == "dead":
		if verb(http.MethodGet) {
			a.dead(w, r)
		}
	case len(seg) == 3 && seg[0] == "notifications" && seg[2] == "replay":
		if verb(http.MethodPost) {
			a.replay(w, r, seg[1])
		}
	case len(seg) >= 2 && seg[0] == "debug" && seg[1] == "pprof":
		servePprof(w, r)
	case len(seg) >= 2 && seg[0] == "sandbox":
		a.sandboxAPI(w, r, seg[1:], verb)
	default:
		a.fail(w, apiErr(http.StatusNotFound, codeNotFound, "no such endpoint"))
	}
}

func (a *Admin) explain(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	req := routing.Request{Merchant: q.Get("merchant"), Method: payment.Method(q.Get("method")), Currency: q.Get("currency")}
	if req.Currency == "" {
		req.Currency = "CNY"
	}
	if !req.Method.Valid() {
		a.fail(w, invalid("method", "unknown method %q", q.Get("method")))
		return
	}
	if s := q.Get("amount"); s != "" {
		v, err := strconv.ParseInt(s, 10, 64)
		if err != nil || v < 1 {
			a.fail(w, invalid("amount", "must be an integer ≥ 1"))
			return
		}
		req.Amount = v
	}
	table := a.s.router.Table()
	d := table.Decide(req)
	writeAdminJSON(w, http.StatusOK, map[string]any{"request": req, "rule": d.Rule, "max_attempts": table.MaxAttempts(), "candidates": d.Candidates})
}

func (a *Admin) doReload(w http.ResponseWriter) {
	if a.reload == nil {
		a.fail(w, apiErr(http.StatusNotFound, codeNotFound, "reload is not available"))
		return
	}
	if err := a.reload(); err != nil {
		writeAdminJSON(w, http.StatusUnprocessableEntity, map[string]any{"reloaded": false, "errors": strings.Split(err.Error(), "\n")})
		return
	}
	writeAdminJSON(w, http.StatusOK, map[string]any{"reloaded": true})
}

func (a *Admin) dead(w http.ResponseWriter, r *http.Request) {
	limit := 100
	if s := r.URL.Query().Get("limit"); s != "" {
		if v, err := strconv.Atoi(s); err == nil && v > 0 && v <= 1000 {
			limit = v
		}
	}
	type deadView struct {
		EventID   string          `json:"event_id"`
		Merchant  string          `json:"merchant_id"`
		NotifyURL string          `json:"notify_url"`
		Attempts  int             `json:"attempts"`
		LastError string          `json:"last_error"`
		DeadAt    time.Time       `json:"dead_at"`
		Event     json.RawMessage `json:"event"`
	}
	out := []deadView{}
	for _, m := range a.s.Merchants() {
		if mf := r.URL.Query().Get("merchant"); mf != "" && mf != m.ID {
			continue
		}
		evs, err := a.st.DeadEvents(r.Context(), m.ID, limit)
		if err != nil {
			a.fail(w, err)
			return
		}
		for _, e := range evs {
			out = append(out, deadView{EventID: e.ID, Merchant: e.Merchant, NotifyURL: e.NotifyURL, Attempts: e.Attempts, LastError: e.LastError, DeadAt: e.DeadAt, Event: e.Body})
		}
	}
	writeAdminJSON(w, http.StatusOK, map[string]any{"dead": out})
}

// eventObject maps an event id (evt_<object id>_<type>) to its payment id.
func eventPaymentID(eventID string) string {
	rest, ok := strings.CutPrefix(eventID, "evt_")
	if !ok || len(rest) < 4 {
		return ""
	}
	switch {
	case strings.HasPrefix(rest, "pay_") && len(rest) >= 28:
		return rest[:28]
	case strings.HasPrefix(rest, "rfd_") && len(rest) >= 34:
		return payment.PaymentIDOfRefund(rest[:34])
	}
	return ""
}

func (a *Admin) replay(w http.ResponseWriter, r *http.Request, eventID string) {
	pid := eventPaymentID(eventID)
	if pid == "" {
		a.fail(w, apiErr(http.StatusNotFound, codeNotFound, "no event %s", eventID))
		return
	}
	merchant, err := a.st.PaymentMerchant(r.Context(), pid)
	if err == nil {
		err = a.st.ReplayEvent(r.Context(), merchant, eventID, a.s.now())
	}
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			err = apiErr(http.StatusNotFound, codeNotFound, "no dead-lettered event %s", eventID)
		}
		a.fail(w, err)
		return
	}
	writeAdminJSON(w, http.StatusAccepted, map[string]any{"event_id": eventID, "replayed": true})
}

func (a *Admin) sandboxAPI(w http.ResponseWriter, r *http.Request, seg []string, verb func(string) bool) {
	if a.sandbox == nil {
		a.fail(w, apiErr(http.StatusNotFound, codeNotFound, "sandbox mode is off"))
		return
	}
	switch {
	case len(seg) == 1 && seg[0] == "faults":
		switch r.Method {
		case http.MethodGet:
			writeAdminJSON(w, http.StatusOK, map[string]any{"faults": a.sandbox.Faults()})
		case http.MethodPost:
			var f sandbox.Faults
			dec := json.NewDecoder(io.LimitReader(r.Body, 4096))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&f); err != nil {
				a.fail(w, invalid("body", "must be a faults object: %v", err))
				return
			}
			if f.Channel == "" {
				a.fail(w, invalid("channel", "is required"))
				return
			}
			auditNote(w, fmt.Sprintf("channel=%s down=%t error_rate=%g latency=%s drop_callbacks=%t",
				f.Channel, f.Down, f.ErrorRate, f.Latency, f.DropCallbacks))
			if err := a.sandbox.SetFaults(f); err != nil {
				if errors.Is(err, sandbox.ErrNoChannel) {
					a.fail(w, apiErr(http.StatusNotFound, codeNotFound, "%v", err))
				} else {
					a.fail(w, invalid("faults", "%v", err))
				}
				return
			}
			writeAdminJSON(w, http.StatusOK, map[string]any{"faults": a.sandbox.Faults()})
		default:
			w.Header().Set("Allow", "GET, POST")
			a.fail(w, apiErr(http.StatusMethodNotAllowed, codeHTTPMethod, "%s is not allowed here", r.Method))
		}
	case len(seg) == 3 && seg[0] == "payments" && (seg[2] == "pay" || seg[2] == "fail"):
		if verb(http.MethodPost) {
			a.sandboxPay(w, r, seg[1], seg[2])
		}
	default:
		a.fail(w, apiErr(http.StatusNotFound, codeNotFound, "no such endpoint"))
	}
}

// sandboxPay makes the simulated payer pay (or fail) a payment at its
// channel. Where the payer's browser would first open a redirect URL or post
// a form (Alipay page pay, bank front consume), it does that first.
func (a *Admin) sandboxPay(w http.ResponseWriter, r *http.Request, paymentID, op string) {
	merchant, err := a.st.PaymentMerchant(r.Context(), paymentID)
	if err != nil {
		a.fail(w, apiErr(http.StatusNotFound, codeNotFound, "no payment %s", paymentID))
		return
	}
	rec, err := a.st.GetPayment(r.Context(), nil, merchant, paymentID)
	if err != nil {
		a.fail(w, err)
		return
	}
	if rec.Action != nil {
		if err := a.openAction(r.Context(), rec.Action); err != nil {
			if errors.Is(err, errPageRefused) {
				// The channel would not open the payer's page (expired,
				// closed): the payer cannot pay, which is a state, not a fault.
				a.fail(w, apiErr(http.StatusConflict, codeInvalidState, "the channel refused the payer's page: %v", err))
				return
			}
			a.fail(w, fmt.Errorf("open the payer's page: %w", err))
			return
		}
	}
	if op == "pay" {
		err = a.sandbox.Pay(rec.Channel, rec.ChannelOrderNo)
	} else {
		err = a.sandbox.Fail(rec.Channel, rec.ChannelOrderNo)
	}
	switch {
	case err == nil:
	case errors.Is(err, sandbox.ErrNoOrder):
		a.fail(w, apiErr(http.StatusNotFound, codeNotFound, "the channel has no order for %s", paymentID))
		return
	case errors.Is(err, sandbox.ErrOrderState), errors.Is(err, sandbox.ErrUnsupported):
		a.fail(w, apiErr(http.StatusConflict, codeInvalidState, "%v", err))
		return
	default:
		a.fail(w, err)
		return
	}
	writeAdminJSON(w, http.StatusAccepted, map[string]any{"payment_id": paymentID, "channel": rec.Channel, "result": op + " done at the channel; its notification is on its way"})
}

// openAction does what the payer's browser does with a redirect or form action.
func (a *Admin) openAction(ctx context.Context, act *payment.Action) error {
	var req *http.Request
	var err error
	switch act.Type {
	case "redirect":
		req, err = http.NewRequestWithContext(ctx, http.MethodGet, act.URL, nil)
	case "form":
		form := url.Values{}
		for k, v := range act.Fields {
			form.Set(k, v)
		}
		req, err = http.NewRequestWithContext(ctx, http.MethodPost, act.URL, strings.NewReader(form.Encode()))
		if req != nil {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
	default:
		return nil
	}
	if err != nil {
		return err
	}
	resp, err := a.browser.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode >= 400 && resp.StatusCode < 500 {
		return fmt.Errorf("%w: the channel answered %d", errPageRefused, resp.StatusCode)
	}
	if resp.StatusCode >= 500 {
		return fmt.Errorf("the channel answered %d", resp.StatusCode)
	}
	return nil
}

// errPageRefused: the channel refused to show the payer's page.
var errPageRefused = errors.New("page refused")

func channelsSummary(cs []routing.RuleChannel) string {
	parts := make([]string, len(cs))
	for i, c := range cs {
		parts[i] = fmt.Sprintf("%s (weight %g, priority %d)", c.ID, c.Weight, c.Priority)
	}
	return strings.Join(parts, ", ")
}

// servePprof serves net/http/pprof under /admin/debug/pprof/ (the caller
// has checked the admin token). pprof.Index only dispatches by name under
// /debug/pprof/, so the name is dispatched here. A CPU profile or trace
// must finish within the admin listener's 30 s write timeout.
func servePprof(w http.ResponseWriter, r *http.Request) {
	switch name := strings.TrimPrefix(r.URL.Path, "/admin/debug/pprof/"); name {
	case "", "/admin/debug/pprof":
		pprof.Index(w, r)
	case "cmdline":
		pprof.Cmdline(w, r)
	case "profile":
		pprof.Profile(w, r)
	case "symbol":
		pprof.Symbol(w, r)
	case "trace":
		pprof.Trace(w, r)
	default:
		pprof.Handler(name).ServeHTTP(w, r)
	}
}
