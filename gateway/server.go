// Package gateway is paygate's fasthttp edge: merchant authentication, the
// merchant API (payments, refunds) with its strict decoding and limits, the
// HTTP side of channel callbacks, the admin listener, and the mapping of
// errors to HTTP statuses. The payment logic itself is the engine's
// (package engine), which the edge calls.
package gateway

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/paygate/paygate/config"
	"github.com/paygate/paygate/engine"
	"github.com/paygate/paygate/payment"
	"github.com/paygate/paygate/risk"
	"github.com/paygate/paygate/routing"
)

// Store is the shared state the edge needs (implemented by *store.Store):
// the engine's, and a health check.
type Store interface {
	engine.Store
	Ping(ctx context.Context) error
	risk.Counter
}

// merchant is a merchant's compiled runtime settings.
type merchant struct {
	id        string
	key       keyVerifier
	methods   map[payment.Method]bool
	maxAmount int64
	limiter   *tokenBucket
	webhook   []byte
	allow     []netip.Prefix
}

// snapshot is the immutable per-config state of the edge, swapped atomically
// on reload; a request uses the snapshot it started with.
type snapshot struct {
	merchants map[string]*merchant
	// retired are merchants a reload removed: they can no longer call the
	// API, but their queued notifications are still delivered and their
	// pending payments still reconciled.
	retired    map[string]*merchant
	window     time.Duration
	currencies map[string]bool // every currency some channel lists
	publicURL  string
	trusted    []netip.Prefix   // server.trusted_proxies
	cert       *tls.Certificate // server.tls; nil without TLS
}

// Server is the merchant-facing edge.
type Server struct {
	logger *zap.Logger
	store  Store
	eng    *engine.Engine
	router *routing.Router
	now    func() time.Time
	cfg    config.Server

	snap atomic.Pointer[snapshot]
	http *fasthttp.Server

	// serveMu orders Serve and Shutdown: fasthttp's Shutdown only closes
	// listeners its Serve has registered, so a Shutdown that ran first
	// would leave a later Serve accepting forever.
	serveMu  sync.Mutex
	serveLn  net.Listener // the listener Serve is serving, once it is
	shutDown bool

	reqPrefix string
	reqSeq    atomic.Uint64

	onEvent func()   // called after an event was enqueued (wakes the notifier)
	metrics *Metrics // nil: none
	gate    engine.Gate
	risk    *risk.Engine
	sandbox bool // answers carry X-Paygate-Sandbox: true (see Handler)
}

// Option configures a Server.
type Option func(*Server)

// WithEventHook sets a function called after a state change enqueued a
// merchant event, so that delivery starts without waiting for a poll.
func WithEventHook(f func()) Option { return func(s *Server) { s.onEvent = f } }

// WithMetrics makes the edge and its engine report to m.
func WithMetrics(m *Metrics) Option { return func(s *Server) { s.metrics = m } }

// WithClock injects the clock (tests).
func WithClock(now func() time.Time) Option { return func(s *Server) { s.now = now } }

// WithGate sets the engine's check of every create before it is stored or
// sent to a channel (engine.Gate).
func WithGate(g engine.Gate) Option { return func(s *Server) { s.gate = g } }

// createGate is what every create passes before anything is stored or
// sent: a gate set with WithGate (tests), then the risk rules.
func (s *Server) createGate(ctx context.Context, r *engine.CreateRequest) error {
	if s.gate != nil {
		if err := s.gate(ctx, r); err != nil {
			return err
		}
	}
	return s.risk.Check(ctx, r.Nonce, risk.RequestOf(r.Merchant, r.OutTradeNo, r.Method, r.Amount, r.Payer))
}

