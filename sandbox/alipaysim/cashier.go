package alipaysim

import (
	"fmt"
	"html"
	"net/http"
)

// cashier serves the browser entry point of page pay: the payer's browser
// opens the signed alipay.trade.page.pay URL (GET) or auto-submits it as a
// form (POST). The request is checked like an API call; only then does the
// trade exist (WAIT_BUYER_PAY). A URL whose time_expire has passed is
// refused. Errors are an HTML page with status 400
// naming Alipay's sub_code (real Alipay shows an error page too).
func (s *Sim) cashier(w http.ResponseWriter, p map[string]string) {
	if r := s.authenticate(p, func(m string) bool { return m == methodPagePay }, true); r != nil {
		cashierPage(w, http.StatusBadRequest, "Payment request refused", fmt.Sprintf("%s %s: %s", r.res.Code, r.res.SubCode, r.res.SubMsg))
		return
	}
	biz, err := bizFields(p["biz_content"])
	if err != nil {
		cashierPage(w, http.StatusBadRequest, "Payment request refused", "isv.invalid-parameter: "+err.Error())
		return
	}
	now := s.now()
	t, res, ok := order(biz, "FAST_INSTANT_TRADE_PAY", now)
	if ok && biz["product_code"] == "" {
		res, ok = invalidParameter("product_code"), false
	}
	if ok && !t.expireAt.IsZero() && now.After(t.expireAt) {
		res, ok = businessFailed("ACQ.TRADE_HAS_CLOSE", "交易已经关闭"), false
	}
	if !ok {
		cashierPage(w, http.StatusBadRequest, "Payment request refused", res.SubCode+": "+res.SubMsg)
		return
	}
	s.mu.Lock()
	created := false
	if old, exists := s.trades[t.outTradeNo]; exists {
		s.expire(old, now)
		if res, ok := reuse(old, t); !ok {
			s.mu.Unlock()
			cashierPage(w, http.StatusBadRequest, "Payment request refused", res.SubCode+": "+res.SubMsg)
			return
		}
		t = old
	} else {
		t.notifyURL = p["notify_url"]
		s.trades[t.outTradeNo] = t
		s.scan(t, now)
		created = true
	}
	tradeNo, amount, subject := t.tradeNo, t.amount, t.subject
	s.mu.Unlock()
	if created {
		s.env.OrderCreated(t.outTradeNo)
	}
	cashierPage(w, http.StatusOK, "Alipay cashier (paygate sandbox)",
		fmt.Sprintf("Trade %s for order %s: %s CNY, %q. Waiting for the payer; pay it with the sandbox pay control.",
			tradeNo, t.outTradeNo, yuan(amount), subject))
}

func cashierPage(w http.ResponseWriter, status int, title, text string) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	fmt.Fprintf(w, "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>%s</title></head>\n<body><h1>%s</h1><p>%s</p></body></html>\n",
		html.EscapeString(title), html.EscapeString(title), html.EscapeString(text))
}
