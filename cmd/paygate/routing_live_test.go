package main

import (
	"bufio"
	"bytes"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/paygate/paygate/store/storetest"
)

// TestLiveRoutingUnderFaults checks docs/routing.md's simulation against
// the real gateway and simulators: the shipped default-qr rule and breaker,
// 40 payments/s, the sandbox faults API switching wechat-main down, back, to
// a 30% error rate, back, and to 2s latency. It prints, per phase, the share
// of creates (paygate_channel_calls_total{op="create"}) that went to
// wechat-main and the share of 201 answers. It takes about three minutes
// and a core, so it runs only with PAYGATE_LIVE_ROUTING=1; it asserts
// nothing about timing (the figures are for people, see docs/routing.md).
func TestLiveRoutingUnderFaults(t *testing.T) {
	if os.Getenv("PAYGATE_LIVE_ROUTING") == "" {
		t.Skip("set PAYGATE_LIVE_ROUTING=1 to drive the gateway under faults for ~3 minutes")
	}
	rs := storetest.Redis(t)
	g := startE2E(t, e2eOpts{redisAddr: rs.Addr(), timeout: "3s",
		breaker: "{min_requests: 20, failure_ratio: 0.5, open_for: 10s, half_open_requests: 5, interval: 30s}"})
	notifyURL := newMerchantSite(t).url()

	type phase struct {
		at    time.Duration
		fault string
		name  string
	}
	phases := []phase{
		{0, `{"channel": "wechat-main"}`, "healthy"},
		{15 * time.Second, `{"channel": "wechat-main", "down": true}`, "down"},
		{45 * time.Second, `{"channel": "wechat-main"}`, "cleared after down"},
		{75 * time.Second, `{"channel": "wechat-main", "error_rate": 0.3}`, "error rate 0.3"},
		{115 * time.Second, `{"channel": "wechat-main"}`, "cleared"},
		{125 * time.Second, `{"channel": "wechat-main", "latency": "2s"}`, "latency 2s"},
	}
	const (
		rate = 40
		end  = 170 * time.Second
	)
	type second struct{ payments, created, wx, all atomic.Int64 }
	secs := make([]second, int(end/time.Second)+1)

	var wg sync.WaitGroup
	start := time.Now()
	next := 0
	prevWX, prevAll := g.createCalls()
	tick := time.NewTicker(time.Second / rate)
	defer tick.Stop()
	lastSec := 0
	for i := 0; ; i++ {
		<-tick.C
		el := time.Since(start)
		if el >= end {
			break
		}
		if next < len(phases) && el >= phases[next].at {
			g.faults(phases[next].fault)
			next++
		}
		sec := int(el / time.Second)
		if sec != lastSec { // scrape once a second: creates of the last one
			wx, all := g.createCalls()
			secs[lastSec].wx.Store(wx - prevWX)
			secs[lastSec].all.Store(all - prevAll)
			prevWX, prevAll, lastSec = wx, all, sec
		}
		s := &secs[sec]
		s.payments.Add(1)
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			r := g.call(http.MethodPost, "/v1/payments", map[string]any{
				"out_trade_no": fmt.Sprintf("live-%d", i), "amount": 100, "currency": "CNY", "method": "qr",
				"subject": "Coffee", "notify_url": notifyURL,
			})
			if r.Status == http.StatusCreated {
				s.created.Add(1)
			}
		}(i)
	}
	wg.Wait()

	var b strings.Builder
	b.WriteString("| phase | since its start | wechat-main share of creates | 201 share |\n|---|---|---|---|\n")
	for k, p := range phases {
		stop := end
		if k+1 < len(phases) {
			stop = phases[k+1].at
		}
		for from := p.at; from < stop; from += 5 * time.Second {
			var pay, created, wx, all int64
			for s := int(from / time.Second); s < int(min(from+5*time.Second, stop)/time.Second); s++ {
				pay += secs[s].payments.Load()
				created += secs[s].created.Load()
				wx += secs[s].wx.Load()
				all += secs[s].all.Load()
			}
			if pay == 0 {
				continue
			}
			fmt.Fprintf(&b, "| %s | %d–%d s | %.1f%% | %.1f%% |\n", p.name, int((from-p.at)/time.Second),
				int((min(from+5*time.Second, stop)-p.at)/time.Second), 100*float64(wx)/float64(max(all, 1)), 100*float64(created)/float64(pay))
		}
	}
	t.Log("\n" + b.String())
}

// createCalls sums paygate_channel_calls_total{op="create"}: wechat-main's
// and all channels'.
func (g *running) createCalls() (wx, all int64) {
	g.t.Helper()
	r := g.adminCall(http.MethodGet, "/metrics", "")
	sc := bufio.NewScanner(bytes.NewReader(r.Body))
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "paygate_channel_calls_total{") || !strings.Contains(line, `op="create"`) {
			continue
		}
		f := strings.Fields(line)
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		if err != nil {
			continue
		}
		all += int64(v)
		if strings.Contains(line, `channel="wechat-main"`) {
			wx += int64(v)
		}
	}
	return wx, all
}
