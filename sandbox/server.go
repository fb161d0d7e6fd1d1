package sandbox

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"sort"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/paygate/paygate/config"
)

// Notification retry schedules of the real channels (PROTOCOLS §A.8, §B.8;
// the bank's is ours: the ACP sources do not give one).
var schedules = map[string][]time.Duration{
	"wechat": {15 * time.Second, 15 * time.Second, 30 * time.Second, 3 * time.Minute, 10 * time.Minute,
		20 * time.Minute, 30 * time.Minute, 30 * time.Minute, 30 * time.Minute, time.Hour,
		3 * time.Hour, 3 * time.Hour, 3 * time.Hour, 6 * time.Hour, 6 * time.Hour},
	"alipay": {4 * time.Minute, 10 * time.Minute, 10 * time.Minute, time.Hour, 2 * time.Hour, 6 * time.Hour, 15 * time.Hour},
	"bank":   {time.Minute, 2 * time.Minute, 4 * time.Minute, 8 * time.Minute, 16 * time.Minute, 32 * time.Minute, time.Hour, 2 * time.Hour},
}

// Factory builds the simulator of one channel instance. keysDir holds the
// shipped sandbox test keys (config sandbox.keys_dir).
type Factory func(ch config.Channel, env Env, keysDir string) (Sim, error)

// Server hosts one simulator per configured channel, each on the host:port of
// its channel's base_url, plus the control API.
type Server struct {
	logger    *zap.Logger
	now       func() time.Time
	autoPay   config.AutoPay
	controlAt string

	mu        sync.Mutex
	instances map[string]*instance
	order     []string
	control   *http.Server
	controlLn net.Listener

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	rngMu  sync.Mutex
	rng    *rand.Rand
}

type instance struct {
	ch       config.Channel
	addr     string
	sim      Sim
	faults   *faultState
	notifier *Notifier
	handler  http.Handler

	mu  sync.Mutex
	srv *http.Server // nil while down
}

// Option configures a Server.
type Option func(*Server)

// WithClock injects the clock the simulators use.
func WithClock(now func() time.Time) Option { return func(s *Server) { s.now = now } }

// WithSeed makes fault and auto-pay randomness deterministic.
func WithSeed(seed uint64) Option {
	return func(s *Server) { s.rng = rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)) }
}

// New builds the simulators for every channel of cfg. Nothing listens until Start.
//
// factories maps a channel type (wechat, alipay, bank) to its simulator.
func New(cfg *config.Config, logger *zap.Logger, factories map[string]Factory, opts ...Option) (*Server, error) {
	s := &Server{
		logger:    logger.Named("sandbox"),
		now:       time.Now,
		autoPay:   cfg.Sandbox.AutoPay,
		controlAt: cfg.Sandbox.ControlListen,
		instances: map[string]*instance{},
		rng:       rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1)),
	}
	for _, o := range opts {
		o(s)
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	for _, ch := range cfg.Channels {
		u, err := url.Parse(ch.BaseURL)
		if err != nil || u.Host == "" {
			return nil, fmt.Errorf("channel %s: base_url %q has no host:port to listen on", ch.ID, ch.BaseURL)
		}
		inst := &instance{ch: ch, addr: u.Host, faults: &faultState{f: Faults{Channel: ch.ID}}}
		inst.notifier = NewNotifier(ch.ID, schedules[ch.Type], cfg.Sandbox.TimeScale, inst.faults.dropCallbacks, s.logger)
		chID := ch.ID
		env := Env{
			ChannelID:    ch.ID,
			Notifier:     inst.notifier,
			Now:          func() time.Time { return s.now() },
			OrderCreated: func(orderNo string) { s.scheduleAutoPay(chID, orderNo) },
			Logger:       s.logger.With(zap.String("channel", ch.ID)),
		}
		factory, ok := factories[ch.Type]
		if !ok {
			return nil, fmt.Errorf("channel %s: no simulator for type %q", ch.ID, ch.Type)
		}
		sim, err := factory(ch, env, cfg.Sandbox.KeysDir)
		if err != nil {
			return nil, err
		}
		inst.sim = sim
		inst.handler = &faultHandler{sim: sim, faults: inst.faults, rng: s.newRand()}
		s.instances[ch.ID] = inst
		s.order = append(s.order, ch.ID)
	}
	return s, nil
}

func (s *Server) newRand() *rand.Rand {
	s.rngMu.Lock()
	defer s.rngMu.Unlock()
	return rand.New(rand.NewPCG(s.rng.Uint64(), s.rng.Uint64()))
}

// Start listens for every simulator and, if controlListen is not empty, for
// the control API.
func (s *Server) Start() error {
	for _, id := range s.order {
		if err := s.instances[id].up(); err != nil {
			_ = s.Stop(context.Background())
			return err
		}
	}
	if s.controlAt != "" {
		ln, err := net.Listen("tcp", s.controlAt)
		if err != nil {
			_ = s.Stop(context.Background())
			return fmt.Errorf("sandbox control: %w", err)
		}
		s.mu.Lock()
		s.controlLn = ln
		s.control = &http.Server{Handler: s.ControlHandler(), ReadHeaderTimeout: 5 * time.Second}
		srv := s.control
		s.mu.Unlock()
		s.wg.Add(1)
		go func() { defer s.wg.Done(); _ = srv.Serve(ln) }() // ErrServerClosed after Stop
	}
	return nil
}

