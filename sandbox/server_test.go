package sandbox

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
	"go.uber.org/zap"

	"github.com/paygate/paygate/config"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fakeSim is the smallest simulator: POST /orders?no=X creates order X (and
// tells the host, for auto-pay), any other request answers "ok". Pay
// notifies notifyURL (when set) through the host's Notifier. It records
// when it handled each request, so that the host's faults can be told
// apart from the simulator's own answers.
type fakeSim struct {
	env       Env
	notifyURL string

	mu        sync.Mutex
	orders    map[string]string // order number → "open" | "paid"
	handledAt []time.Time
}

func (f *fakeSim) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	f.handledAt = append(f.handledAt, time.Now())
	f.mu.Unlock()
	if r.Method == http.MethodPost && r.URL.Path == "/orders" {
		no := r.URL.Query().Get("no")
		f.mu.Lock()
		f.orders[no] = "open"
		f.mu.Unlock()
		f.env.OrderCreated(no)
		w.WriteHeader(http.StatusCreated)
		io.WriteString(w, "created "+no)
		return
	}
	io.WriteString(w, "ok")
}

func (f *fakeSim) Pay(no string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	switch f.orders[no] {
	case "":
		return ErrNoOrder
	case "paid":
		return fmt.Errorf("%w: order is paid", ErrOrderState)
	}
	f.orders[no] = "paid"
	if f.notifyURL != "" {
		f.env.Notifier.Send(f.notifyURL, http.Header{"Content-Type": {"text/plain"}}, []byte("paid "+no),
			func(status int, _ []byte) bool { return status == http.StatusOK })
	}
	return nil
}

func (f *fakeSim) Fail(string) error { return ErrUnsupported }

func (f *fakeSim) Unavailable(w http.ResponseWriter) {
	w.WriteHeader(http.StatusServiceUnavailable)
	io.WriteString(w, "unavailable")
}

func (f *fakeSim) state(no string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.orders[no]
}

func (f *fakeSim) handled() []time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]time.Time(nil), f.handledAt...)
}

// host is a started Server with one fake channel ("fake-a").
type host struct {
	srv    *Server
	sim    *fakeSim
	base   string // the channel's base_url
	client *http.Client
}

const fakeChannel = "fake-a"

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// startHost starts a Server with one fake channel of type wechat (so its
// notifier has WeChat's retry schedule) and a control listener.
func startHost(t *testing.T, sb config.Sandbox, notifyURL string) *host {
	t.Helper()
	addr := freeAddr(t)
	sb.Enabled, sb.ControlListen = true, "127.0.0.1:0"
	cfg := &config.Config{
		Sandbox:  sb,
		Channels: []config.Channel{{ID: fakeChannel, Type: "wechat", BaseURL: "http://" + addr}},
	}
	h := &host{base: "http://" + addr, client: &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}}
	factory := func(ch config.Channel, env Env, keysDir string) (Sim, error) {
		h.sim = &fakeSim{env: env, notifyURL: notifyURL, orders: map[string]string{}}
		return h.sim, nil
	}
	srv, err := New(cfg, zap.NewNop(), map[string]Factory{"wechat": factory}, WithSeed(1))
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	h.srv = srv
	t.Cleanup(func() { srv.Stop(context.Background()) })
	return h
}

func (h *host) setFaults(t *testing.T, f Faults) {
	t.Helper()
	f.Channel = fakeChannel
	if err := h.srv.SetFaults(f); err != nil {
		t.Fatal(err)
	}
}

// get asks the channel; the error is the client's (refused, timeout).
func (h *host) do(method, path string) (int, string, error) {
	req, err := http.NewRequest(method, h.base+path, nil)
	if err != nil {
		return 0, "", err
	}
	res, err := h.client.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b), nil
}

