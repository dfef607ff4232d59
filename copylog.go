package mirror

import (
	"context"
	"net/http"
	"net/textproto"

	"go.uber.org/zap/zapcore"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp/headers"
)

// loggableCopy is how a copy's request appears in the mirror's logs: as
// caddyhttp.LoggableHTTPRequest shows the client's request (credentials
// redacted unless the server logs them), without the header values that the
// target's header edits put in. Those come from the config, often from
// {env.*}, and may be secrets that no redaction list knows about; the
// client's request never carried them. reverse_proxy's error logs likewise
// show only the client's request.
//
// It has the fields of Caddy's access log's request: remote_ip and
// remote_port of the client's connection, client_ip (the client, behind
// trusted proxies), proto, method, host, uri (the copy's, with the
// target's path prefix) and headers.
type loggableCopy struct {
	req      *http.Request
	target   *Target
	clientIP string
}

// MarshalLogObject implements zapcore.ObjectMarshaler.
func (l loggableCopy) MarshalLogObject(enc zapcore.ObjectEncoder) error {
	shown := *l.req
	shown.Header = l.target.withoutInjectedHeaders(l.req.Header)
	shown.RequestURI = l.req.URL.RequestURI()
	if l.clientIP != "" {
		vars := map[string]any{caddyhttp.ClientIPVarKey: l.clientIP}
		shown = *shown.WithContext(context.WithValue(l.req.Context(), caddyhttp.VarsCtxKey, vars))
	}
	return caddyhttp.LoggableHTTPRequest{Request: &shown}.MarshalLogObject(enc)
}

// injectedHeaderNames lists the header fields whose values ops writes
// (set, add, replace), canonicalised, and whether a replacement applies to
// every field ("*"), in which case no header value can be shown.
func injectedHeaderNames(ops *headers.HeaderOps) (names []string, all bool) {
	if ops == nil {
		return nil, false
	}
	for name := range ops.Set {
		names = append(names, textproto.CanonicalMIMEHeaderKey(name))
	}
	for name := range ops.Add {
		names = append(names, textproto.CanonicalMIMEHeaderKey(name))
	}
	for name := range ops.Replace {
		if name == "*" {
			return nil, true
		}
		names = append(names, textproto.CanonicalMIMEHeaderKey(name))
	}
	return names, false
}

// withoutInjectedHeaders returns hdr, or a copy of it without the fields
// that t's header edits write. It runs only when a line is logged.
// The loop marker is never shown either: whoever reads it could pass a
// request off as a copy.
func (t *Target) withoutInjectedHeaders(hdr http.Header) http.Header {
	if t.hideAllHeaders {
		return nil
	}
	shown := hdr.Clone()
	delete(shown, markerHeader)
	for _, name := range t.injectedHeaders {
		delete(shown, name)
	}
	return shown
}
