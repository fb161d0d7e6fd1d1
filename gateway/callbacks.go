package gateway

import (
	"context"
	"net/http"

	"github.com/valyala/fasthttp"
	"go.uber.org/zap"

	"github.com/paygate/paygate/adapters"
)

// callback serves POST /callbacks/{channel_id} (CONTRACT §6). The adapter
// verifies (and decrypts) the raw bytes before anything is decoded; only a
// verified notification reaches the engine, which changes state exactly
// once; the answer is in the channel's own success or failure form. A
// notification that fails verification can only make the engine ask the
// channel sooner about the payment it names.
func (s *Server) callback(ctx *fasthttp.RequestCtx, chID string, rl *reqLog) error {
	table := s.router.Table()
	ch, ok := table.Channel(chID)
	if !ok {
		return apiErr(http.StatusNotFound, codeNotFound, "no channel %s", chID)
	}
	np, ok := ch.(adapters.NotifyParser)
	if !ok {
		return apiErr(http.StatusNotFound, codeNotFound, "channel %s takes no callbacks", chID)
	}
	cb := &adapters.Callback{Header: http.Header{}, Body: append([]byte(nil), ctx.PostBody()...), ContentType: string(ctx.Request.Header.ContentType())}
	for k, v := range ctx.Request.Header.All() {
		cb.Header.Add(string(k), string(v))
	}
	n, err := np.ParseNotify(rl.ctx, cb)
	if err == nil {
		var pid string
		// Applied to its end whatever the request's deadline.
		pid, err = s.eng.ApplyNotification(context.Background(), chID, n)
		rl.paymentID = pid
	}
	if err != nil {
		rl.err = err
		s.logger.Warn("channel notification refused", zap.String("channel", chID), zap.Error(err))
		if ce, ok := adapters.AsError(err); ok && ce.Kind == adapters.KindBadSignature {
			if h, ok := ch.(adapters.NotifyHinter); ok {
				s.eng.QueryOnHint(rl.ctx, h.NotifyHint(cb))
			}
		}
	}
	ack := np.Ack(err)
	ctx.SetStatusCode(ack.Status)
	if ack.ContentType != "" {
		ctx.SetContentType(ack.ContentType)
	}
	ctx.SetBody(ack.Body)
	return nil
}
