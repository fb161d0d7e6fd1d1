// Command paygate runs the payment gateway, the channel simulators, and
// config checks (CONTRACT §1). This package only wires things together; it
// is the only place that exits.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/paygate/paygate/config"
	"github.com/paygate/paygate/version"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

const usage = `usage: paygate [command] [flags]

commands:
  serve         run the gateway (the default)        -config FILE -listen ADDR -admin-listen ADDR
  sim           run only the channel simulators       -config FILE
  load          signed load, open model, scenarios    -target URL -merchant ID -secret S (paygate load -h)
  config check  validate a config file                -config FILE
  healthcheck   GET the admin /readyz; exit 0 if 200   -addr HOST:PORT -path /readyz|/healthz -timeout D
  version       print the version, revision and Go version
  migrate       apply the ledger's schema migrations  -config FILE
`

func run(args []string, stdout, stderr io.Writer) int {
	cmd := "serve"
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "serve":
		return serveCmd(args, stderr)
	case "sim":
		return simCmd(args, stderr)
	case "load":
		return loadCmd(args, stdout, stderr)
	case "config":
		if len(args) == 0 || args[0] != "check" {
			fmt.Fprint(stderr, usage)
			return 2
		}
		fs := flag.NewFlagSet("config check", flag.ContinueOnError)
		fs.SetOutput(stderr)
		path := fs.String("config", "config.yaml", "config file")
		if err := fs.Parse(args[1:]); err != nil {
			return 2
		}
		return config.Check(*path, stdout)
	case "healthcheck":
		return healthcheckCmd(args, stdout, stderr)
	case "version", "-version", "--version":
		fmt.Fprintln(stdout, version.Get())
		return 0
	case "migrate":
		return migrateCmd(args, stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	}
	fmt.Fprintf(stderr, "paygate: unknown command %q\n%s", cmd, usage)
	return 2
}

func serveCmd(args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "config.yaml", "config file")
	listen := fs.String("listen", "", "merchant listener address (overrides server.listen)")
	adminListen := fs.String("admin-listen", "", "admin listener address (overrides server.admin_listen)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	cfg, err := config.Load(*path)
	if err != nil {
		return cannotStart(stderr, fmt.Errorf("%s:\n%w", *path, err))
	}
	applyFlags(cfg, *listen, *adminListen)
	logger, err := newLogger(cfg.Log)
	if err != nil {
		return cannotStart(stderr, err)
	}
	defer logger.Sync()
	redis.SetLogger(redisLogger{logger.Named("redis")}) // the one global go-redis offers; set once, here

	a, err := start(cfg, *path, logger, options{})
	if err != nil {
		logger.Error("cannot start", zap.Error(err))
		return cannotStart(stderr, err)
	}
	logger.Info("paygate running", zap.String("listen", a.addr), zap.String("admin_listen", a.adminAddr),
		zap.Bool("sandbox", cfg.Sandbox.Enabled), zap.Bool("embedded_store", a.store.Embedded()), zap.Bool("postgres_ledger", a.ledger != nil))

	sig := make(chan os.Signal, 2)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	defer signal.Stop(sig)
	for s := range sig {
		if s == syscall.SIGHUP {
			_ = a.reloadNow("sighup") // apply logs and records a refused reload
			continue
		}
		logger.Info("shutting down", zap.String("signal", s.String()))
		break
	}
	ctx, cancel := context.WithTimeout(context.Background(), cfg.Server.ShutdownTimeout.D())
	defer cancel()
	if err := a.shutdown(ctx, cfg.Server.ShutdownDelay.D(), sig); err != nil {
		logger.Error("unclean shutdown", zap.Error(err))
		return 1
	}
	return 0
}

// cannotStart reports a failed start the one way operators and scripts can
// rely on — "paygate: cannot start: <cause>" on stderr — and gives exit code 1.
func cannotStart(stderr io.Writer, err error) int {
	fmt.Fprintf(stderr, "paygate: cannot start: %v\n", err)
	return 1
}

// applyFlags applies command-line overrides; a public_url that was derived
// from server.listen follows the new listen address.
func applyFlags(cfg *config.Config, listen, adminListen string) {
	if listen != "" {
		if tls := cfg.Server.TLS.Enabled(); cfg.Server.PublicURL == derivedPublicURL(cfg.Server.Listen, tls) {
			cfg.Server.PublicURL = derivedPublicURL(listen, tls)
		}
		cfg.Server.Listen = listen
	}
	if adminListen != "" {
		cfg.Server.AdminListen = adminListen
	}
}

// derivedPublicURL is the public_url derived from a listen address with an
// unspecified host; https when the merchant listener serves TLS.
func derivedPublicURL(listen string, tls bool) string {
	_, port, err := net.SplitHostPort(listen)
	if err != nil {
		return ""
	}
	if tls {
		return "https://127.0.0.1:" + port
	}
	return "http://127.0.0.1:" + port
}

func simCmd(args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("sim", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "config.yaml", "config file")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	cfg, err := config.Load(*path)
	if err != nil {
		return cannotStart(stderr, fmt.Errorf("%s:\n%w", *path, err))
	}
	logger, err := newLogger(cfg.Log)
	if err != nil {
		return cannotStart(stderr, err)
	}
	defer logger.Sync()
	sim, err := newSandbox(cfg, logger)
	if err == nil {
		err = sim.Start()
	}
	if err != nil {
		logger.Error("cannot start simulators", zap.Error(err))
		return cannotStart(stderr, err)
	}
	logger.Info("simulators running", zap.String("control", sim.ControlAddr()))
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	<-sig
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := sim.Stop(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return 1
	}
	return 0
}

// redisLogger routes go-redis's own messages (failed dials, pool events)
// into zap instead of stderr.
type redisLogger struct{ l *zap.Logger }

func (r redisLogger) Printf(_ context.Context, format string, v ...any) {
	r.l.Warn(fmt.Sprintf(format, v...))
}

func newLogger(c config.Log) (*zap.Logger, error) {
	lvl, err := zapcore.ParseLevel(c.Level)
	if err != nil {
		return nil, fmt.Errorf("log.level: %w", err)
	}
	zc := zap.NewProductionConfig()
	if c.Format == "console" {
		zc = zap.NewDevelopmentConfig()
	}
	zc.Level = zap.NewAtomicLevelAt(lvl)
	zc.EncoderConfig.TimeKey = "ts"
	zc.EncoderConfig.EncodeTime = zapcore.ISO8601TimeEncoder
	zc.Sampling = nil // one line per request: never drop request lines
	return zc.Build()
}
