package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/paygate/paygate/adapters"
	"github.com/paygate/paygate/adapters/alipay"
	"github.com/paygate/paygate/adapters/bank"
	"github.com/paygate/paygate/adapters/wechatpay"
	"github.com/paygate/paygate/config"
	"github.com/paygate/paygate/engine"
	"github.com/paygate/paygate/gateway"
	"github.com/paygate/paygate/ledger"
	"github.com/paygate/paygate/notify"
	"github.com/paygate/paygate/routing"
	"github.com/paygate/paygate/sandbox"
	"github.com/paygate/paygate/sandbox/alipaysim"
	"github.com/paygate/paygate/sandbox/banksim"
	"github.com/paygate/paygate/sandbox/wechatsim"
)

// app is one running gateway: every component, started in dependency order
// and stopped in reverse.
type app struct {
	logger *zap.Logger
	path   string
	store  backend
	ledger *ledger.Ledger // nil without store.postgres
	purger *purger        // with the ledger
	sim    *sandbox.Server
	router *routing.Router
	gw     *gateway.Server
	admin  *http.Server
	// adminHandler gets the new admin token on reload.
	adminHandler *gateway.Admin
	notify       *notify.Dispatcher
	recon        *engine.Reconciler
	watcher      *config.Watcher
	metrics      *gateway.Metrics

	addr, adminAddr string
	ln, adminLn     net.Listener
	serveDone       chan error
	serving         bool

	opts options

	reloadMu   sync.Mutex // serializes apply
	mu         sync.Mutex // guards cfg and lastReload
	cfg        *config.Config
	lastReload gateway.ReloadStatus

	stopOnce sync.Once // stop runs once; later calls return its result
	stopErr  error
}

// options tune start for tests.
type options struct {
	now        func() time.Time
	simNow     func() time.Time // the in-process simulators' clock; nil: the wall clock
	noWatch    bool             // do not watch the config file
	notifyPoll time.Duration
	reconcile  time.Duration
	purgeEvery time.Duration // how often delivered notifications are purged; 0: hourly
}

// simulators maps a channel type to its simulator.
var simulators = map[string]sandbox.Factory{
	"wechat": wechatsim.New,
	"alipay": alipaysim.New,
	"bank":   banksim.New,
}

func newSandbox(cfg *config.Config, logger *zap.Logger, opts ...sandbox.Option) (*sandbox.Server, error) {
	return sandbox.New(cfg, logger, simulators, opts...)
}

// channelBuilder builds the adapter of one channel instance.
func channelBuilder(cfg *config.Config, obs adapters.Observer) routing.Builder {
	public := strings.TrimRight(cfg.Server.PublicURL, "/")
	return func(ch config.Channel) (adapters.Channel, error) {
		notifyURL := public + "/callbacks/" + ch.ID
		switch ch.Type {
		case "wechat":
			return wechatpay.FromConfig(ch, notifyURL, obs)
		case "alipay":
			return alipay.FromConfig(ch, notifyURL, obs)
		case "bank":
			return bank.FromConfig(ch, notifyURL, obs)
		}
		return nil, fmt.Errorf("channel %s: unknown type %q", ch.ID, ch.Type)
	}
}

