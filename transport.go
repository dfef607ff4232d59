package mirror

import (
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"go.uber.org/zap"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp/reverseproxy"
)

// loadTransport loads t's transport module, the http transport unless
// configured otherwise, with the mirror's defaults filled in.
func (t *Target) loadTransport(ctx caddy.Context, maxInFlight int) error {
	raw, err := transportWithDefaults(t.TransportRaw, t.scheme, maxInFlight, t.timeout)
	if err != nil {
		return fmt.Errorf("transport: %v", err)
	}
	t.TransportRaw = raw
	mod, err := ctx.LoadModule(t, "TransportRaw")
	if err != nil {
		return fmt.Errorf("loading transport: %v", err)
	}
	rt, ok := mod.(http.RoundTripper)
	if !ok {
		return fmt.Errorf("transport: module %T is not an http.RoundTripper", mod)
	}
	if tt, ok := rt.(reverseproxy.TLSTransport); ok && tt.TLSEnabled() && t.scheme == "http" {
		// The transport's TLS settings say how to reach the shadow, as
		// they do for a reverse_proxy dial address.
		t.scheme = "https"
		ctx.Logger().Warn("upstream scheme is http but its transport enables TLS; copies are sent over TLS",
			zap.String("target", t.label))
	}
	t.Transport = rt
	return nil
}

// The limits that the http transport of a copy gets by default, each
// shortened to the target's timeout when that is shorter: every phase of a
// copy ends within the timeout, and so does every socket that Go's
// transport opens for it, even a dial that the transport goes on with
// after the copy has given up on it.
const (
	// defaultDialTimeout is reverse_proxy's own default.
	defaultDialTimeout = 3 * time.Second
	// defaultHandshakeTimeout bounds a TLS handshake, for which
	// reverse_proxy sets no limit: a shadow that accepts connections and
	// never completes a handshake would otherwise hold a socket and a
	// goroutine each.
	defaultHandshakeTimeout = 5 * time.Second
	// defaultIdleTimeout closes a connection to a shadow that no copy has
	// used for this long; reverse_proxy keeps one for 2 minutes. Go's
	// transport reuses the connection that went idle last, so those a
	// burst opened beyond what the copies' rate needs sit unused at the
	// bottom of the pool: a second later they are closed, with their two
	// goroutines and buffers each, which the garbage collector of the
	// Caddy that also serves the primary would otherwise mark at every
	// cycle. A shadow sent a copy less than once a second gets a dial per
	// copy, which costs it nothing it would notice.
	defaultIdleTimeout = time.Second
	// defaultMaxResponseHeaderSize bounds the headers of a shadow's
	// response (Go's default is 10 MB); a copy reads at most
	// maxDrainBytes of the body, and the headers get a bound of the same
	// order.
	defaultMaxResponseHeaderSize = 64 << 10
)

// transportWithDefaults fills in, on the raw config of an http transport,
// what the user left unset:
//   - an idle pool of maxIdle connections per host, so that a slow shadow
//     reuses connections instead of churning through new ones (Caddy's
//     default of 32 leaves thousands of sockets in TIME_WAIT);
//   - compression off, so that the copy carries the client's
//     Accept-Encoding verbatim and the discarded response is not
//     decompressed;
//   - TLS for an https:// upstream, with Caddy's defaults (verification on),
//     and HTTP/2 over cleartext for an h2c:// one, as reverse_proxy does;
//   - an idle_timeout of defaultIdleTimeout, so that the pool shrinks back
//     to what the copies use once a burst has passed;
//   - dial_timeout, tls handshake_timeout and max_response_header_size,
//     from the defaults above, the timeouts no longer than timeout.
//
// Other transport modules are returned as they are.
func transportWithDefaults(raw json.RawMessage, scheme string, maxIdle int, timeout time.Duration) (json.RawMessage, error) {
	fields := map[string]json.RawMessage{}
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &fields); err != nil {
			return nil, err
		}
	} else {
		fields["protocol"] = json.RawMessage(`"http"`)
	}
	var protocol string
	if err := json.Unmarshal(fields["protocol"], &protocol); err != nil || protocol != "http" {
		return raw, nil // not ours to adjust; LoadModule reports a bad protocol
	}
	if _, ok := fields["tls"]; !ok && scheme == "https" {
		fields["tls"] = json.RawMessage(`{}`)
	}
	if scheme == "h2c" {
		setDefault(fields, "versions", []string{"h2c", "2"})
	}
	setDefault(fields, "compression", false)
	setDefault(fields, "dial_timeout", min(defaultDialTimeout, timeout).String())
	setDefault(fields, "max_response_header_size", defaultMaxResponseHeaderSize)
	if tls, ok := fields["tls"]; ok {
		merged, err := withDefault(tls, "handshake_timeout", min(defaultHandshakeTimeout, timeout).String())
		if err != nil {
			return nil, fmt.Errorf("tls: %v", err)
		}
		fields["tls"] = merged
	}
	keepAlive, err := withDefault(fields["keep_alive"], "max_idle_conns_per_host", maxIdle)
	if err == nil {
		keepAlive, err = withDefault(keepAlive, "idle_timeout", defaultIdleTimeout.String())
	}
	if err != nil {
		return nil, fmt.Errorf("keep_alive: %v", err)
	}
	fields["keep_alive"] = keepAlive
	return json.Marshal(fields)
}

// setDefault sets fields[name] to value unless it is set.
func setDefault(fields map[string]json.RawMessage, name string, value any) {
	if _, ok := fields[name]; !ok {
		fields[name], _ = json.Marshal(value)
	}
}

// withDefault returns the JSON object obj (absent: an empty one) with
// name set to value unless obj sets it.
func withDefault(obj json.RawMessage, name string, value any) (json.RawMessage, error) {
	fields := map[string]json.RawMessage{}
	if len(obj) > 0 {
		if err := json.Unmarshal(obj, &fields); err != nil {
			return nil, err
		}
	}
	if _, ok := fields[name]; ok {
		return obj, nil
	}
	setDefault(fields, name, value)
	return json.Marshal(fields)
}
