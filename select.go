package mirror

// Selection: which requests a target chooses to copy, by its matchers and
// its sample (see sampler.go for the sampling itself).

import (
	"fmt"
	"net/http"

	"github.com/caddyserver/caddy/v2"
)

// provisionMatchers loads t's matcher sets.
func (t *Target) provisionMatchers(ctx caddy.Context) error {
	if t.MatcherSetsRaw == nil {
		return nil
	}
	mods, err := ctx.LoadModule(t, "MatcherSetsRaw")
	if err != nil {
		return fmt.Errorf("loading matchers: %v", err)
	}
	if err := t.matcherSets.FromInterface(mods); err != nil {
		return fmt.Errorf("match: %v", err)
	}
	return nil
}

// selects reports whether t chooses to copy r: the target is on, r
// passes its matchers, and r falls within its sample. The cheap checks
// come first, so a request that is not copied costs next to nothing.
func (t *Target) selects(r *http.Request) bool {
	if t.sampler.off() {
		return false
	}
	if len(t.matcherSets) > 0 {
		matched, err := t.matcherSets.AnyMatchWithError(r)
		if err != nil || !matched {
			return false
		}
	}
	return t.sampler.sampled(r)
}
