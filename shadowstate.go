package mirror

import (
	"github.com/caddyserver/caddy/v2"
)

// shadowState is what the mirror learns about one shadow: its concurrency
// limit, with the latency baseline behind it, and its circuit breaker. It
// is kept across config loads in shadowStates, keyed by the shadow's
// address, as reverse_proxy keeps each upstream's health in a package-level
// caddy.UsagePool keyed by its address: a reload that changes nothing about
// a target costs it nothing it had learnt. Targets of several handlers, or
// of several configs during a reload, that copy to the same upstream share
// one state, as they share the shadow; the config loaded last sets its
// bounds.
type shadowState struct {
	limit  *concurrencyLimit
	health *health
}

// Destruct implements caddy.Destructor.
func (*shadowState) Destruct() error { return nil }

// shadowStates holds a shadowState per shadow address in use.
var shadowStates = caddy.NewUsagePool()

// shadowKey identifies t's shadow: the scheme, host and path prefix of its
// upstream.
func (t *Target) shadowKey() string {
	return t.url.Scheme + "://" + t.url.Host + t.rawPrefix
}

// loadShadowState finds the state of t's shadow, or makes it, and holds it
// until releaseShadowState.
func (t *Target) loadShadowState() error {
	key := t.shadowKey()
	v, _, err := shadowStates.LoadOrNew(key, func() (caddy.Destructor, error) {
		return &shadowState{
			limit:  newConcurrencyLimit(now),
			health: newHealth(now, 0, 0, nil), // configured by each target
		}, nil
	})
	if err != nil {
		return err
	}
	t.state, t.stateKey = v.(*shadowState), key
	t.limit, t.health = t.state.limit, t.state.health
	return nil
}

// releaseShadowState gives back what loadShadowState took.
func (t *Target) releaseShadowState() {
	if t.state != nil {
		_, _ = shadowStates.Delete(t.stateKey)
		t.state = nil
	}
}