func TestDownRefusesConnections(t *testing.T) {
	h := startHost(t, config.Sandbox{}, "")
	if st, body, err := h.do(http.MethodGet, "/ping"); err != nil || st != 200 || body != "ok" {
		t.Fatalf("up: %d %q %v", st, body, err)
	}
	h.setFaults(t, Faults{Down: true})
	// A real connection refusal: the client knows nothing was sent.
	if _, err := net.DialTimeout("tcp", strings.TrimPrefix(h.base, "http://"), time.Second); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("dial while down: %v, want connection refused", err)
	}
	if _, _, err := h.do(http.MethodGet, "/ping"); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("request while down: %v, want connection refused", err)
	}
	if f := h.srv.Faults(); len(f) != 1 || !f[0].Down {
		t.Fatalf("faults while down: %+v", f)
	}
	n := len(h.sim.handled())
	h.setFaults(t, Faults{}) // clears: up again on the same address
	if st, body, err := h.do(http.MethodGet, "/ping"); err != nil || st != 200 || body != "ok" {
		t.Fatalf("up again: %d %q %v", st, body, err)
	}
	if got := len(h.sim.handled()); got != n+1 {
		t.Fatalf("the simulator handled %d requests, want %d (none while down)", got, n+1)
	}
	h.setFaults(t, Faults{}) // up while up: no error, still serving
	if st, _, err := h.do(http.MethodGet, "/ping"); err != nil || st != 200 {
		t.Fatalf("second up: %d %v", st, err)
	}
}

func TestLatencyDelaysTheAnswerAfterHandling(t *testing.T) {
	h := startHost(t, config.Sandbox{}, "")
	const latency = 300 * time.Millisecond
	h.setFaults(t, Faults{Latency: latency.String()})

	// A client that gives up first still created the order: the outcome is
	// ambiguous, as with a real timeout after sending.
	impatient := &http.Client{Timeout: latency / 3, Transport: &http.Transport{DisableKeepAlives: true}}
	res, err := impatient.Post(h.base+"/orders?no=O1", "text/plain", nil)
	if err == nil {
		res.Body.Close()
		t.Fatalf("answer before the latency: %d", res.StatusCode)
	}
	for deadline := time.Now().Add(5 * time.Second); h.sim.state("O1") != "open"; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the order of the request that timed out was never created")
		}
	}

	start := time.Now()
	st, body, err := h.do(http.MethodPost, "/orders?no=O2")
	answered := time.Now()
	if err != nil || st != http.StatusCreated || body != "created O2" {
		t.Fatalf("patient client: %d %q %v", st, body, err)
	}
	hs := h.sim.handled()
	handled := hs[len(hs)-1]
	if handled.Sub(start) >= latency || answered.Sub(handled) < latency {
		t.Fatalf("handled after %v, answered %v after handling; want handling at once and the answer %v later",
			handled.Sub(start), answered.Sub(handled), latency)
	}
}

func TestErrorRate(t *testing.T) {
	h := startHost(t, config.Sandbox{}, "")
	h.setFaults(t, Faults{ErrorRate: 1})
	for i := range 5 {
		st, body, err := h.do(http.MethodPost, fmt.Sprintf("/orders?no=E%d", i))
		if err != nil || st != http.StatusServiceUnavailable || body != "unavailable" {
			t.Fatalf("error_rate 1: %d %q %v", st, body, err)
		}
	}
	if n := len(h.sim.handled()); n != 0 {
		t.Fatalf("the simulator handled %d requests under error_rate 1; the order must not exist", n)
	}
	h.setFaults(t, Faults{ErrorRate: 0})
	if st, _, err := h.do(http.MethodPost, "/orders?no=E9"); err != nil || st != http.StatusCreated {
		t.Fatalf("error_rate 0: %d %v", st, err)
	}
}

func TestSetFaultsValidates(t *testing.T) {
	h := startHost(t, config.Sandbox{}, "")
	for _, tc := range []struct {
		name string
		f    Faults
		want error // nil: accepted
	}{
		{"unknown channel", Faults{Channel: "nope"}, ErrNoChannel},
		{"error_rate above 1", Faults{Channel: fakeChannel, ErrorRate: 1.5}, errAny},
		{"negative error_rate", Faults{Channel: fakeChannel, ErrorRate: -0.1}, errAny},
		{"latency not a duration", Faults{Channel: fakeChannel, Latency: "soon"}, errAny},
		{"negative latency", Faults{Channel: fakeChannel, Latency: "-1s"}, errAny},
		{"everything at once", Faults{Channel: fakeChannel, ErrorRate: 0.5, Latency: "10ms", DropCallbacks: true}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := h.srv.SetFaults(tc.f)
			if (err == nil) != (tc.want == nil) || (tc.want != nil && tc.want != errAny && !errors.Is(err, tc.want)) {
				t.Fatalf("SetFaults(%+v) = %v, want %v", tc.f, err, tc.want)
			}
		})
	}
	if f := h.srv.Faults(); len(f) != 1 || f[0] != (Faults{Channel: fakeChannel, ErrorRate: 0.5, Latency: "10ms", DropCallbacks: true}) {
		t.Fatalf("a refused SetFaults changed the faults in force: %+v", f)
	}
}