// start builds and starts everything; on error, whatever started is stopped
// and the app is nil. The deferred cleanup holds its own reference: the
// error returns below set the named result to nil.
func start(cfg *config.Config, path string, logger *zap.Logger, o options) (_ *app, err error) {
	a := &app{logger: logger, path: path, cfg: cfg, opts: o, metrics: gateway.NewMetrics(), serveDone: make(chan error, 1)}
	defer func() {
		if err != nil {
			_ = a.stop(context.Background()) // the start error is the one to report
		}
	}()
	if a.store, a.ledger, err = openBackend(cfg, logger); err != nil {
		return nil, err
	}
	if cfg.Sandbox.Enabled && !cfg.Sandbox.External {
		var sopts []sandbox.Option
		if o.simNow != nil {
			sopts = append(sopts, sandbox.WithClock(o.simNow))
		}
		if a.sim, err = newSandbox(cfg, logger, sopts...); err != nil {
			return nil, fmt.Errorf("sandbox: %w", err)
		}
		if err = a.sim.Start(); err != nil {
			return nil, fmt.Errorf("sandbox: %w", err)
		}
	}
	var ropts []routing.Option
	if o.now != nil {
		ropts = append(ropts, routing.WithClock(o.now))
	}
	// The builder reads the public URL of the config it is given, so a
	// reload that changes server.public_url takes effect for new adapters.
	build := func(ch config.Channel) (adapters.Channel, error) {
		a.mu.Lock()
		c := a.cfg
		a.mu.Unlock()
		return channelBuilder(c, a.metrics)(ch)
	}
	if a.router, err = routing.New(cfg, build, a.store, logger, ropts...); err != nil {
		return nil, fmt.Errorf("routing: %w", err)
	}
	gopts := []gateway.Option{gateway.WithMetrics(a.metrics), gateway.WithEventHook(func() {
		if a.notify != nil {
			a.notify.Wake()
		}
	})}
	if o.now != nil {
		gopts = append(gopts, gateway.WithClock(o.now))
	}
	if a.gw, err = gateway.New(cfg, a.store, a.router, logger, gopts...); err != nil {
		return nil, err
	}

	ncfg := notify.ConfigFrom(cfg.Notifications)
	if o.notifyPoll > 0 {
		ncfg.PollInterval = o.notifyPoll
	}
	nopts := []notify.Option{notify.WithObserver(a.metrics)}
	if o.now != nil {
		nopts = append(nopts, notify.WithClock(o.now))
	}
	a.notify = notify.NewDispatcher(a.store, a.merchants, ncfg, logger, nopts...)
	interval := cfg.Reconcile.Interval.D()
	if o.reconcile > 0 {
		interval = o.reconcile
	}
	a.recon = engine.NewReconciler(a.gw.Engine(), a.gw.MerchantIDs, interval, cfg.Reconcile.Lease.D())

	token, err := cfg.Server.ResolveAdminToken()
	if err != nil {
		return nil, fmt.Errorf("server.admin_token: %w", err)
	}
	aopts := gateway.AdminOptions{Token: token, Reload: a.reloadErr, LastReload: a.reloadStatus, Metrics: a.metrics.Handler(),
		Version: mainModuleVersion()}
	switch {
	case a.sim != nil:
		aopts.Sandbox = a.sim
	case cfg.Sandbox.Enabled: // external simulators (paygate sim)
		aopts.Sandbox = sandbox.NewClient(cfg.Sandbox.ControlListen)
	}
	adminHandler := gateway.NewAdmin(a.gw, a.store, aopts)
	a.adminHandler = adminHandler
	a.metrics.RegisterState(a.router, a.store, a.gw.MerchantIDs)

	if a.ln, err = net.Listen("tcp", cfg.Server.Listen); err != nil {
		return nil, fmt.Errorf("server.listen: %w", err)
	}
	if a.adminLn, err = net.Listen("tcp", cfg.Server.AdminListen); err != nil {
		return nil, fmt.Errorf("server.admin_listen: %w", err)
	}
	a.addr, a.adminAddr = a.ln.Addr().String(), a.adminLn.Addr().String()

	ctx := context.Background()
	a.router.Start(ctx)
	a.notify.Start(ctx)
	a.recon.Start(ctx)
	if a.ledger != nil && cfg.Store.Postgres.PurgeDeliveredAfter > 0 {
		every := purgeEvery
		if o.purgeEvery > 0 {
			every = o.purgeEvery
		}
		a.purger = newPurger(a.ledger, cfg.Store.Postgres.PurgeDeliveredAfter.D(), every, o.now, logger)
		a.purger.Start()
	}
	a.admin = &http.Server{Handler: adminHandler, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 10 * time.Second, WriteTimeout: 30 * time.Second,
		ErrorLog: adminHandler.ErrorLog()}
	go func(srv *http.Server, ln net.Listener) { // ends on a.admin.Shutdown in stop
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			logger.Error("admin listener stopped", zap.Error(err))
		}
	}(a.admin, a.adminLn)
	a.serving = true
	go func() { a.serveDone <- a.gw.Serve(a.ln) }()

	if !o.noWatch && path != "" {
		a.watcher = config.NewWatcher(path, logger, func(c *config.Config, err error) {
			_ = a.apply(c, err, "file") // apply logs and records a refused reload
		})
		if err = a.watcher.Start(ctx); err != nil {
			return nil, fmt.Errorf("watch config: %w", err)
		}
	}
	return a, nil
}

// mainModuleVersion is the binary's module version as the build recorded it
// ("(devel)" for a build from a work tree), for the status page.
func mainModuleVersion() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		return bi.Main.Version
	}
	return "unknown"
}

// merchants is the notify package's view of the current merchants.
func (a *app) merchants() []notify.Merchant {
	ms := a.gw.Merchants()
	out := make([]notify.Merchant, len(ms))
	for i, m := range ms {
		out[i] = notify.Merchant{ID: m.ID, WebhookSecret: m.WebhookSecret, AllowNetworks: m.AllowNetworks}
	}
	return out
}

// reloadNow re-reads the config file (SIGHUP, admin API).
func (a *app) reloadNow(source string) error {
	cfg, err := config.Load(a.path)
	return a.apply(cfg, err, source)
}

func (a *app) reloadErr() error { return a.reloadNow("admin") }

