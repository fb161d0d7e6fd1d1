package gateway

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/paygate/paygate/adapters"
	"github.com/paygate/paygate/engine"
	"github.com/paygate/paygate/payment"
	"github.com/paygate/paygate/routing"
	"github.com/paygate/paygate/version"
)

// Metrics are paygate's Prometheus collectors. It is the adapters.Observer
// of every channel call, the notify observer and the engine's observer;
// /metrics serves Handler.
type Metrics struct {
	reg           *prometheus.Registry
	channelCalls  *prometheus.CounterVec
	channelTime   *prometheus.HistogramVec
	notifyDone    *prometheus.CounterVec
	notifyFailed  *prometheus.CounterVec
	notifyDead    *prometheus.CounterVec
	notifyLatency prometheus.Histogram
	reloads       *prometheus.CounterVec
	reconciled    *prometheus.CounterVec
	failovers     *prometheus.CounterVec
	payments      *prometheus.CounterVec
	riskDecisions *prometheus.CounterVec
	requests      *requestMetrics
}

// NewMetrics registers paygate's collectors (and the Go/process ones) on a
// fresh registry.
func NewMetrics() *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		channelCalls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "paygate_channel_calls_total", Help: "HTTP calls to payment channels by outcome.",
		}, []string{"channel", "op", "outcome"}),
		channelTime: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "paygate_channel_call_seconds", Help: "Latency of HTTP calls to payment channels.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"channel", "op"}),
		notifyDone: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "paygate_notifications_delivered_total", Help: "Merchant notifications acknowledged.",
		}, []string{"merchant"}),
		notifyFailed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "paygate_notification_attempts_failed_total", Help: "Merchant notification attempts that failed.",
		}, []string{"merchant"}),
		notifyDead: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "paygate_notifications_dead_lettered_total", Help: "Merchant notifications dead-lettered after the last retry.",
		}, []string{"merchant"}),
		notifyLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "paygate_notification_delivery_seconds", Help: "Latency of acknowledged merchant notifications.",
			Buckets: prometheus.DefBuckets,
		}),
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "paygate_config_reloads_total", Help: "Configuration reloads by result.",
		}, []string{"result"}),
		reconciled: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "paygate_reconciler_resolved_total", Help: "Pending payments and refunds the reconciler brought to a final status, by kind and status.",
		}, []string{"kind", "status"}),
		failovers: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "paygate_routing_failovers_total", Help: "Creates that moved from one channel to the next because the first provably did not create the order.",
		}, []string{"from", "to"}),
		payments: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "paygate_payments_total", Help: "Payments that reached a final status (succeeded, failed, closed), by channel; once per transition.",
		}, []string{"channel", "status"}),
		riskDecisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "paygate_risk_decisions_total", Help: "Risk rule decisions on payment creates: passed (the create was counted) or refused (the deciding rule).",
		}, []string{"rule", "outcome"}),
	}
	m.requests = newRequestMetrics()
	m.reg.MustRegister(m.channelCalls, m.channelTime, m.notifyDone, m.notifyFailed, m.notifyDead, m.notifyLatency, m.reloads, m.reconciled, m.failovers, m.payments, m.riskDecisions,
		m.requests.total, m.requests.duration, m.requests.auth,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	// The running build, as a constant 1 with its identity in the labels.
	bi := version.Get()
	build := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "paygate_build_info", Help: "The running build: module version, VCS revision and Go version; always 1.",
	}, []string{"version", "revision", "goversion"})
	build.WithLabelValues(bi.Version, bi.Revision, bi.GoVersion).Set(1)
	m.reg.MustRegister(build)
	return m
}

// RiskDecision counts a risk rule's decision (risk.Observer). Rule names
// come from the config, so the label stays bounded.
func (m *Metrics) RiskDecision(rule, outcome string) {
	m.riskDecisions.WithLabelValues(rule, outcome).Inc()
}

// Handler serves the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// ObserveCall implements adapters.Observer.
func (m *Metrics) ObserveCall(channel, op string, status int, d time.Duration, err error) {
	outcome := "http_" + strconv.Itoa(status)
	if err != nil {
		outcome = "error"
		var ce *adapters.Error
		if errors.As(err, &ce) {
			outcome = ce.Kind.String()
		}
	}
	m.channelCalls.WithLabelValues(channel, op, outcome).Inc()
	m.channelTime.WithLabelValues(channel, op).Observe(d.Seconds())
}

