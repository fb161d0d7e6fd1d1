package sandbox

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"sync"
	"time"

	"go.uber.org/zap"
)

// Notifier delivers one simulator's asynchronous notifications the way its
// channel does: POST now, and until acknowledged again after each interval of
// the channel's schedule (divided by the time scale). It owns its goroutines:
// Stop cancels and waits for them.
type Notifier struct {
	channel  string
	schedule []time.Duration
	scale    float64
	client   *http.Client
	drop     func() bool // the drop_callbacks fault
	logger   *zap.Logger

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// NewNotifier returns a Notifier; scale ≤ 0 means 1 (real time).
func NewNotifier(channel string, schedule []time.Duration, scale float64, drop func() bool, logger *zap.Logger) *Notifier {
	if scale <= 0 {
		scale = 1
	}
	if drop == nil {
		drop = func() bool { return false }
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Notifier{
		channel: channel, schedule: schedule, scale: scale, drop: drop, logger: logger,
		client: &http.Client{
			Timeout:       5 * time.Second,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		ctx: ctx, cancel: cancel,
	}
}

// Send delivers a notification. acked decides from the merchant's answer
// whether it was acknowledged (each channel has its own rule). While the
// drop_callbacks fault is on, the notification is never sent.
func (n *Notifier) Send(url string, header http.Header, body []byte, acked func(status int, body []byte) bool) {
	n.SendFresh(url, func() http.Header { return header }, body, acked)
}

// SendFresh is Send with headers made anew for every attempt, for channels
// that sign each delivery with its own timestamp (WeChat Pay: a resend more
// than five minutes after the first would otherwise fail the skew check).
func (n *Notifier) SendFresh(url string, header func() http.Header, body []byte, acked func(status int, body []byte) bool) {
	if n.drop() {
		n.logger.Info("sandbox notification dropped by fault", zap.String("channel", n.channel))
		return
	}
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		for attempt := 0; ; attempt++ {
			if n.try(url, header(), body, acked) {
				return
			}
			if attempt >= len(n.schedule) {
				n.logger.Warn("sandbox notification gave up", zap.String("channel", n.channel), zap.Int("attempts", attempt+1))
				return
			}
			if !sleepCtx(n.ctx, time.Duration(float64(n.schedule[attempt])/n.scale)) {
				return
			}
		}
	}()
}

func (n *Notifier) try(url string, header http.Header, body []byte, acked func(int, []byte) bool) bool {
	req, err := http.NewRequestWithContext(n.ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return false
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := n.client.Do(req)
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	return acked(resp.StatusCode, b)
}

// Stop cancels pending retries and waits for in-flight deliveries.
func (n *Notifier) Stop() {
	n.cancel()
	n.wg.Wait()
}
