package gateway

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/paygate/paygate/adapters"
	"github.com/paygate/paygate/engine"
	"github.com/paygate/paygate/payment"
	"github.com/paygate/paygate/routing"
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
	}
	m.reg.MustRegister(m.channelCalls, m.channelTime, m.notifyDone, m.notifyFailed, m.notifyDead, m.notifyLatency, m.reloads, m.reconciled, m.failovers, m.payments,
		prometheus.NewGoCollector(), prometheus.NewProcessCollector(prometheus.ProcessCollectorOpts{}))
	return m
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

var (
	_ adapters.Observer = (*Metrics)(nil)
	_ engine.Observer   = (*Metrics)(nil)
)
