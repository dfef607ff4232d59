package mirror

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"

	"go.uber.org/zap"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp/reverseproxy"
)

// loadTransport loads t's transport module, the http transport unless
// configured otherwise, with the mirror's defaults filled in.
func (t *Target) loadTransport(ctx caddy.Context, maxInFlight int) error {
	raw, err := transportWithDefaults(t.TransportRaw, t.url.Scheme == "https", maxInFlight)
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
	if tt, ok := rt.(reverseproxy.TLSTransport); ok && tt.TLSEnabled() && t.url.Scheme == "http" {
		// The transport's TLS settings say how to reach the shadow, as
		// they do for a reverse_proxy dial address.
		t.url.Scheme = "https"
		ctx.Logger().Warn("upstream scheme is http but its transport enables TLS; copies are sent over TLS",
			zap.String("upstream", t.Upstream))
	}
	t.Transport = rt
	return nil
}

// transportWithDefaults fills in, on the raw config of an http transport,
// what the user left unset:
//   - an idle pool of maxIdle connections per host, so that a slow shadow
//     reuses connections instead of churning through new ones (Caddy's
//     default of 32 leaves thousands of sockets in TIME_WAIT);
//   - compression off, so that the copy carries the client's
//     Accept-Encoding verbatim and the discarded response is not
//     decompressed;
//   - TLS for an https:// upstream, with Caddy's defaults (verification on).
//
// Other transport modules are returned as they are.
func transportWithDefaults(raw json.RawMessage, https bool, maxIdle int) (json.RawMessage, error) {
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
	if _, ok := fields["tls"]; !ok && https {
		fields["tls"] = json.RawMessage(`{}`)
	}
	if _, ok := fields["compression"]; !ok {
		fields["compression"] = json.RawMessage(`false`)
	}
	keepAlive := map[string]json.RawMessage{}
	if ka, ok := fields["keep_alive"]; ok {
		if err := json.Unmarshal(ka, &keepAlive); err != nil {
			return nil, fmt.Errorf("keep_alive: %v", err)
		}
	}
	if _, ok := keepAlive["max_idle_conns_per_host"]; !ok {
		keepAlive["max_idle_conns_per_host"] = json.RawMessage(strconv.Itoa(maxIdle))
		ka, err := json.Marshal(keepAlive)
		if err != nil {
			return nil, err
		}
		fields["keep_alive"] = ka
	}
	return json.Marshal(fields)
}