// Delivered, Failed and DeadLettered observe merchant notifications.
func (m *Metrics) Delivered(merchant string, attempt int, d time.Duration) {
	m.notifyDone.WithLabelValues(merchant).Inc()
	m.notifyLatency.Observe(d.Seconds())
}

// Failed counts a failed notification attempt.
func (m *Metrics) Failed(merchant string, attempt int, err error) {
	m.notifyFailed.WithLabelValues(merchant).Inc()
}

// DeadLettered counts a dead-lettered notification.
func (m *Metrics) DeadLettered(merchant string) { m.notifyDead.WithLabelValues(merchant).Inc() }

// Reloaded counts a configuration reload.
func (m *Metrics) Reloaded(ok bool) {
	if ok {
		m.reloads.WithLabelValues("ok").Inc()
	} else {
		m.reloads.WithLabelValues("refused").Inc()
	}
}

// Reconciled counts an object the reconciler brought to a final status
// (engine.Observer).
func (m *Metrics) Reconciled(kind, status string) { m.reconciled.WithLabelValues(kind, status).Inc() }

// Failover counts a create moving from one channel to the next
// (engine.Observer).
func (m *Metrics) Failover(from, to string) { m.failovers.WithLabelValues(from, to).Inc() }

// PaymentFinished counts a payment's transition to a final status
// (engine.Observer).
func (m *Metrics) PaymentFinished(channel string, status payment.Status) {
	m.payments.WithLabelValues(channel, string(status)).Inc()
}

// OutboxStatter reads the notification backlog (implemented by *store.Store).
type OutboxStatter interface {
	OutboxStats(ctx context.Context, merchant string) (pending, dead int64, err error)
}

// RegisterState adds the gauges read at scrape time: each channel's health
// score and breaker state, and each merchant's notification backlog and
// dead letters.
func (m *Metrics) RegisterState(router *routing.Router, st OutboxStatter, merchants func() []string) {
	m.reg.MustRegister(&stateCollector{router: router, st: st, merchants: merchants})
}

var (
	descScore   = prometheus.NewDesc("paygate_channel_score", "Channel health score in (0, 1], as routing uses it.", []string{"channel"}, nil)
	descBreaker = prometheus.NewDesc("paygate_channel_breaker_open", "1 while the channel's circuit breaker is open, 0.5 half-open, 0 closed.", []string{"channel"}, nil)
	descBacklog = prometheus.NewDesc("paygate_notifications_backlog", "Merchant notifications waiting for delivery.", []string{"merchant"}, nil)
	descDead    = prometheus.NewDesc("paygate_notifications_dead", "Dead-lettered merchant notifications.", []string{"merchant"}, nil)
)

type stateCollector struct {
	router    *routing.Router
	st        OutboxStatter
	merchants func() []string
}

func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descScore
	ch <- descBreaker
	ch <- descBacklog
	ch <- descDead
}

func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	for _, s := range c.router.Channels() {
		ch <- prometheus.MustNewConstMetric(descScore, prometheus.GaugeValue, s.Score, s.Channel)
		open := 0.0
		switch s.Breaker {
		case routing.BreakerOpen:
			open = 1
		case routing.BreakerHalfOpen:
			open = 0.5
		}
		ch <- prometheus.MustNewConstMetric(descBreaker, prometheus.GaugeValue, open, s.Channel)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	for _, id := range c.merchants() {
		pending, dead, err := c.st.OutboxStats(ctx, id)
		if err != nil {
			continue // the store is down: /readyz says so; leave the gauges out
		}
		ch <- prometheus.MustNewConstMetric(descBacklog, prometheus.GaugeValue, float64(pending), id)
		ch <- prometheus.MustNewConstMetric(descDead, prometheus.GaugeValue, float64(dead), id)
	}
}

// Request metrics of the merchant listener. Labels come from closed sets —
// the route pattern (never the path, which carries ids), a known HTTP
// method or "other", the status code — so no request can create a series.
// The children are resolved on first use and cached in fixed arrays: the hot
// path does an atomic load, not a label lookup, and /metrics shows only the
// series that saw a request.

