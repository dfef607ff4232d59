package mirror

import (
	"net"
	"net/http"
	"net/textproto"
	"net/url"
	"strconv"
	"strings"

	"golang.org/x/net/http/httpguts"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// newCopy prepares the request that will be sent to t: a verbatim copy of
// r's method, path, raw query and headers, addressed to t's replica rep, with
// the forwarding and marker headers set and t's header edits applied. Every
// placeholder is resolved here, on the request path. The copy shares no
// mutable state with r but its trailers: r's announced trailer map, which
// net/http fills in before the body's end, before the copy is sent, and
// which the copy only reads.
//
// Like reverse_proxy's prepareRequest, it keeps TE: trailers, adds Via,
// and Early-Data for a request that arrived in TLS early data.
func (t *Target) newCopy(r *http.Request, rep *replica) *http.Request {
	hdr := r.Header.Clone()
	if hdr == nil {
		hdr = make(http.Header)
	}
	removeHopByHopHeaders(hdr)
	if _, ok := hdr["User-Agent"]; !ok {
		// keep Go's transport from adding its own
		hdr["User-Agent"] = []string{""}
	}
	if r.TLS != nil && !r.TLS.HandshakeComplete {
		hdr["Early-Data"] = []string{"1"}
	}
	setForwardedHeaders(hdr, r)
	hdr["Via"] = append(hdr["Via"], strconv.Itoa(r.ProtoMajor)+"."+strconv.Itoa(r.ProtoMinor)+" Caddy")

	cp := &http.Request{
		Method:     r.Method,
		URL:        t.copyURL(r.URL, rep),
		Proto:      "HTTP/1.1",
		ProtoMajor: 1,
		ProtoMinor: 1,
		Header:     hdr,
		Host:       r.Host,
		RemoteAddr: r.RemoteAddr, // for logs only
		Trailer:    r.Trailer,
	}
	if t.Headers != nil {
		cp = cp.WithContext(r.Context()) // ApplyToRequest reads the replacer from it
		t.applyHeaders(cp, rep)
	}
	hdr[markerHeader] = []string{t.marker} // last, so no edit can remove it
	return cp
}

// applyHeaders applies t's header edits to cp, whose context is the
// original request's. reverse_proxy's upstream placeholders
// ({http.reverse_proxy.upstream.hostport} and the like, which the
// Caddyfile writes {upstream_hostport}) name the copy's replica while the
// edits run; the request's own values, if it had any, are put back.
func (t *Target) applyHeaders(cp *http.Request, rep *replica) {
	repl, ok := cp.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
	if !ok || !t.editsUseUpstream {
		t.Headers.ApplyToRequest(cp)
		return
	}
	var saved [numUpstreamPlaceholders]any
	var had [numUpstreamPlaceholders]bool
	for i, name := range upstreamPlaceholders {
		saved[i], had[i] = repl.Get(name)
		repl.Set(name, rep.values[i])
	}
	t.Headers.ApplyToRequest(cp)
	for i, name := range upstreamPlaceholders {
		if had[i] {
			repl.Set(name, saved[i])
		} else {
			repl.Delete(name)
		}
	}
}

// copyURL addresses src's path and raw query to the replica rep, after the
// upstream's path prefix, keeping escaped characters as they were. Under
// a prefix, the path's dot segments are resolved first (see prefix.go);
// admit has refused a path that hides any.
func (t *Target) copyURL(src *url.URL, rep *replica) *url.URL {
	u := &url.URL{
		Scheme:     rep.url.Scheme,
		Host:       rep.url.Host,
		Path:       src.Path,
		RawPath:    src.RawPath,
		RawQuery:   src.RawQuery,
		ForceQuery: src.ForceQuery,
	}
	if t.pathPrefix == "" {
		return u
	}
	escaped := removeDotSegments(src.EscapedPath())
	u.RawPath = t.rawPrefix + escaped
	if path, err := url.PathUnescape(u.RawPath); err == nil {
		u.Path = path
	}
	return u
}

// hopByHopHeaders are the headers that apply to one connection only; they
// are not copied, and the transport sets its own. The list is the one
// reverse_proxy uses.
var hopByHopHeaders = []string{
	"Alt-Svc",
	"Connection",
	"Proxy-Connection",
	"Keep-Alive",
	"Proxy-Authenticate",
	"Proxy-Authorization",
	"Te",
	"Trailer",
	"Transfer-Encoding",
	"Upgrade",
}

// removeHopByHopHeaders removes the hop-by-hop headers from h, and the
// headers that its Connection header names, except TE: trailers, which
// reverse_proxy keeps too: gRPC servers require it.
func removeHopByHopHeaders(h http.Header) {
	for _, f := range h["Connection"] {
		for sf := range strings.SplitSeq(f, ",") {
			if sf = textproto.TrimString(sf); sf != "" {
				h.Del(sf)
			}
		}
	}
	trailers := httpguts.HeaderValuesContainsToken(h["Te"], "trailers")
	for _, name := range hopByHopHeaders {
		delete(h, name)
	}
	if trailers {
		h["Te"] = []string{"trailers"}
	}
}

// setForwardedHeaders sets X-Forwarded-For, -Proto and -Host on a copy of
// r as reverse_proxy sets them on the primary's request: prior values are
// kept only when r came from a trusted proxy (the server's trusted_proxies).
func setForwardedHeaders(hdr http.Header, r *http.Request) {
	clientIP, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		// no peer address to vouch for the client's claims
		delete(hdr, "X-Forwarded-For")
		delete(hdr, "X-Forwarded-Proto")
		delete(hdr, "X-Forwarded-Host")
		return
	}
	clientIP, _, _ = strings.Cut(clientIP, "%")
	trusted, _ := caddyhttp.GetVar(r.Context(), caddyhttp.TrustedProxyVarKey).(bool)

	if prior := hdr.Values("X-Forwarded-For"); trusted && len(prior) > 0 {
		hdr["X-Forwarded-For"] = []string{strings.Join(prior, ", ") + ", " + clientIP}
	} else {
		hdr["X-Forwarded-For"] = []string{clientIP}
	}

	proto := "http"
	if r.TLS != nil {
		proto = "https"
	}
	if prior := lastValue(hdr, "X-Forwarded-Proto"); trusted && prior != "" {
		proto = prior
	}
	hdr["X-Forwarded-Proto"] = []string{proto}

	host := r.Host
	if prior := lastValue(hdr, "X-Forwarded-Host"); trusted && prior != "" {
		host = prior
	}
	hdr["X-Forwarded-Host"] = []string{host}
}

// lastValue returns the last value of the header field name in h.
func lastValue(h http.Header, name string) string {
	if v := h[name]; len(v) > 0 {
		return v[len(v)-1]
	}
	return ""
}