// New builds the edge and the engine it calls. It does not listen until
// Serve.
func New(cfg *config.Config, st Store, router *routing.Router, logger *zap.Logger, opts ...Option) (*Server, error) {
	s := &Server{logger: logger.Named("gateway"), store: st, router: router, now: time.Now, cfg: cfg.Server, onEvent: func() {},
		sandbox: cfg.Sandbox.Enabled}
	for _, o := range opts {
		o(s)
	}
	eopts := []engine.Option{engine.WithClock(s.now), engine.WithEventHook(s.onEvent), engine.WithGate(s.createGate)}
	if s.metrics != nil {
		eopts = append(eopts, engine.WithObserver(s.metrics))
	}
	s.eng = engine.New(cfg, st, router, logger, eopts...)
	var rb [6]byte
	rand.Read(rb[:])
	s.reqPrefix = "req_" + fmt.Sprintf("%x", rb[:]) + "_"
	ropts := []risk.Option{risk.WithClock(func() time.Time { return s.now() })}
	if s.metrics != nil {
		ropts = append(ropts, risk.WithObserver(s.metrics))
	}
	var err error
	if s.risk, err = risk.New(cfg.Risk, st, s.logger, ropts...); err != nil {
		return nil, err
	}
	if err := s.Reload(cfg); err != nil {
		return nil, err
	}
	s.http = &fasthttp.Server{
		Handler:                       s.Handler,
		ErrorHandler:                  s.handleReadError,
		Name:                          "paygate",
		ReadTimeout:                   cfg.Server.ReadTimeout.D(),
		WriteTimeout:                  cfg.Server.WriteTimeout.D(),
		IdleTimeout:                   cfg.Server.IdleTimeout.D(),
		MaxConnsPerIP:                 0, // enforced by connLimitListener (Serve), which answers with the contract's JSON 429
		MaxRequestBodySize:            cfg.Server.MaxBodyBytes,
		ReadBufferSize:                cfg.Server.MaxHeaderBytes,
		DisablePreParseMultipartForm:  true,
		NoDefaultServerHeader:         true,
		DisableHeaderNamesNormalizing: false,
		CloseOnShutdown:               true,
		Logger:                        redactingLogger{s.logger}, // never the request's bytes: see edgelog.go
	}
	return s, nil
}

// Reload compiles the merchant-facing parts of cfg and swaps them in.
func (s *Server) Reload(cfg *config.Config) error {
	commit, err := s.Prepare(cfg)
	if err != nil {
		return err
	}
	commit()
	return nil
}

