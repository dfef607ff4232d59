package mirror

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

// unsupported reports whether r can never be copied, and why: it is
// itself a copy (which would make a mirror loop; screenMarker has removed
// any marker that is not this process's), or it opens a tunnel or
// upgrades the connection, which a one-shot copy cannot reproduce.
func unsupported(r *http.Request) (outcome, bool) {
	if _, ok := r.Header[markerHeader]; ok {
		return skippedLoop, true
	}
	if r.Method == http.MethodConnect || r.Header.Get("Upgrade") != "" {
		return skippedUnsupported, true
	}
	return 0, false
}
