package compare

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/caddyserver/caddy/v2"
)

// An endpoint is what a compared exchange is counted under besides its
// target: a method and a path template, such as "GET /users/{id}". Its
// name comes from, in this order:
//
//   - the target's endpoint_from placeholder, when it is not empty for
//     the request (as Diffy's Canonical-Resource header);
//   - the first of the target's endpoints patterns that matches, with
//     net/http.ServeMux's syntax and precedence;
//   - for gRPC, the method's path, /package.Service/Method;
//   - the template its target's pathLearner learns from the path.
//
// A target counts at most max_endpoints endpoints, and every further one
// under otherEndpoints.
const otherEndpoints = "(other endpoints)"

const (
	defaultMaxEndpoints = 64
	maxMaxEndpoints     = 1000
)

// endpointPattern is a pattern's handler in a config's ServeMux: the mux
// only finds which pattern matches.
type endpointPattern struct {
	name      string
	hasMethod bool
}

// ServeHTTP implements http.Handler; it is never served.
func (endpointPattern) ServeHTTP(http.ResponseWriter, *http.Request) {}

// compileEndpoints makes the ServeMux that matches a request to the
// first of patterns, by ServeMux's rules; nil when there are none.
func compileEndpoints(patterns []string) (*http.ServeMux, error) {
	if len(patterns) == 0 {
		return nil, nil
	}
	mux := http.NewServeMux()
	for i, p := range patterns {
		if err := addEndpoint(mux, p); err != nil {
			return nil, fmt.Errorf("compare.endpoints[%d]: %q %v", i, p, err)
		}
	}
	return mux, nil
}

// addEndpoint adds pattern p to mux, or says why it is not one.
func addEndpoint(mux *http.ServeMux, p string) (err error) {
	method, path, hasMethod := strings.Cut(p, " ")
	if !hasMethod {
		path = method
	}
	path = strings.TrimLeft(path, " \t")
	if !strings.HasPrefix(path, "/") {
		return fmt.Errorf("is not an endpoint pattern: [<method>] /<path>, without a host")
	}
	defer func() {
		if v := recover(); v != nil { // ServeMux panics on a bad pattern
			err = fmt.Errorf("is not a valid pattern: %v", v)
		}
	}()
	mux.Handle(p, endpointPattern{name: p, hasMethod: hasMethod})
	return nil
}

// checkEndpoint checks an endpoint pattern of compare.endpoints, as the
// Caddyfile reads it.
func checkEndpoint(p string) error {
	return addEndpoint(http.NewServeMux(), p)
}

// EndpointHint resolves the config's endpoint_from placeholder for r. It
// runs on the request path, before any copy's goroutine starts; "" when
// the target has none or it is empty for r.
func (c *Config) EndpointHint(r *http.Request) string {
	if c.EndpointFrom == "" {
		return ""
	}
	repl, ok := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
	if !ok {
		return ""
	}
	return clip(repl.ReplaceKnown(c.EndpointFrom, ""))
}

// maxEndpointName bounds the part of an endpoint's name that is not
// learnt: a placeholder's value, a gRPC method.
const maxEndpointName = 256

// clip cuts s to maxEndpointName bytes.
func clip(s string) string {
	if len(s) > maxEndpointName {
		return cutTo(s, maxEndpointName)
	}
	return s
}

// SetEndpointHint gives the response's comparison the endpoint named by
// its target's endpoint_from for the request (see Config.EndpointHint).
// It must be called before the copy starts.
func (c *Response) SetEndpointHint(hint string) {
	c.endpointHint = hint
}

// namedEndpoint returns the endpoint that the exchange's method and path
// name by c's rules, before learning: from hint, a pattern, or gRPC;
// "" when its template is to be learnt.
func (c *Config) namedEndpoint(method, path, hint string, grpc bool) string {
	if hint != "" {
		return method + " " + hint
	}
	if c.endpointMux != nil {
		u := &url.URL{RawPath: path}
		u.Path, _ = url.PathUnescape(path)
		if h, _ := c.endpointMux.Handler(&http.Request{Method: method, URL: u}); h != nil {
			if e, ok := h.(endpointPattern); ok {
				if e.hasMethod {
					return e.name
				}
				return method + " " + e.name
			}
		}
	}
	if grpc {
		return method + " " + clip(path)
	}
	return ""
}