// Prepare compiles the merchant-facing parts of cfg without changing
// anything; the returned commit swaps them in. A reload of several parts
// prepares every part first and commits only when all compiled.
func (s *Server) Prepare(cfg *config.Config) (commit func(), err error) {
	snap := &snapshot{
		merchants:  map[string]*merchant{},
		window:     cfg.Security.TimestampWindow.D(),
		currencies: map[string]bool{},
		publicURL:  cfg.Server.PublicURL,
	}
	if snap.trusted, err = config.ParsePrefixes(cfg.Server.TrustedProxies); err != nil {
		return nil, fmt.Errorf("server.trusted_proxies%w", err)
	}
	switch {
	case cfg.Server.TLS.Enabled() && !s.cfg.TLS.Enabled():
		// Accepting it would change nothing on the wire while a derived
		// public_url turned https (channel callbacks to a plain listener).
		return nil, errors.New("server.tls: the listener serves plain HTTP; turning TLS on needs a restart")
	case cfg.Server.TLS.Enabled():
		c, err := tls.LoadX509KeyPair(cfg.Server.TLS.CertFile, cfg.Server.TLS.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("server.tls: %w", err)
		}
		snap.cert = &c
	case s.cfg.TLS.Enabled():
		return nil, errors.New("server.tls: the listener serves TLS; turning it off needs a restart")
	}
	for _, ch := range cfg.Channels {
		for _, c := range ch.Currencies {
			snap.currencies[c] = true
		}
	}
	old := s.snap.Load()
	retired := map[string]*merchant{} // disabled here, or removed by this or an earlier reload
	for i, mc := range cfg.Merchants {
		secret, err := config.ResolveSecret(mc.Key.Secret, mc.Key.SecretEnv, mc.Key.SecretFile)
		if err != nil {
			return nil, fmt.Errorf("merchants[%d].key: %w", i, err)
		}
		pub := mc.Key.PublicKey
		if pub == "" && mc.Key.PublicKeyFile != "" {
			b, err := os.ReadFile(mc.Key.PublicKeyFile)
			if err != nil {
				return nil, fmt.Errorf("merchants[%d].key.public_key_file: %w", i, err)
			}
			pub = string(b)
		}
		kv, err := newKeyVerifier(mc.Key.Algorithm, secret, pub)
		if err != nil {
			return nil, fmt.Errorf("merchants[%d].key: %w", i, err)
		}
		wh, err := config.ResolveSecret(mc.WebhookSecret, mc.WebhookSecretEnv, mc.WebhookSecretFile)
		if err != nil {
			return nil, fmt.Errorf("merchants[%d].webhook_secret: %w", i, err)
		}
		m := &merchant{id: mc.ID, key: kv, methods: map[payment.Method]bool{}, maxAmount: mc.Limits.MaxAmount, webhook: []byte(wh)}
		for _, meth := range mc.Methods {
			m.methods[payment.Method(meth)] = true
		}
		for _, n := range mc.NotifyAllowNetworks {
			p, err := netip.ParsePrefix(n)
			if err != nil {
				return nil, fmt.Errorf("merchants[%d].notify_allow_networks: %w", i, err)
			}
			m.allow = append(m.allow, p)
		}
		// Keep the rate limiter's state across reloads when the rate is unchanged.
		if old != nil {
			if om, ok := old.merchants[mc.ID]; ok && om.limiter.rate == float64(mc.Limits.RequestsPerSecond) {
				m.limiter = om.limiter
			}
		}
		if m.limiter == nil {
			m.limiter = newTokenBucket(float64(mc.Limits.RequestsPerSecond), s.now)
		}
		if mc.Disabled {
			retired[mc.ID] = m
			continue
		}
		snap.merchants[mc.ID] = m
	}
	snap.retired = retired
	commitRisk, err := s.risk.Prepare(cfg.Risk)
	if err != nil {
		return nil, err
	}
	return func() {
		commitRisk()
		// Merchants the current snapshot has and this one lacks keep their
		// work served (reloads are serialized by the caller).
		if cur := s.snap.Load(); cur != nil {
			for _, ms := range []map[string]*merchant{cur.retired, cur.merchants} {
				for id, m := range ms {
					if _, still := snap.merchants[id]; !still && snap.retired[id] == nil {
						snap.retired[id] = m
					}
				}
			}
		}
		s.snap.Store(snap)
		s.eng.Reload(cfg)
	}, nil
}

// Engine is the payment engine the edge calls (the reconciler runs it too).
func (s *Server) Engine() *engine.Engine { return s.eng }

// MerchantIDs lists the ids of Merchants.
func (s *Server) MerchantIDs() []string {
	ms := s.Merchants()
	ids := make([]string, len(ms))
	for i, m := range ms {
		ids[i] = m.ID
	}
	return ids
}

// Merchants lists the delivery settings of every merchant with work that
// may still be due: the configured ones and those a reload removed (for
// notification delivery and reconciliation; never for authentication).
func (s *Server) Merchants() []MerchantInfo {
	snap := s.snap.Load()
	out := make([]MerchantInfo, 0, len(snap.merchants)+len(snap.retired))
	for _, ms := range []map[string]*merchant{snap.merchants, snap.retired} {
		for _, m := range ms {
			out = append(out, MerchantInfo{ID: m.id, WebhookSecret: m.webhook, AllowNetworks: m.allow})
		}
	}
	return out
}

