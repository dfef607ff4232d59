package mirror

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"time"

	"go.uber.org/zap"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp/reverseproxy"
)

// dynamicRefresh is how often a target's dynamic upstream source is asked
// for its replicas. The a and srv sources cache their answers for their
// own refresh (1m by default), so most asks cost a map lookup; the ask
// happens in the target's own goroutine, never on the request path.
const dynamicRefresh = time.Second

// dynamicLookupTimeout bounds one ask of a dynamic upstream source.
const dynamicLookupTimeout = 5 * time.Second

// dynamicLabel is the target label of an unnamed target whose replicas
// come from the dynamic source raw: the source and the name it asks for,
// "dynamic a reviews-v2:9080" or "dynamic srv _http._tcp.reviews-v2".
func dynamicLabel(raw json.RawMessage) string {
	if raw == nil {
		return ""
	}
	var src struct {
		Source, Name, Port, Service, Proto string
	}
	_ = json.Unmarshal(raw, &src) // the module's own decoding reports errors
	switch {
	case src.Source == "a" && src.Port != "":
		return "dynamic a " + net.JoinHostPort(src.Name, src.Port)
	case src.Source == "srv" && src.Service != "":
		return fmt.Sprintf("dynamic srv _%s._%s.%s", src.Service, src.Proto, src.Name)
	case src.Name != "":
		return "dynamic " + src.Source + " " + src.Name
	}
	return "dynamic " + src.Source
}

// parseTargetUpstreams reads t's upstreams, their scheme and path prefix.
func (t *Target) parseTargetUpstreams() (parsedUpstreams, error) {
	addrs, err := t.expandUpstreams()
	if err != nil {
		return parsedUpstreams{}, err
	}
	parsed := parsedUpstreams{scheme: "http"}
	if len(addrs) > 0 {
		if parsed, err = parseUpstreams(addrs); err != nil {
			return parsedUpstreams{}, err
		}
	}
	t.scheme, t.pathPrefix, t.rawPrefix = parsed.scheme, parsed.prefix, parsed.rawPrefix
	return parsed, nil
}

// provisionPool loads t's selection policy and dynamic source, and fills
// its pool with the replicas of parsed, each with its limit and breaker
// configured from settings. The transport is loaded first: it may make
// the replicas' scheme https.
func (t *Target) provisionPool(ctx caddy.Context, settings limitSettings, parsed parsedUpstreams) error {
	logger := ctx.Logger()
	t.pool = &pool{scheme: t.scheme, rawPref: parsed.rawPrefix}
	t.pool.onSet = func(rs []*replica) {
		for _, r := range rs {
			t.configureLimit(r, settings, logger)
			t.configureHealth(r, logger)
		}
		t.publishLimits()
		t.healthyGauge.Set(float64(t.pool.healthy())) // a replica carried over may be ejected
	}
	if t.SelectionPolicyRaw != nil {
		mod, err := ctx.LoadModule(t, "SelectionPolicyRaw")
		if err != nil {
			return fmt.Errorf("loading lb_policy: %v", err)
		}
		if _, ok := mod.(*reverseproxy.LeastConnSelection); ok {
			t.pool.leastConn = true // by the mirror's own count of copies in flight
		} else {
			t.pool.selector = mod.(reverseproxy.Selector)
		}
	}
	if err := t.pool.set(parsed.dials); err != nil {
		return err
	}
	loadedTargets.Store(t, struct{}{}) // shown by admin.api.mirror_targets
	if ht, ok := t.Transport.(*reverseproxy.HTTPTransport); ok {
		t.dialUnixReplicas(ht)
	}
	if err := t.provisionActiveHealth(ctx); err != nil {
		return err
	}
	if t.DynamicUpstreamsRaw != nil {
		mod, err := ctx.LoadModule(t, "DynamicUpstreamsRaw")
		if err != nil {
			return fmt.Errorf("loading dynamic upstreams: %v", err)
		}
		t.source = mod.(reverseproxy.UpstreamSource)
		t.refreshReplicas(ctx) // the first answer, before the config serves
		refresh, stop := context.WithCancel(context.WithoutCancel(ctx))
		t.stopRefresh = stop
		go every(refresh, dynamicRefresh, func() { t.refreshReplicas(refresh) })
	}
	return nil
}

// every calls f every interval until ctx ends.
func every(ctx context.Context, interval time.Duration, f func()) {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			f()
		}
	}
}

// refreshReplicas makes the dynamic source's latest answer t's replicas.
// An answer that fails keeps the replicas t has.
func (t *Target) refreshReplicas(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, dynamicLookupTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(context.WithValue(ctx, caddy.ReplacerCtxKey, caddy.NewReplacer()), http.MethodGet, "/", nil)
	if err != nil {
		return
	}
	ups, err := t.source.GetUpstreams(req)
	if err != nil {
		if ce := t.sampledLogger.Check(zap.WarnLevel, "mirror target's dynamic upstreams failed; keeping its replicas"); ce != nil {
			ce.Write(zap.String("target", t.label), zap.Error(err))
		}
		return
	}
	dials := make([]string, len(ups))
	for i, u := range ups {
		dials[i] = u.Dial
	}
	if err := t.pool.set(dials); err != nil {
		if ce := t.sampledLogger.Check(zap.WarnLevel, "mirror target's dynamic upstreams gave an address it cannot use"); ce != nil {
			ce.Write(zap.String("target", t.label), zap.Error(err))
		}
	}
}

// closePool stops the refresh and gives back every replica's state.
func (t *Target) closePool() {
	loadedTargets.Delete(t)
	t.closeActiveHealth()
	if t.stopRefresh != nil {
		t.stopRefresh()
		t.stopRefresh = nil
	}
	if t.pool != nil {
		t.pool.close()
	}
}

// dialUnixReplicas makes ht dial a unix replica's socket for the host name
// that its copies carry (see unixReplicaHost), and everything else as it
// did: reverse_proxy learns a unix upstream from the request's context,
// which a copy made outside reverse_proxy cannot set.
func (t *Target) dialUnixReplicas(ht *reverseproxy.HTTPTransport) {
	if ht.Transport == nil {
		return
	}
	dial := ht.Transport.DialContext
	p := t.pool
	ht.Transport.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		host, _, _ := net.SplitHostPort(addr)
		for _, r := range p.now() {
			if r.unixPath != "" && r.url.Host == host {
				return (&net.Dialer{}).DialContext(ctx, "unix", r.unixPath)
			}
		}
		return dial(ctx, network, addr)
	}
}
