package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/paygate/paygate/config"
	"github.com/paygate/paygate/ledger"
)

// migrateCmd applies the ledger's embedded schema migrations to the
// PostgreSQL of store.postgres and exits: for deployments that migrate
// before rolling out (store.postgres.migrate: false), or to check the schema.
func migrateCmd(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("migrate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "config.yaml", "config file")
	timeout := fs.Duration("timeout", 5*time.Minute, "give up after this long")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	cfg, err := config.Load(*path)
	if err != nil {
		fmt.Fprintf(stderr, "paygate: %s:\n%v\n", *path, err)
		return 1
	}
	pg := cfg.Store.Postgres
	if !pg.Configured() {
		fmt.Fprintln(stderr, "paygate migrate: store.postgres has no dsn: the embedded ledger needs no migrations")
		return 1
	}
	dsn, err := pg.ResolveDSN()
	if err != nil {
		fmt.Fprintf(stderr, "paygate migrate: store.postgres.dsn: %v\n", err)
		return 1
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	pool, err := ledger.NewPool(ctx, dsn, pg)
	if err != nil {
		fmt.Fprintf(stderr, "paygate migrate: %v\n", err)
		return 1
	}
	defer pool.Close()
	applied, err := ledger.Migrate(ctx, pool)
	if err != nil {
		fmt.Fprintf(stderr, "paygate migrate: %v\n", err)
		return 1
	}
	v, err := ledger.SchemaVersion(ctx, pool)
	if err != nil {
		fmt.Fprintf(stderr, "paygate migrate: %v\n", err)
		return 1
	}
	if len(applied) == 0 {
		fmt.Fprintf(stdout, "ok: schema at version %d, nothing to apply\n", v)
	} else {
		fmt.Fprintf(stdout, "ok: applied %v, schema at version %d\n", applied, v)
	}
	return 0
}