// MerchantInfo is what notification delivery needs of a merchant.
type MerchantInfo struct {
	ID            string
	WebhookSecret []byte
	AllowNetworks []netip.Prefix
}

// Serve accepts connections on ln until Shutdown, through the layers that
// edgenet.go describes.
func (s *Server) Serve(ln net.Listener) error {
	trusted := func(ip netip.Addr) bool { return s.snap.Load().trustedPeer(ip) }
	if s.cfg.ProxyProtocol {
		ln = newProxyListener(ln, trusted, s.cfg.ReadTimeout.D(), s.logger)
	}
	if s.cfg.TLS.Enabled() {
		ln = tls.NewListener(ln, s.tlsConfig())
	}
	cl := newConnLimitListener(ln, s.cfg.MaxConnsPerIP, s.requestID)
	// A proxy that names its clients by X-Forwarded-For multiplexes many of
	// them over its connections: counting those against one address would
	// limit the proxy, not a client. With the PROXY protocol each connection
	// is counted under the client the header names.
	cl.exempt = trusted
	s.serveMu.Lock()
	if s.shutDown {
		s.serveMu.Unlock()
		cl.Close()
		return nil
	}
	s.serveLn = cl
	s.serveMu.Unlock()
	err := s.http.Serve(cl)
	s.serveMu.Lock()
	defer s.serveMu.Unlock()
	if s.shutDown {
		return nil // closed by Shutdown, perhaps before fasthttp registered it
	}
	return err
}

// Shutdown stops accepting, waits for in-flight requests (bounded by ctx).
// A Serve that has not started yet returns at once when it does.
func (s *Server) Shutdown(ctx context.Context) error {
	s.serveMu.Lock()
	s.shutDown = true
	ln := s.serveLn
	s.serveMu.Unlock()
	err := s.http.ShutdownWithContext(ctx)
	if ln != nil {
		ln.Close() // a no-op when fasthttp had registered and closed it
	}
	return err
}

// requestID returns a process-unique, cross-instance-unique request id.
func (s *Server) requestID() string {
	return s.reqPrefix + strconv.FormatUint(s.reqSeq.Add(1), 36)
}

// incomingRequestID is the request's X-Request-Id when it sent a
// well-formed one (validRequestID), else a fresh one.
func (s *Server) incomingRequestID(ctx *fasthttp.RequestCtx) string {
	if h := ctx.Request.Header.Peek("X-Request-Id"); validRequestID(h) {
		return string(h)
	}
	return s.requestID()
}

// handleReadError answers requests fasthttp could not read: the contract's
// JSON 413 for a body over server.max_body_bytes, checked before anything else.
func (s *Server) handleReadError(ctx *fasthttp.RequestCtx, err error) {
	reqID := s.requestID()
	ctx.Response.Header.Set("X-Request-Id", reqID)
	ctx.SetConnectionClose()
	var small *fasthttp.ErrSmallBuffer
	switch {
	case errors.Is(err, fasthttp.ErrBodyTooLarge):
		writeErrorBody(ctx, http.StatusRequestEntityTooLarge, codeBodyTooLarge, fmt.Sprintf("body over %d bytes", s.cfg.MaxBodyBytes), reqID)
	case errors.As(err, &small):
		writeErrorBody(ctx, http.StatusRequestHeaderFieldsTooLarge, codeInvalidRequest, "headers too large", reqID)
	default:
		writeErrorBody(ctx, http.StatusBadRequest, codeInvalidRequest, "malformed HTTP request", reqID)
	}
	// err quotes the request's bytes (signatures, nonces, bodies): log its
	// kind and the peer, never err itself.
	s.logger.Info("request", zap.String("request_id", reqID), zap.Int("status", ctx.Response.StatusCode()),
		zap.String("error", readErrorKind(err)), zap.String("client", ctx.RemoteAddr().String()))
	if s.metrics != nil {
		s.metrics.ObserveRequest("", nil, ctx.Response.StatusCode(), nil, 0)
	}
}

