package compare

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// TestReportHandlerRedirect calls the handler directly: a path without its
// trailing slash is redirected to the path the client sent, with the
// slash, unless a rewrite changed its last segment (then a redirect could
// loop, so it is a 404, as file_server reasons).
func TestReportHandlerRedirect(t *testing.T) {
	for _, tc := range []struct {
		sent, routed string // the client's path and query, the path after rewrites
		want         int
		location     string
	}{
		{"/ops/mirror-ui?a=1", "/ops/mirror-ui", http.StatusPermanentRedirect, "/ops/mirror-ui/?a=1"},
		{"/mirror%20ui", "/mirror ui", http.StatusPermanentRedirect, "/mirror%20ui/"},
		{"//evil", "//evil", http.StatusPermanentRedirect, "/evil/"},
		{"/report-page", "/mirror-ui", http.StatusNotFound, ""},
		{"/mirror-ui/report.json", "/mirror-ui/report.json", http.StatusNotFound, ""},
	} {
		orig := httptest.NewRequest(http.MethodGet, "/", nil)
		// as net/http's server parses it: //evil.example is a path
		u, err := url.ParseRequestURI(tc.sent)
		if err != nil {
			t.Fatal(err)
		}
		orig.URL, orig.RequestURI = u, tc.sent
		req := orig.Clone(context.WithValue(orig.Context(), caddyhttp.OriginalRequestCtxKey, *orig))
		req.URL.Path = tc.routed
		rec := httptest.NewRecorder()
		status := http.StatusOK
		if err := (ReportHandler{}).ServeHTTP(rec, req, nil); err != nil {
			var he caddyhttp.HandlerError
			if !errors.As(err, &he) {
				t.Fatalf("%s: %v", tc.sent, err)
			}
			status = he.StatusCode
		} else {
			status = rec.Code
		}
		if status != tc.want || rec.Header().Get("Location") != tc.location {
			t.Errorf("%s routed as %s: %d Location %q, want %d %q", tc.sent, tc.routed, status, rec.Header().Get("Location"), tc.want, tc.location)
		}
	}
}
