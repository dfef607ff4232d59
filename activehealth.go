package mirror

import (
	"errors"
	"fmt"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp/reverseproxy"
)

// Active health checks are reverse_proxy's own: the target's replicas are
// handed, as reverseproxy.Upstreams, to a reverse_proxy handler that is
// provisioned only for its health checker and never serves a request. It
// requests health_uri on each replica every health_interval, with the
// target's transport, and marks the replicas' hosts healthy or not, in
// reverse_proxy's host pool; a copy's replica is chosen among the healthy
// ones (pool.pick). Passive health stays the mirror's own breaker
// (max_fails, fail_duration, unhealthy_status, unhealthy_latency).

// healthGaugeRefresh is how often replicas_healthy is recalculated for a
// target with active health checks, whose results come with no callback.
const healthGaugeRefresh = time.Second

// parseHealthCheck takes one of reverse_proxy's health_* subdirectives,
// with its syntax and errors, into t.HealthChecks: the segment is handed
// to reverse_proxy's own Caddyfile parser, as the only line of a
// reverse_proxy block.
func parseHealthCheck(p *caddyfileParser, t *Target) error {
	segment := p.d.NextSegment()
	first, last := segment[0], segment[len(segment)-1]
	tok := func(text string, line int) caddyfile.Token {
		tk := first
		tk.Text, tk.Line = text, line
		return tk
	}
	tokens := append([]caddyfile.Token{tok("reverse_proxy", first.Line), tok("{", first.Line)}, segment...)
	tokens = append(tokens, tok("}", last.Line+1))
	rp := &reverseproxy.Handler{HealthChecks: t.HealthChecks}
	if err := rp.UnmarshalCaddyfile(caddyfile.NewDispenser(tokens)); err != nil {
		return err
	}
	t.HealthChecks = rp.HealthChecks
	return nil
}

// checkHealthChecks validates t's health_checks: active checks only,
// on static upstreams, as reverse_proxy has them.
func (t *Target) checkHealthChecks() error {
	hc := t.HealthChecks
	if hc == nil {
		return nil
	}
	if hc.Passive != nil {
		return errors.New("health_checks.passive: the mirror's passive checks are max_fails, fail_duration, unhealthy_status and unhealthy_latency")
	}
	if hc.Active != nil && t.DynamicUpstreamsRaw != nil {
		return errors.New("health_checks.active: reverse_proxy checks static upstreams only, not dynamic ones")
	}
	return nil
}

// provisionActiveHealth starts reverse_proxy's active health checker on
// t's replicas, when t has active health checks; it stops with ctx.
func (t *Target) provisionActiveHealth(ctx caddy.Context) error {
	if t.HealthChecks == nil || t.HealthChecks.Active == nil {
		return nil
	}
	ups := make([]*reverseproxy.Upstream, 0, len(t.pool.now()))
	for _, r := range t.pool.now() {
		ups = append(ups, r.up)
	}
	checker := &reverseproxy.Handler{
		Upstreams:    ups,
		HealthChecks: &reverseproxy.HealthChecks{Active: t.HealthChecks.Active},
		Transport:    t.Transport,
	}
	if err := provisionChecker(ctx, checker); err != nil {
		return fmt.Errorf("health_checks.active: %v", err)
	}
	t.healthChecker = checker
	t.pool.activeChecks.Store(true)
	go every(ctx, healthGaugeRefresh, func() { t.healthyGauge.Set(float64(t.pool.healthy())) })
	return nil
}

// closeActiveHealth gives back the health checker's hosts.
func (t *Target) closeActiveHealth() {
	if t.healthChecker != nil {
		_ = t.healthChecker.Cleanup()
		t.healthChecker = nil
	}
}

// provisionChecker provisions the health checker's handler. reverse_proxy
// reads the config's events app, which a context made outside a loaded
// config (a test's, a tool's) does not have: that is an error, not a
// panic.
func provisionChecker(ctx caddy.Context, checker *reverseproxy.Handler) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("needs a loaded Caddy config: %v", p)
		}
	}()
	return checker.Provision(ctx)
}
