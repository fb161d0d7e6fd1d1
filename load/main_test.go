package load

import (
	"testing"

	"go.uber.org/goleak"
)

// A run owns every goroutine it starts (scheduler, workers, progress,
// scenario) and waits for them before Run returns. fasthttp keeps a few
// background goroutines of its own that end by themselves after an idle
// period (a client's idle-connection cleaner, a server's worker-pool
// cleaner) or live for the process (the dial cache cleaner, the Date
// header clock); they are not ours to stop.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.(*HostClient).connsCleaner"),
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.(*workerPool).Start.func2"),
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.(*TCPDialer).tcpAddrsClean"),
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.updateServerDate.func1"),
	)
}