// reqLog collects what the request line logs, and carries the request's
// context: handlers never pass the *fasthttp.RequestCtx itself as a
// context.Context, because it is reused once the handler returns and a
// context derived from it (an HTTP client's, say) could outlive the request.
type reqLog struct {
	ctx       context.Context
	route     string
	merchant  string
	paymentID string
	channel   string
	traceID   string     // of a valid W3C traceparent header, or ""
	client    netip.Addr // the client's address (clientAddr)
	err       error
}

// Handler is the fasthttp handler of the merchant listener.
func (s *Server) Handler(ctx *fasthttp.RequestCtx) {
	start := s.now()
	reqID := s.incomingRequestID(ctx)
	ctx.Response.Header.Set("X-Request-Id", reqID)
	if s.sandbox {
		// Tells clients (paygate load refuses to create payments otherwise)
		// that no real channel order can come of this request.
		ctx.Response.Header.Set("X-Paygate-Sandbox", "true")
	}
	rctx, cancel := context.WithTimeout(context.Background(), s.requestTimeout())
	defer cancel()
	rl := reqLog{ctx: rctx}
	if id, ok := traceID(ctx.Request.Header.Peek("traceparent")); ok {
		rl.traceID = id
	}
	rl.client = s.clientAddr(ctx, s.snap.Load())
	defer func() {
		if p := recover(); p != nil {
			s.logger.Error("panic in request", zap.Any("panic", p), zap.Stack("stack"), zap.String("request_id", reqID))
			writeErrorBody(ctx, http.StatusInternalServerError, codeInternal, "internal error", reqID)
		}
		s.logRequest(ctx, reqID, start, &rl)
		if s.metrics != nil {
			s.metrics.ObserveRequest(rl.route, ctx.Method(), ctx.Response.StatusCode(), rl.err, s.now().Sub(start))
		}
	}()
	if err := s.route(ctx, reqID, &rl); err != nil {
		rl.err = err
		writeError(ctx, reqID, err)
	}
}

func (s *Server) logRequest(ctx *fasthttp.RequestCtx, reqID string, start time.Time, rl *reqLog) {
	status := ctx.Response.StatusCode()
	lvl := zapcore.InfoLevel
	if status >= 500 {
		lvl = zapcore.WarnLevel
	}
	ce := s.logger.Check(lvl, "request")
	if ce == nil {
		return
	}
	fields := []zap.Field{
		zap.String("request_id", reqID),
		zap.String("method", string(ctx.Method())), // a copy: the observer and other cores may keep fields after the handler returns
		zap.String("route", rl.route),
		zap.Int("status", status),
		zap.Duration("latency", s.now().Sub(start)),
	}
	if rl.client.IsValid() {
		fields = append(fields, zap.String("client", rl.client.String()))
	}
	if rl.traceID != "" {
		fields = append(fields, zap.String("trace_id", rl.traceID))
	}
	if rl.merchant != "" {
		fields = append(fields, zap.String("merchant", rl.merchant))
	}
	if rl.paymentID != "" {
		fields = append(fields, zap.String("payment_id", rl.paymentID))
	}
	if rl.channel != "" {
		fields = append(fields, zap.String("channel", rl.channel))
	}
	if rl.err != nil {
		fields = append(fields, zap.String("error", rl.err.Error()))
	}
	ce.Write(fields...)
}

