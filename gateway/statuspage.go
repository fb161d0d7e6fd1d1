package gateway

import (
	"bytes"
	"context"
	"fmt"
	"html/template"
	"net/http"
	"time"

	"github.com/paygate/paygate/risk"
	"github.com/paygate/paygate/routing"
)

// The status page (GET / on the admin listener): a page for people, rendered
// with html/template, which escapes every value for its context (a rule name
// or a refused reload's message is operator text and may hold markup). It
// reloads itself every statusRefresh so that it can be left open on a screen.

// defaultStatusRefresh is how often the page reloads itself.
const defaultStatusRefresh = 5 * time.Second

// statusView is everything the page shows.
type statusView struct {
	Now        time.Time
	Version    string
	RefreshSec int
	Channels   []routing.ChannelStatus
	Rules      []routing.RuleInfo
	Risk       []risk.RuleInfo
	Reload     *ReloadStatus // nil: no reload function wired
	Merchants  []merchantBacklog
}

// merchantBacklog is one merchant's notification backlog; OK is false when
// the store could not be asked.
type merchantBacklog struct {
	ID            string
	Pending, Dead int64
	OK            bool
}

var statusFuncs = template.FuncMap{
	"pct":  func(f float64) string { return fmt.Sprintf("%.1f%%", f*100) },
	"ms":   func(f float64) string { return fmt.Sprintf("%.0f ms", f) },
	"f3":   func(f float64) string { return fmt.Sprintf("%.3f", f) },
	"when": func(t time.Time) string { return t.UTC().Format(time.RFC3339) },
	"summary": func(cs []routing.RuleChannel) string {
		return channelsSummary(cs)
	},
}

var statusTemplate = template.Must(template.New("status").Funcs(statusFuncs).Parse(`<!doctype html>
<html><head><meta charset="utf-8"><meta http-equiv="refresh" content="{{.RefreshSec}}">
<title>paygate status</title>
<style>
body{font-family:system-ui,sans-serif;margin:2em;color:#222}
table{border-collapse:collapse;margin-bottom:2em}
td,th{border:1px solid #ccc;padding:4px 10px;text-align:left}
th{background:#f3f3f3}
.breaker.closed{color:rgb(0,119,0)}
.breaker.half-open{color:rgb(153,85,0);background:rgb(255,240,200)}
.breaker.open{color:rgb(187,0,0);font-weight:bold}
.nodata{color:rgb(136,136,136);font-style:italic}
header p{color:#555}
</style></head><body>
<header><h1>paygate</h1>
<p>version <span id="version">{{.Version}}</span> · as of <time id="now" datetime="{{when .Now}}">{{when .Now}}</time> · refreshes every {{.RefreshSec}} s</p></header>
<h2>Channels</h2>
<table id="channels"><thead><tr><th>channel</th><th>score</th><th>breaker</th><th>success rate</th><th>p50</th><th>p99</th><th>failovers</th></tr></thead><tbody>
{{range .Channels}}<tr data-channel="{{.Channel}}"><td>{{.Channel}}</td><td>{{f3 .Score}}</td><td class="breaker {{.Breaker}}">{{.Breaker}}</td>
{{- if eq .Samples 0}}<td class="nodata" colspan="3">no data</td>{{else}}<td>{{pct .SuccessRate}}</td><td>{{ms .P50MS}}</td><td>{{ms .P99MS}}</td>{{end -}}
<td>{{.FailoversRecent}}</td></tr>
{{end}}</tbody></table>
<h2>Routing rules</h2>
<table id="rules"><thead><tr><th>rule</th><th>when</th><th>channels</th></tr></thead><tbody>
{{range .Rules}}<tr><td>{{.Name}}</td><td>{{.Match}}</td><td>{{summary .Channels}}</td></tr>
{{end}}</tbody></table>
<h2>Risk rules</h2>
<p>Thresholds and blocklists are not shown here (this page needs no token); <code>/admin/risk/explain</code> shows them.</p>
<table id="risk"><thead><tr><th>rule</th><th>kind</th><th>when</th></tr></thead><tbody>
{{range .Risk}}<tr><td>{{.Name}}</td><td>{{.Kind}}</td><td>{{.When}}</td></tr>
{{else}}<tr><td colspan="3">none</td></tr>
{{end}}</tbody></table>
<h2>Configuration</h2>
{{with .Reload}}{{if .At.IsZero}}<p id="reload">no reload since start</p>{{else if .OK}}<p id="reload">last reload {{when .At}}: ok</p>{{else}}<p id="reload">last reload {{when .At}}: refused: {{.Error}}</p>{{end}}{{end}}
<h2>Notifications</h2>
<table id="notifications"><thead><tr><th>merchant</th><th>backlog</th><th>dead letters</th></tr></thead><tbody>
{{range .Merchants}}<tr><td>{{.ID}}</td>{{if .OK}}<td>{{.Pending}}</td><td>{{.Dead}}</td>{{else}}<td colspan="2">store unavailable</td>{{end}}</tr>
{{end}}</tbody></table>
</body></html>
`))

// renderStatus writes the page for v; it renders into a buffer first so that
// a template error is a 500, not half a page.
func renderStatus(w http.ResponseWriter, v *statusView) {
	var b bytes.Buffer
	if err := statusTemplate.Execute(&b, v); err != nil {
		http.Error(w, "status page: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Write(b.Bytes())
}

// statusPage is the people's page: channels, rules, last reload,
// notification backlog.
func (a *Admin) statusPage(w http.ResponseWriter, r *http.Request) {
	v := &statusView{Now: a.s.now(), Version: a.version, RefreshSec: int(a.refresh / time.Second),
		Channels: a.s.router.Channels(), Rules: a.s.router.Rules(), Risk: a.s.risk.Table().Rules()}
	if v.RefreshSec < 1 {
		v.RefreshSec = 1
	}
	if a.lastReload != nil {
		st := a.lastReload()
		v.Reload = &st
	}
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	for _, m := range a.s.Merchants() {
		pending, dead, err := a.st.OutboxStats(ctx, m.ID)
		v.Merchants = append(v.Merchants, merchantBacklog{ID: m.ID, Pending: pending, Dead: dead, OK: err == nil})
	}
	renderStatus(w, v)
}