// errAny: any error will do.
var errAny = errors.New("any error")

// The control API, in order: its cases share one simulator's state.
func TestControlAPI(t *testing.T) {
	h := startHost(t, config.Sandbox{}, "")
	if st, _, err := h.do(http.MethodPost, "/orders?no=C1"); err != nil || st != http.StatusCreated {
		t.Fatalf("create: %d %v", st, err)
	}
	control := "http://" + h.srv.ControlAddr()
	for _, tc := range []struct {
		name, method, path, body string
		status                   int
		contains                 string
	}{
		{"pay", "POST", "/channels/fake-a/orders/C1/pay", "", 200, `"result":"ok"`},
		{"pay again", "POST", "/channels/fake-a/orders/C1/pay", "", 409, "not in a state"},
		{"pay an unknown order", "POST", "/channels/fake-a/orders/C404/pay", "", 404, "no such order"},
		{"pay at an unknown channel", "POST", "/channels/nope/orders/C1/pay", "", 404, "no simulated channel"},
		{"fail where unsupported", "POST", "/channels/fake-a/orders/C1/fail", "", 409, "not supported"},
		{"unknown operation", "POST", "/channels/fake-a/orders/C1/refund", "", 404, ""},
		{"pay with GET", "GET", "/channels/fake-a/orders/C1/pay", "", 405, ""},
		{"faults before", "GET", "/faults", "", 200, `[{"channel":"fake-a","down":false,"error_rate":0,"drop_callbacks":false}]`},
		{"set faults", "POST", "/faults", `{"channel":"fake-a","latency":"5ms","drop_callbacks":true}`, 200, `"latency":"5ms"`},
		{"faults after", "GET", "/faults", "", 200, `[{"channel":"fake-a","down":false,"error_rate":0,"latency":"5ms","drop_callbacks":true}]`},
		{"bad JSON", "POST", "/faults", `{"channel":`, 400, "bad request"},
		{"unknown field", "POST", "/faults", `{"channel":"fake-a","slow":true}`, 400, "bad request"},
		{"unknown channel", "POST", "/faults", `{"channel":"nope"}`, 404, "no simulated channel"},
		{"bad error_rate", "POST", "/faults", `{"channel":"fake-a","error_rate":2}`, 400, "error_rate"},
		{"bad latency", "POST", "/faults", `{"channel":"fake-a","latency":"soon"}`, 400, "latency"},
		{"refusals changed nothing", "GET", "/faults", "", 200, `"latency":"5ms","drop_callbacks":true`},
		{"clear", "POST", "/faults", `{"channel":"fake-a"}`, 200, `"channel":"fake-a"`},
		{"cleared", "GET", "/faults", "", 200, `[{"channel":"fake-a","down":false,"error_rate":0,"drop_callbacks":false}]`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, err := http.NewRequest(tc.method, control+tc.path, strings.NewReader(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			res, err := h.client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer res.Body.Close()
			b, _ := io.ReadAll(res.Body)
			if res.StatusCode != tc.status || !strings.Contains(string(b), tc.contains) {
				t.Fatalf("%s %s: %d %s, want %d containing %q", tc.method, tc.path, res.StatusCode, b, tc.status, tc.contains)
			}
		})
	}
	if h.sim.state("C1") != "paid" {
		t.Fatal("the control API's pay did not reach the simulator")
	}
}

func TestAutoPay(t *testing.T) {
	const after = 20 * time.Millisecond
	never := startHost(t, config.Sandbox{AutoPay: config.AutoPay{After: config.Duration(after), Ratio: 0}}, "")
	always := startHost(t, config.Sandbox{AutoPay: config.AutoPay{After: config.Duration(after), Ratio: 1}}, "")
	created := time.Now()
	for _, h := range []*host{never, always} {
		if st, _, err := h.do(http.MethodPost, "/orders?no=A1"); err != nil || st != http.StatusCreated {
			t.Fatalf("create: %d %v", st, err)
		}
	}
	if always.sim.state("A1") == "paid" && time.Since(created) < after {
		t.Fatal("paid before auto_pay.after")
	}
	deadline := time.Now().Add(5 * time.Second)
	for always.sim.state("A1") != "paid" {
		if time.Now().After(deadline) {
			t.Fatal("ratio 1: the order was never paid")
		}
		time.Sleep(5 * time.Millisecond)
	}
	// The ratio-0 order was created first, with the same delay: had it been
	// scheduled it would be paid by now; give it 5 × after more to be sure.
	for end := time.Now().Add(5 * after); time.Now().Before(end); time.Sleep(5 * time.Millisecond) {
		if never.sim.state("A1") != "open" {
			t.Fatalf("ratio 0: order is %q", never.sim.state("A1"))
		}
	}
}

// Stop ends everything the Server started: the channel and control
// listeners, a request held by the latency fault, an auto-pay timer not yet
// due and a notification waiting for its next retry.
func TestStopLeavesNoGoroutines(t *testing.T) {
	// The merchant's server stays up until after the check, so that a
	// connection the simulators kept open to it would show.
	var tries atomic.Int32
	merchant := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tries.Add(1)
		w.WriteHeader(http.StatusInternalServerError) // never acknowledged: WeChat retries in 15 s
	}))
	t.Cleanup(merchant.Close)
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())

	addr := freeAddr(t)
	cfg := &config.Config{
		Sandbox:  config.Sandbox{Enabled: true, ControlListen: "127.0.0.1:0", TimeScale: 1, AutoPay: config.AutoPay{After: config.Duration(time.Hour), Ratio: 1}},
		Channels: []config.Channel{{ID: fakeChannel, Type: "wechat", BaseURL: "http://" + addr}},
	}
	var sim *fakeSim
	srv, err := New(cfg, zap.NewNop(), map[string]Factory{"wechat": func(ch config.Channel, env Env, _ string) (Sim, error) {
		sim = &fakeSim{env: env, notifyURL: merchant.URL, orders: map[string]string{}}
		return sim, nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	client := &http.Client{Timeout: 5 * time.Second}
	defer client.CloseIdleConnections()
	res, err := client.Post("http://"+addr+"/orders?no=S1", "text/plain", nil) // schedules auto-pay in an hour
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	res, err = client.Get("http://" + srv.ControlAddr() + "/faults")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if err := srv.Pay(fakeChannel, "S1"); err != nil { // first delivery fails, retry pending
		t.Fatal(err)
	}
	for deadline := time.Now().Add(5 * time.Second); tries.Load() == 0; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the notification was never sent")
		}
	}
	if err := srv.SetFaults(Faults{Channel: fakeChannel, Latency: "1h"}); err != nil {
		t.Fatal(err)
	}
	held := make(chan error, 1)
	go func() {
		res, err := (&http.Client{Transport: &http.Transport{DisableKeepAlives: true}}).Get("http://" + addr + "/ping")
		if err == nil {
			res.Body.Close()
		}
		held <- err
	}()
	for deadline := time.Now().Add(5 * time.Second); len(sim.handled()) < 2; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the held request never reached the simulator")
		}
	}

	stopped := make(chan struct{})
	go func() { srv.Stop(context.Background()); close(stopped) }()
	select {
	case <-stopped:
	case <-time.After(5 * time.Second):
		t.Fatal("Stop did not return: something it owns is still running")
	}
	if err := <-held; err == nil {
		t.Fatal("the request held by the latency fault was answered after Stop")
	}
	if n := tries.Load(); n != 1 {
		t.Fatalf("%d deliveries, want 1 (the retry is cancelled by Stop)", n)
	}
}
