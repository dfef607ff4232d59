package mirror

import (
	"cmp"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"sync"

	"github.com/caddyserver/caddy/v2"
)

func init() {
	caddy.RegisterModule(targetsAPI{})
}

// targetsAPI is the admin.api.mirror_targets module. It shows every
// loaded target's replicas and their health:
//
//	GET /mirror/targets  the targets as JSON
//
// Like every admin.api module it is loaded with the admin endpoint, and
// needs no configuration.
type targetsAPI struct{}

// CaddyModule returns the Caddy module information.
func (targetsAPI) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "admin.api.mirror_targets",
		New: func() caddy.Module { return new(targetsAPI) },
	}
}

// Routes implements caddy.AdminRouter.
func (targetsAPI) Routes() []caddy.AdminRoute {
	return []caddy.AdminRoute{
		{Pattern: "/mirror/targets", Handler: caddy.AdminHandlerFunc(serveTargets)},
	}
}

// loadedTargets is every target of a provisioned handler, until the
// handler is cleaned up.
var loadedTargets sync.Map // *Target → struct{}

// targetView is a target as the admin API shows it: the replicas of every
// loaded target with its label, a replica appearing once however many
// configs (during a reload) or sites share it.
type targetView struct {
	Target          string        `json:"target"`
	ReplicasHealthy int           `json:"replicas_healthy"`
	Replicas        []replicaView `json:"replicas"`
}

// replicaView is one replica: its address, whether its breaker lets
// copies through, its concurrency limit now and its copies in flight.
type replicaView struct {
	Address          string `json:"address"`
	Healthy          bool   `json:"healthy"`
	ConcurrencyLimit int64  `json:"concurrency_limit"`
	InFlight         int64  `json:"in_flight"`
}

// targetViews returns the loaded targets, sorted by label, each with its
// replicas sorted by address.
func targetViews() []targetView {
	byLabel := map[string]map[string]replicaView{}
	loadedTargets.Range(func(k, _ any) bool {
		t := k.(*Target)
		reps := byLabel[t.label]
		if reps == nil {
			reps = map[string]replicaView{}
			byLabel[t.label] = reps
		}
		for _, r := range t.pool.now() {
			reps[r.dial] = replicaView{
				Address:          r.dial,
				Healthy:          r.state.health.closed() && t.pool.passesChecks(r),
				ConcurrencyLimit: r.limitShown.Load(),
				InFlight:         r.state.limit.inFlightNow(),
			}
		}
		return true
	})
	views := make([]targetView, 0, len(byLabel))
	for label, reps := range byLabel {
		v := targetView{Target: label, Replicas: make([]replicaView, 0, len(reps))}
		for _, r := range reps {
			v.Replicas = append(v.Replicas, r)
			if r.Healthy {
				v.ReplicasHealthy++
			}
		}
		slices.SortFunc(v.Replicas, func(a, b replicaView) int { return cmp.Compare(a.Address, b.Address) })
		views = append(views, v)
	}
	slices.SortFunc(views, func(a, b targetView) int { return cmp.Compare(a.Target, b.Target) })
	return views
}

func serveTargets(w http.ResponseWriter, r *http.Request) error {
	if r.Method != http.MethodGet {
		w.Header().Set("Allow", "GET")
		return caddy.APIError{HTTPStatus: http.StatusMethodNotAllowed, Err: fmt.Errorf("method %s not allowed", r.Method)}
	}
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(map[string]any{"targets": targetViews()})
}

// Interface guard
var _ caddy.AdminRouter = (*targetsAPI)(nil)