// route dispatches by path and verb: an unknown path is 404 not_found, a
// known path with the wrong verb 405 http_method_not_allowed.
func (s *Server) route(ctx *fasthttp.RequestCtx, reqID string, rl *reqLog) error {
	path := string(ctx.Path())
	method := string(ctx.Method())
	seg, ok := splitPath(path)
	if !ok {
		return apiErr(http.StatusNotFound, codeNotFound, "no such endpoint")
	}
	want := func(verb, route string) error {
		rl.route = route
		if method != verb {
			ctx.Response.Header.Set("Allow", verb)
			return apiErr(http.StatusMethodNotAllowed, codeHTTPMethod, "%s is not allowed on %s", method, route)
		}
		return nil
	}
	switch {
	case len(seg) == 2 && seg[0] == "v1" && seg[1] == "payments":
		switch method {
		case http.MethodPost:
			rl.route = "POST /v1/payments"
			return s.createPayment(ctx, rl)
		case http.MethodGet:
			rl.route = "GET /v1/payments"
			if ctx.QueryArgs().Has("out_trade_no") {
				return s.getPaymentByOutTradeNo(ctx, rl)
			}
			return s.listPayments(ctx, rl)
		}
		rl.route = "/v1/payments"
		ctx.Response.Header.Set("Allow", "GET, POST")
		return apiErr(http.StatusMethodNotAllowed, codeHTTPMethod, "%s is not allowed on /v1/payments", method)
	case len(seg) == 3 && seg[0] == "v1" && seg[1] == "payments":
		if err := want(http.MethodGet, "GET /v1/payments/{id}"); err != nil {
			return err
		}
		return s.getPayment(ctx, seg[2], rl)
	case len(seg) == 4 && seg[0] == "v1" && seg[1] == "payments" && seg[3] == "close":
		if err := want(http.MethodPost, "POST /v1/payments/{id}/close"); err != nil {
			return err
		}
		return s.closePayment(ctx, seg[2], rl)
	case len(seg) == 4 && seg[0] == "v1" && seg[1] == "payments" && seg[3] == "refunds":
		switch method {
		case http.MethodPost:
			rl.route = "POST /v1/payments/{id}/refunds"
			return s.createRefund(ctx, seg[2], rl)
		case http.MethodGet:
			rl.route = "GET /v1/payments/{id}/refunds"
			return s.listRefunds(ctx, seg[2], rl)
		}
		rl.route = "/v1/payments/{id}/refunds"
		ctx.Response.Header.Set("Allow", "GET, POST")
		return apiErr(http.StatusMethodNotAllowed, codeHTTPMethod, "%s is not allowed on /v1/payments/{id}/refunds", method)
	case len(seg) == 2 && seg[0] == "v1" && seg[1] == "refunds":
		if err := want(http.MethodGet, "GET /v1/refunds"); err != nil {
			return err
		}
		return s.getRefundByOutRefundNo(ctx, rl)
	case len(seg) == 3 && seg[0] == "v1" && seg[1] == "refunds":
		if err := want(http.MethodGet, "GET /v1/refunds/{id}"); err != nil {
			return err
		}
		return s.getRefund(ctx, seg[2], rl)
	case len(seg) == 2 && seg[0] == "callbacks":
		if err := want(http.MethodPost, "POST /callbacks/{channel_id}"); err != nil {
			return err
		}
		rl.channel = seg[1]
		return s.callback(ctx, seg[1], rl)
	}
	return apiErr(http.StatusNotFound, codeNotFound, "no such endpoint")
}

// splitPath splits "/a/b/c" into [a b c]; empty segments make it unknown.
func splitPath(p string) ([]string, bool) {
	if len(p) < 2 || p[0] != '/' {
		return nil, false
	}
	var seg []string
	start := 1
	for i := 1; i <= len(p); i++ {
		if i == len(p) || p[i] == '/' {
			if i == start {
				return nil, false
			}
			seg = append(seg, p[start:i])
			start = i + 1
		}
	}
	return seg, len(seg) <= 4
}

// requestTimeout bounds one request's own work (store calls, channel calls
// have their own per-attempt timeouts inside it).
func (s *Server) requestTimeout() time.Duration {
	if s.cfg.WriteTimeout > 0 {
		return s.cfg.WriteTimeout.D()
	}
	return 30 * time.Second
}
