package mirror

import (
	"fmt"
	"net/http"

	"github.com/caddyserver/caddy/v2"

	"github.com/caddy-mirror/mirror/compare"
)

// The request path's side of the comparison (see package compare): which
// targets compare, which supply noise, and the exchange their copies'
// responses are captured into.

// targetComparison is a target's part in comparisons.
type targetComparison struct {
	comparer *compare.Comparer // nil unless the target compares
	noise    *Target           // its compare.noise_from target, if any
	captures bool              // its responses are kept: it compares, or is a noise source
	keep     int64             // how many bytes of its response bodies are kept
}

// provisionComparer makes t's comparer, when t compares.
func (t *Target) provisionComparer(ctx caddy.Context) error {
	if t.Compare == nil {
		return nil
	}
	c, err := compare.NewComparer(t.Compare, t.label, t.Upstream, ctx.GetMetricsRegistry(), t.sampledLogger)
	if err != nil {
		return fmt.Errorf("compare: %v", err)
	}
	t.comparison.comparer = c
	return nil
}

// closeComparer gives back t's comparer, once no copy can still compare.
func (t *Target) closeComparer() {
	if t.comparison.comparer != nil {
		t.comparison.comparer.Close()
		t.comparison.comparer = nil
	}
}

// linkTargets resolves every target's compare.noise_from to the target it
// names, and sizes how much of each target's responses must be kept.
func linkTargets(targets []*Target) error {
	byName := make(map[string]*Target, len(targets))
	for i, t := range targets {
		if other, dup := byName[t.label]; dup && other != t {
			return fmt.Errorf("targets[%d]: name %q is already used by another target; give each target a unique name", i, t.label)
		}
		byName[t.label] = t
	}
	for i, t := range targets {
		if t.Compare == nil {
			continue
		}
		keep := t.Compare.KeepBody()
		t.comparison.captures, t.comparison.keep = true, max(t.comparison.keep, keep)
		if t.Compare.NoiseFrom == "" {
			continue
		}
		noise, ok := byName[t.Compare.NoiseFrom]
		switch {
		case !ok:
			return fmt.Errorf("targets[%d]: compare.noise_from: no target is named %q", i, t.Compare.NoiseFrom)
		case noise == t:
			return fmt.Errorf("targets[%d]: compare.noise_from: a target cannot be its own noise source", i)
		}
		t.comparison.noise = noise
		noise.comparison.captures, noise.comparison.keep = true, max(noise.comparison.keep, keep)
	}
	return nil
}

// prepareComparison adds to copies the noise copies that the comparing
// targets among them need, and when any copy compares, returns the
// exchange that their responses are captured into. It runs on the request
// path and only allocates when a copy compares.
func (h *Handler) prepareComparison(r *http.Request, copies []pendingCopy) ([]pendingCopy, *compare.Exchange) {
	comparing := false
	for i := range copies {
		t := copies[i].target
		if t.Compare == nil {
			continue
		}
		comparing = true
		noise := t.comparison.noise
		if noise == nil || hasCopyFor(copies, noise) {
			continue
		}
		// the noise target gets every request its candidate gets,
		// whatever its own selection says; only its health and a slot
		// are checked
		a, reason, ok := h.admitSending(noise, r)
		if !ok {
			noise.count(reason)
			continue
		}
		copies = append(copies, newPendingCopy(noise, r, a))
	}
	if !comparing {
		return copies, nil
	}

	ex := compare.NewExchange(r, h.keepPrimaryBody)
	for i := range copies {
		if t := copies[i].target; t.comparison.captures {
			copies[i].ex = ex
			copies[i].response = ex.AddResponse(t.comparison.keep)
			if t.Compare != nil {
				copies[i].response.SetEndpointHint(t.Compare.EndpointHint(r))
			}
		}
	}
	for i := range copies {
		if noise := copies[i].target.comparison.noise; copies[i].target.Compare != nil && noise != nil {
			for _, other := range copies {
				if other.target == noise {
					copies[i].noise = other.response
				}
			}
		}
	}
	ex.Start()
	return copies, ex
}

// hasCopyFor reports whether copies has one for t.
func hasCopyFor(copies []pendingCopy, t *Target) bool {
	for _, c := range copies {
		if c.target == t {
			return true
		}
	}
	return false
}
