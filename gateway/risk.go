package gateway

import (
	"net/http"
	"net/netip"
	"strconv"

	"github.com/paygate/paygate/payment"
	"github.com/paygate/paygate/risk"
)

// riskExplain serves GET /admin/risk/explain?merchant=&method=&amount=&openid=&client_ip=:
// what the risk rules would decide of such a payment now, counting nothing.
func (a *Admin) riskExplain(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	req := risk.Request{Merchant: q.Get("merchant"), Method: payment.Method(q.Get("method")), OpenID: q.Get("openid"), ClientIP: q.Get("client_ip")}
	if _, ok := a.s.snap.Load().merchants[req.Merchant]; !ok {
		a.fail(w, invalid("merchant", "unknown merchant %q", req.Merchant))
		return
	}
	if !req.Method.Valid() {
		a.fail(w, invalid("method", "unknown method %q", q.Get("method")))
		return
	}
	v, err := strconv.ParseInt(q.Get("amount"), 10, 64)
	if err != nil || v < 1 {
		a.fail(w, invalid("amount", "must be an integer ≥ 1"))
		return
	}
	req.Amount = v
	if req.ClientIP != "" {
		if _, err := netip.ParseAddr(req.ClientIP); err != nil {
			a.fail(w, invalid("client_ip", "must be an IP address"))
			return
		}
	}
	ex, err := a.s.risk.Explain(r.Context(), req)
	if err != nil {
		a.fail(w, err)
		return
	}
	writeAdminJSON(w, http.StatusOK, ex)
}
