package gateway

import (
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/paygate/paygate/adapters"
)

// Metrics are paygate's Prometheus collectors. It is the adapters.Observer
// of every channel call and the notify observer; /metrics serves Handler.
type Metrics struct {
	reg           *prometheus.Registry
	channelCalls  *prometheus.CounterVec
	channelTime   *prometheus.HistogramVec
	notifyDone    *prometheus.CounterVec
	notifyFailed  *prometheus.CounterVec
	notifyDead    *prometheus.CounterVec
	notifyLatency prometheus.Histogram
	reloads       *prometheus.CounterVec
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
	}
	m.reg.MustRegister(m.channelCalls, m.channelTime, m.notifyDone, m.notifyFailed, m.notifyDead, m.notifyLatency, m.reloads,
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

var _ adapters.Observer = (*Metrics)(nil)