// apply swaps in a new, fully validated config; a bad one changes nothing.
// Listener addresses, the store and the simulators are not reloaded (they
// need a restart); routing rules, channels and merchants are.
//
// Reloads are serialized (the file watcher, SIGHUP and the admin API may
// race) and all-or-nothing: the edge's merchants are compiled and swapped
// first, then the router's table; if the router refuses, the edge gets the
// old config back (which compiled before, so it cannot fail).
func (a *app) apply(cfg *config.Config, err error, source string) error {
	a.reloadMu.Lock()
	defer a.reloadMu.Unlock()
	if err == nil {
		a.mu.Lock()
		old := a.cfg
		a.mu.Unlock()
		// The listeners are not rebound: keep their addresses (the command
		// line's -listen included), and a public_url derived from them.
		if tls := cfg.Server.TLS.Enabled(); cfg.Server.PublicURL == derivedPublicURL(cfg.Server.Listen, tls) {
			cfg.Server.PublicURL = derivedPublicURL(old.Server.Listen, tls)
		}
		cfg.Server.Listen, cfg.Server.AdminListen = old.Server.Listen, old.Server.AdminListen
		err = a.swap(cfg, old)
	}
	a.mu.Lock()
	a.lastReload = gateway.ReloadStatus{At: time.Now(), OK: err == nil, Source: source}
	if err != nil {
		a.lastReload.Error = err.Error()
	}
	a.mu.Unlock()
	a.metrics.Reloaded(err == nil)
	if err != nil {
		a.logger.Error("config reload refused; the running config is unchanged", zap.String("source", source), zap.Error(err))
		return err
	}
	a.logger.Info("config reloaded", zap.String("source", source))
	return nil
}

// swap prepares every reloadable part of cfg — the edge's merchants, the
// router's table and adapters, the admin token — and commits them only when
// all of them compiled; on an error nothing has changed.
func (a *app) swap(cfg, old *config.Config) error {
	token, err := cfg.Server.ResolveAdminToken()
	if err != nil {
		return fmt.Errorf("server.admin_token: %w", err)
	}
	commitEdge, err := a.gw.Prepare(cfg)
	if err != nil {
		return err
	}
	a.mu.Lock()
	a.cfg = cfg // the adapter builder reads public_url from here
	a.mu.Unlock()
	commitRouter, err := a.router.Prepare(cfg)
	if err != nil {
		a.mu.Lock()
		a.cfg = old
		a.mu.Unlock()
		return err
	}
	commitEdge()
	commitRouter()
	a.adminHandler.SetToken(token)
	return nil
}

func (a *app) reloadStatus() gateway.ReloadStatus {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.lastReload
}

// shutdown is the orderly end of a running gateway (SIGTERM): /readyz turns
// 503 at once while both listeners keep serving for delay (cut short by
// hurry, a second signal), so load balancers stop sending traffic; then stop.
// Everything happens within ctx: when stop overruns it, shutdown returns
// without waiting (the process exits; what was not finished is leased in the
// store and taken up again by any instance).
func (a *app) shutdown(ctx context.Context, delay time.Duration, hurry <-chan os.Signal) error {
	a.adminHandler.Drain()
	a.logger.Info("draining: /readyz answers 503", zap.Duration("delay", delay))
	t := time.NewTimer(delay)
	select {
	case <-t.C:
	case <-hurry:
	case <-ctx.Done():
	}
	t.Stop()
	done := make(chan error, 1)
	go func() { done <- a.stop(ctx) }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return fmt.Errorf("shutdown did not finish within server.shutdown_timeout: %w", ctx.Err())
	}
}

// stop shuts down in reverse order: stop accepting and finish in-flight
// requests, stop background workers, the simulators, then close the store.
// Only the first call does it; the others wait for it and share its result.
func (a *app) stop(ctx context.Context) error {
	a.stopOnce.Do(func() { a.stopErr = a.stopAll(ctx) })
	return a.stopErr
}

func (a *app) stopAll(ctx context.Context) error {
	if a.adminHandler != nil {
		a.adminHandler.Drain()
	}
	var errs []error
	if a.watcher != nil {
		a.watcher.Stop()
	}
	if a.serving {
		errs = append(errs, a.gw.Shutdown(ctx), <-a.serveDone) // Serve returns nil after Shutdown
	} else if a.ln != nil {
		_ = a.ln.Close() // never served: nothing was accepted on it
	}
	if a.admin != nil {
		errs = append(errs, a.admin.Shutdown(ctx))
	} else if a.adminLn != nil {
		a.adminLn.Close()
	}
	if a.recon != nil {
		a.recon.Stop()
	}
	if a.notify != nil {
		a.notify.Stop()
	}
	if a.purger != nil {
		a.purger.Stop()
	}
	if a.router != nil {
		a.router.Stop()
	}
	if a.sim != nil {
		errs = append(errs, a.sim.Stop(ctx))
	}
	if a.store != nil {
		errs = append(errs, a.store.Close())
	}
	return errors.Join(errs...)
}