// routes are the merchant listener's route patterns, as the request log
// names them without the verb; routeUnmatched is every other path.
var routes = [...]string{"unmatched", "/v1/payments", "/v1/payments/{id}", "/v1/payments/{id}/close",
	"/v1/payments/{id}/refunds", "/v1/refunds", "/v1/refunds/{id}", "/callbacks/{channel_id}"}

const routeUnmatched = 0

// routeIndex maps the request log's route ("GET /v1/payments/{id}", or the
// bare pattern for a 405 on /v1/payments) to its index in routes.
func routeIndex(logRoute string) int {
	for i := 0; i < len(logRoute); i++ {
		if logRoute[i] == ' ' {
			logRoute = logRoute[i+1:]
			break
		}
	}
	for i, r := range routes {
		if i != routeUnmatched && r == logRoute {
			return i
		}
	}
	return routeUnmatched
}

var httpMethods = [...]string{"GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "other"}

func methodIndex(m []byte) int {
	for i, k := range httpMethods[:len(httpMethods)-1] {
		if string(m) == k {
			return i
		}
	}
	return len(httpMethods) - 1
}

// authReasons are the 401 codes (CONTRACT §3).
var authReasons = [...]string{codeMissingAuth, codeUnknownMerchant, codeTimestampWindow, codeBadSignature, codeNonceReplayed}

// requestMetrics holds the request collectors and their cached children.
type requestMetrics struct {
	total    *prometheus.CounterVec
	duration *prometheus.HistogramVec
	auth     *prometheus.CounterVec

	// counters is indexed by route, method and status-100 (100–599; other
	// statuses are not cached).
	counters  [len(routes)][len(httpMethods)][500]atomic.Pointer[prometheus.Counter]
	observers [len(routes)][len(httpMethods)]atomic.Pointer[prometheus.Observer]
	reasons   [len(authReasons)]prometheus.Counter
}

func newRequestMetrics() *requestMetrics {
	r := &requestMetrics{
		total: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "paygate_http_requests_total", Help: "Merchant listener requests by route pattern, HTTP method and status code.",
		}, []string{"route", "method", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "paygate_http_request_duration_seconds", Help: "Merchant listener request latency by route pattern and HTTP method.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"route", "method"}),
		auth: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "paygate_auth_failures_total", Help: "Merchant requests refused with 401, by error code.",
		}, []string{"reason"}),
	}
	for i, reason := range authReasons {
		r.reasons[i] = r.auth.WithLabelValues(reason)
	}
	return r
}

// counter returns the cached child of paygate_http_requests_total.
func (r *requestMetrics) counter(route, method, status int) prometheus.Counter {
	if status < 100 || status > 599 {
		return r.total.WithLabelValues(routes[route], httpMethods[method], strconv.Itoa(status))
	}
	slot := &r.counters[route][method][status-100]
	if c := slot.Load(); c != nil {
		return *c
	}
	c := r.total.WithLabelValues(routes[route], httpMethods[method], strconv.Itoa(status))
	slot.Store(&c) // a racing first request stores the same child
	return c
}

// observer returns the cached child of paygate_http_request_duration_seconds.
func (r *requestMetrics) observer(route, method int) prometheus.Observer {
	slot := &r.observers[route][method]
	if o := slot.Load(); o != nil {
		return *o
	}
	o := r.duration.WithLabelValues(routes[route], httpMethods[method])
	slot.Store(&o)
	return o
}

// ObserveRequest counts one merchant listener request: its route (as the
// request log names it; "" when no route matched), method, status, the
// error it answered (for the 401 reason) and its latency.
func (m *Metrics) ObserveRequest(logRoute string, method []byte, status int, err error, d time.Duration) {
	r := m.requests
	route, meth := routeIndex(logRoute), methodIndex(method)
	r.counter(route, meth, status).Inc()
	r.observer(route, meth).Observe(d.Seconds())
	if status == http.StatusUnauthorized && err != nil {
		_, code, _ := statusOf(err)
		for i, reason := range authReasons {
			if reason == code {
				r.reasons[i].Inc()
			}
		}
	}
}

var (
	_ adapters.Observer = (*Metrics)(nil)
	_ engine.Observer   = (*Metrics)(nil)
)
