package compare

import (
	"fmt"
	"net/http"
	"path"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

func init() {
	caddy.RegisterModule(ReportHandler{})
	httpcaddyfile.RegisterHandlerDirective("mirror_report", parseReportCaddyfile)
	httpcaddyfile.RegisterDirectiveOrder("mirror_report", httpcaddyfile.After, "metrics")
}

// ReportHandler serves this instance's comparison report, the same as the
// admin API's /mirror/ endpoints, on a site route, so that a browser can
// open it behind the site's authentication (basic_auth, forward_auth).
// Mounted under any path prefix, it serves:
//
//	GET <prefix>/            the report as an HTML page
//	GET <prefix>/index.html  the same page
//	GET <prefix>/report      the report as JSON
//	GET <prefix>             308 to <prefix>/, the query kept
//
// The redirect is file_server's for a directory asked for without its
// trailing slash: the page's links are relative, so it must be served at
// a path that ends in a slash. The handler does not know its prefix, so
// any path it gets whose last segment is neither report nor index.html
// and has no dot in it is taken for a directory of the page and
// redirected; one with a dot (favicon.ico, report.json) is a file that
// does not exist, a 404. It only sees the requests routed to it: with
// handle /mirror-ui/*, /mirror-ui never reaches it; handle /mirror-ui*
// does.
//
// It is read-only: resetting the report stays with the admin API's
// DELETE /mirror/report. It responds to every request it gets, as the
// metrics handler does, and needs no configuration.
type ReportHandler struct{}

// CaddyModule returns the Caddy module information.
func (ReportHandler) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.mirror_report",
		New: func() caddy.Module { return new(ReportHandler) },
	}
}

// ServeHTTP implements caddyhttp.MiddlewareHandler.
func (ReportHandler) ServeHTTP(w http.ResponseWriter, r *http.Request, _ caddyhttp.Handler) error {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		return caddyhttp.Error(http.StatusMethodNotAllowed, fmt.Errorf("method %s not allowed", r.Method))
	}
	switch p := r.URL.Path; {
	case path.Base(p) == "report":
		return WriteReportJSON(w)
	case path.Base(p) == "index.html", strings.HasSuffix(p, "/"):
		return WriteReportPage(w, true)
	case !strings.Contains(path.Base(p), "."):
		return redirectToSlash(w, r)
	default:
		return caddyhttp.Error(http.StatusNotFound, fmt.Errorf("no such mirror report endpoint: %s", r.URL.Path))
	}
}

// redirectToSlash redirects r to its path with a trailing slash, keeping
// the query, with 308 as file_server does for a directory. The location is
// built from the request as the client sent it, before any rewrite or
// handle_path stripped it; where a rewrite changed the last segment, no
// redirect is made (it could loop, as file_server also reasons), and the
// path is a 404.
func redirectToSlash(w http.ResponseWriter, r *http.Request) error {
	orig, ok := r.Context().Value(caddyhttp.OriginalRequestCtxKey).(http.Request)
	if !ok || orig.URL == nil || path.Base(orig.URL.Path) != path.Base(r.URL.Path) {
		return caddyhttp.Error(http.StatusNotFound, fmt.Errorf("no such mirror report endpoint: %s", r.URL.Path))
	}
	to := orig.URL.EscapedPath() + "/"
	for strings.HasPrefix(to, "//") { // no open redirect to //host/
		to = strings.TrimPrefix(to, "/")
	}
	if orig.URL.RawQuery != "" {
		to += "?" + orig.URL.RawQuery
	}
	http.Redirect(w, r, to, http.StatusPermanentRedirect)
	return nil
}

// UnmarshalCaddyfile sets up the handler from Caddyfile tokens. Syntax:
//
//	mirror_report
//
// It takes no arguments and no block.
func (h *ReportHandler) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // consume directive name
	if d.NextArg() {
		return d.ArgErr()
	}
	if d.NextBlock(0) {
		return d.Errf("mirror_report takes no block, got '%s'", d.Val())
	}
	return nil
}

// parseReportCaddyfile unmarshals the mirror_report directive.
func parseReportCaddyfile(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	rh := new(ReportHandler)
	err := rh.UnmarshalCaddyfile(h.Dispenser)
	return rh, err
}

// Interface guards
var (
	_ caddyhttp.MiddlewareHandler = (*ReportHandler)(nil)
	_ caddyfile.Unmarshaler       = (*ReportHandler)(nil)
)
