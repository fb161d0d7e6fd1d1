package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/paygate/paygate/load"
)

// loadCmd runs `paygate load`: 2 on bad flags, 1 when it could not run
// (unreachable target, refused signature, a gateway not in sandbox mode
// without -allow-real-orders), 0 when it ran, whatever the answers.
func loadCmd(args []string, stdout, stderr io.Writer) int {
	cfg, err := load.ParseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		return 2
	}
	// The first Ctrl-C stops starting requests (the summary still comes,
	// once the requests in flight answer or time out); a second one kills.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() { <-ctx.Done(); stop() }()
	live := false
	if f, ok := stderr.(*os.File); ok {
		if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
			live = true
		}
	}
	sum, err := load.Run(ctx, cfg, stderr, live)
	if err != nil {
		if errors.Is(err, load.ErrNotSandbox) {
			fmt.Fprintf(stderr, "paygate load: refused: %v\n", err)
		} else {
			fmt.Fprintf(stderr, "paygate load: %v\n", err)
		}
		return 1
	}
	if cfg.JSON {
		if err := sum.WriteJSON(stdout); err != nil {
			return 1
		}
		return 0
	}
	sum.WriteText(stdout)
	return 0
}
