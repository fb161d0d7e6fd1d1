package gateway

import (
	"net/http"
	"sort"
	"strings"

	"go.uber.org/zap"
)

// The admin audit log: one line (logger "gateway.admin.audit") for every
// request to /admin/* — reloads, replays, sandbox controls and faults, reads
// too — saying what was asked, what came of it and from where, and one for
// every request whose admin token was refused. The token is never logged,
// nor is any request body; the path (which names an event or a payment id)
// and the query's parameter names are.

// statusRecorder remembers the status a handler wrote, and what the handler
// noted about the action for the audit line (auditNote).
type statusRecorder struct {
	http.ResponseWriter
	status int
	detail string
}

// auditNote adds detail to the audit line of the admin request w answers
// (for example the fault settings a sandbox call applied).
func auditNote(w http.ResponseWriter, detail string) {
	if r, ok := w.(*statusRecorder); ok {
		r.detail = detail
	}
}

func (r *statusRecorder) WriteHeader(code int) {
	r.status = code
	r.ResponseWriter.WriteHeader(code)
}

// auditResult sums up an admin response's status for people.
func auditResult(status int) string {
	switch {
	case status < 300:
		return "done"
	case status < 500:
		return "refused"
	}
	return "failed"
}

// auditAction logs one authorized admin request.
func (a *Admin) auditAction(r *http.Request, rec *statusRecorder, reqID string) {
	status := rec.status
	a.audit.Info("admin action",
		zap.String("action", r.Method+" "+r.URL.Path),
		zap.String("detail", rec.detail),
		zap.String("params", queryNames(r)),
		zap.String("result", auditResult(status)),
		zap.Int("status", status),
		zap.String("remote", r.RemoteAddr),
		zap.String("request_id", reqID))
}

// auditRefused logs a request to /admin/* whose token was missing or wrong.
func (a *Admin) auditRefused(r *http.Request, reqID string) {
	why := "wrong token"
	if _, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); !ok {
		why = "no bearer token"
	}
	a.audit.Warn("admin token refused",
		zap.String("action", r.Method+" "+r.URL.Path),
		zap.String("reason", why),
		zap.String("remote", r.RemoteAddr),
		zap.String("request_id", reqID))
}

// queryNames lists the query's parameter names (not their values, which may
// be a merchant's data), comma-separated.
func queryNames(r *http.Request) string {
	q := r.URL.Query()
	names := make([]string, 0, len(q))
	for k := range q {
		names = append(names, k)
	}
	sort.Strings(names)
	return strings.Join(names, ",")
}
