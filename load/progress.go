package load

import (
	"fmt"
	"io"
	"time"
)

// progress prints elapsed, sent, answered, the rate and p99 of the last
// second every second until the returned stop is called. live rewrites one
// line (a terminal); otherwise it writes one line per second.
func (r *runner) progress(out io.Writer, live bool) (stop func()) {
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-done:
				if live {
					fmt.Fprintln(out)
				}
				return
			case <-t.C:
				r.mu.Lock()
				line := fmt.Sprintf("%5.0fs  sent %d  answered %d  rate %d/s  p99 %.1fms  not_sent %d",
					time.Since(r.start).Seconds(), r.total.sent, r.total.answered, r.interval.sent,
					float64(r.interval.hist.ValueAtQuantile(99))/1000, r.notSent)
				if n := r.total.errs[errTimeout] + r.total.errs[errConnect] + r.total.errs[errOther]; n > 0 {
					line += fmt.Sprintf("  errors %d", n)
				}
				r.interval = newTally()
				r.mu.Unlock()
				if live {
					fmt.Fprintf(out, "\r\033[K%s", line)
				} else {
					fmt.Fprintln(out, line)
				}
			}
		}
	}()
	return func() { close(done); <-finished }
}
