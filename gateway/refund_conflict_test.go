package gateway_test

import (
	"context"
	"net/http"
	"testing"

	"github.com/paygate/paygate/adapters"
	"github.com/paygate/paygate/adapters/wechatpay"
)

// conflictOnRefund is the WeChat adapter, except that a refund is answered
// as ACP answers a resend: "duplicate refund number" (KindConflict).
type conflictOnRefund struct{ *wechatpay.Client }

func (c conflictOnRefund) Refund(context.Context, *adapters.RefundRequest) (*adapters.RefundState, error) {
	return nil, &adapters.Error{Channel: c.ID(), Op: "refund", Kind: adapters.KindConflict, Code: "12", Message: "duplicate transaction"}
}

// A conflict answer to a refund means the refund may exist: it stays
// pending (its amount reserved) for the query to decide, never failed
// (which would release the amount for a second refund of the same money).
func TestRefundConflictStaysPending(t *testing.T) {
	wrapChannel = func(c *wechatpay.Client) adapters.Channel { return conflictOnRefund{c} }
	t.Cleanup(func() { wrapChannel = nil })
	e := newEnv(t)
	r := e.sg.do(t, e.in.url, http.MethodPost, "/v1/payments", paymentBody("conflict-1", 1000, "wechat_native"), reqOpts{})
	if r.status != 201 {
		t.Fatalf("create: %d %s", r.status, r.body)
	}
	id := r.json(t)["payment_id"].(string)
	if err := e.sim.sim.Pay(id[len("pay_"):]); err != nil {
		t.Fatal(err)
	}
	if g := e.sg.do(t, e.in.url, http.MethodGet, "/v1/payments/"+id, nil, reqOpts{}); g.json(t)["status"] != "succeeded" {
		t.Fatalf("payment: %s", g.body)
	}
	rf := e.sg.do(t, e.in.url, http.MethodPost, "/v1/payments/"+id+"/refunds", []byte(`{"out_refund_no":"c-1","amount":600}`), reqOpts{})
	if rf.status != 201 || rf.json(t)["status"] != "pending" {
		t.Fatalf("refund answered conflict: %d %s, want 201 pending", rf.status, rf.body)
	}
	// Its 600 stay reserved: 500 more would exceed the payment.
	if r := e.sg.do(t, e.in.url, http.MethodPost, "/v1/payments/"+id+"/refunds", []byte(`{"out_refund_no":"c-2","amount":500}`), reqOpts{}); r.status != 422 || r.errCode(t) != "refund_exceeds_payment" {
		t.Fatalf("second refund: %d %s", r.status, r.body)
	}
}
