package compare

import (
	"fmt"
	"net/http"

	"github.com/caddyserver/caddy/v2"
)

func init() {
	caddy.RegisterModule(adminAPI{})
}

// adminAPI is the admin.api.mirror module. It serves the comparison
// report of every target that compares its responses:
//
//	GET    /mirror/report  the report as JSON
//	DELETE /mirror/report  forget everything recorded so far
//	GET    /mirror/        the same report as an HTML page
//
// Like every admin.api module it is loaded with the admin endpoint, and
// needs no configuration.
type adminAPI struct{}

// CaddyModule returns the Caddy module information.
func (adminAPI) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "admin.api.mirror",
		New: func() caddy.Module { return new(adminAPI) },
	}
}

// Routes implements caddy.AdminRouter.
func (a adminAPI) Routes() []caddy.AdminRoute {
	return []caddy.AdminRoute{
		{Pattern: "/mirror/", Handler: caddy.AdminHandlerFunc(a.serve)},
	}
}

func (adminAPI) serve(w http.ResponseWriter, r *http.Request) error {
	switch r.URL.Path {
	case "/mirror/report":
		switch r.Method {
		case http.MethodGet:
			return WriteReportJSON(w)
		case http.MethodDelete:
			reports.Range(func(_, v any) bool {
				v.(*comparisonReport).reset()
				return true
			})
			w.WriteHeader(http.StatusNoContent)
			return nil
		}
	case "/mirror/", "/mirror/index.html":
		if r.Method == http.MethodGet {
			return WriteReportPage(w, false)
		}
	default:
		return caddy.APIError{HTTPStatus: http.StatusNotFound, Err: fmt.Errorf("no such mirror endpoint: %s", r.URL.Path)}
	}
	w.Header().Set("Allow", "GET, DELETE")
	return caddy.APIError{HTTPStatus: http.StatusMethodNotAllowed, Err: fmt.Errorf("method %s not allowed", r.Method)}
}

// Interface guards
var (
	_ caddy.AdminRouter = (*adminAPI)(nil)
	_ caddy.Destructor  = (*comparisonReport)(nil)
)
