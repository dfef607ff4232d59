package mirror

import (
	"github.com/caddyserver/caddy/v2"
)

// shadowState is what the mirror learns about one shadow (a replica of a
// target's pool, see pool.go): its concurrency
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