// ControlAddr is the control API's address once started.
func (s *Server) ControlAddr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.controlLn == nil {
		return ""
	}
	return s.controlLn.Addr().String()
}

func (in *instance) up() error {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.srv != nil {
		return nil
	}
	ln, err := net.Listen("tcp", in.addr)
	if err != nil {
		return fmt.Errorf("sandbox %s: %w", in.ch.ID, err)
	}
	srv := &http.Server{Handler: in.handler, ReadHeaderTimeout: 5 * time.Second}
	in.srv = srv
	go func() { _ = srv.Serve(ln) }() // ends when srv is closed by down or Stop, which own it
	return nil
}

func (in *instance) down() {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.srv != nil {
		in.srv.Close() // closes the listener and every connection: new calls are refused
		in.srv = nil
	}
}

// Stop closes every listener, cancels auto-pay timers and notification
// retries, and waits for them.
func (s *Server) Stop(ctx context.Context) error {
	s.cancel()
	for _, in := range s.instances {
		in.down()
		in.notifier.Stop()
	}
	s.mu.Lock()
	if s.control != nil {
		_ = s.control.Shutdown(ctx) // past ctx, the control API's last requests are cut
	}
	s.mu.Unlock()
	s.wg.Wait()
	return nil
}

func (s *Server) instance(channelID string) (*instance, error) {
	in, ok := s.instances[channelID]
	if !ok {
		return nil, fmt.Errorf("%w: %q", ErrNoChannel, channelID)
	}
	return in, nil
}

// ErrNoChannel: no simulator for that channel id.
var ErrNoChannel = errors.New("no simulated channel")

// Pay makes the payer pay an order at a channel.
func (s *Server) Pay(channelID, orderNo string) error {
	in, err := s.instance(channelID)
	if err != nil {
		return err
	}
	return in.sim.Pay(orderNo)
}

// Fail makes an order's payment fail at a channel.
func (s *Server) Fail(channelID, orderNo string) error {
	in, err := s.instance(channelID)
	if err != nil {
		return err
	}
	return in.sim.Fail(orderNo)
}

// SetFaults replaces a channel's faults; a Faults with only Channel set clears them.
func (s *Server) SetFaults(f Faults) error {
	in, err := s.instance(f.Channel)
	if err != nil {
		return err
	}
	if err := in.faults.set(f); err != nil {
		return err
	}
	if f.Down {
		in.down()
		return nil
	}
	return in.up()
}

// Faults lists the faults in force, by channel id.
func (s *Server) Faults() []Faults {
	out := make([]Faults, 0, len(s.order))
	for _, id := range s.order {
		f, _ := s.instances[id].faults.get()
		out = append(out, f)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Channel < out[j].Channel })
	return out
}

func (s *Server) scheduleAutoPay(channelID, orderNo string) {
	if s.autoPay.After <= 0 {
		return
	}
	s.rngMu.Lock()
	pay := s.rng.Float64() < s.autoPay.Ratio
	s.rngMu.Unlock()
	if !pay {
		return
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		if !sleepCtx(s.ctx, s.autoPay.After.D()) {
			return
		}
		if err := s.Pay(channelID, orderNo); err != nil && !errors.Is(err, ErrOrderState) {
			s.logger.Warn("auto-pay failed", zap.String("channel", channelID), zap.Error(err))
		}
	}()
}

// ControlHandler serves the control API:
//
//	POST /channels/{id}/orders/{order_no}/pay
//	POST /channels/{id}/orders/{order_no}/fail
//	POST /faults    (body: Faults)
//	GET  /faults
func (s *Server) ControlHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /channels/{id}/orders/{no}/{op}", func(w http.ResponseWriter, r *http.Request) {
		var err error
		switch r.PathValue("op") {
		case "pay":
			err = s.Pay(r.PathValue("id"), r.PathValue("no"))
		case "fail":
			err = s.Fail(r.PathValue("id"), r.PathValue("no"))
		default:
			http.NotFound(w, r)
			return
		}
		writeControlResult(w, err)
	})
	mux.HandleFunc("POST /faults", func(w http.ResponseWriter, r *http.Request) {
		var f Faults
		dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4096))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&f); err != nil {
			writeControlResult(w, fmt.Errorf("%w: %v", errBadRequest, err))
			return
		}
		if err := s.SetFaults(f); err != nil {
			if !errors.Is(err, ErrNoChannel) {
				err = fmt.Errorf("%w: %v", errBadRequest, err)
			}
			writeControlResult(w, err)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(f)
	})
	mux.HandleFunc("GET /faults", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(s.Faults())
	})
	return mux
}

var errBadRequest = errors.New("bad request")

func writeControlResult(w http.ResponseWriter, err error) {
	status := http.StatusOK
	msg := "ok"
	switch {
	case err == nil:
	case errors.Is(err, ErrNoOrder), errors.Is(err, ErrNoChannel):
		status, msg = http.StatusNotFound, err.Error()
	case errors.Is(err, ErrOrderState), errors.Is(err, ErrUnsupported):
		status, msg = http.StatusConflict, err.Error()
	case errors.Is(err, errBadRequest):
		status, msg = http.StatusBadRequest, err.Error()
	default:
		status, msg = http.StatusInternalServerError, err.Error()
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]string{"result": msg})
}
