package mirror

import (
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	weakrand "math/rand/v2"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp/reverseproxy"
)

// A target is a service: a pool of one or more replicas, as an Istio
// mirror is a DestinationRule subset of pods. Each copy goes to one
// replica, chosen on the request path by the target's lb_policy (any of
// reverse_proxy's selection policies) among the replicas that are
// available:
//
//   - each replica has its own circuit breaker and concurrency limit (its
//     shadowState): a replica that refuses, resets, times out or stops
//     answering is ejected for fail_duration, and a probe copy then finds
//     whether it is back;
//   - a replica whose limit is full (a hanging replica, until its breaker
//     opens) is passed over while another has room;
//   - the target is unavailable, and its copies dropped_unhealthy, only
//     when every replica is ejected and none is due a probe.
//
// With dynamic upstreams (reverse_proxy's http.reverse_proxy.upstreams
// modules: a, srv, multi), the replicas are the source's latest answer,
// refreshed in the background, never on the request path.

// replica is one upstream of a target's pool.
type replica struct {
	dial     string   // as reverse_proxy writes it: host:port or unix//path
	url      *url.URL // scheme and host of its copies
	unixPath string   // the socket, for a unix replica
	key      string   // its shadowState's key
	state    *shadowState
	released bool                            // state given back
	up       *reverseproxy.Upstream          // for the selection policies
	values   [numUpstreamPlaceholders]string // the upstream placeholders' values
	// its limit as last configured, for the target's gauge
	limitShown atomic.Int64
}

// newReplica makes the replica of a target with scheme and prefix at
// dial, and takes its shadow state.
func newReplica(dial, scheme, rawPrefix string) (*replica, error) {
	r := &replica{dial: dial, up: &reverseproxy.Upstream{Host: new(reverseproxy.Host), Dial: dial}}
	addr, err := caddy.ParseNetworkAddress(dial)
	if err != nil {
		return nil, err
	}
	urlScheme := scheme
	if scheme == "h2c" {
		urlScheme = "http"
	}
	host, port := addr.Host, addr.JoinHostPort(0)
	if addr.IsUnixNetwork() {
		r.unixPath = addr.Host
		host, port = unixReplicaHost(addr.Host), ""
		r.url = &url.URL{Scheme: urlScheme, Host: host}
		r.values = [numUpstreamPlaceholders]string{dial, host, host, ""}
	} else {
		r.url = &url.URL{Scheme: urlScheme, Host: port}
		_, p, _ := net.SplitHostPort(port)
		r.values = [numUpstreamPlaceholders]string{port, port, host, p}
	}
	r.key = scheme + "://" + dial + rawPrefix
	v, _, err := shadowStates.LoadOrNew(r.key, func() (caddy.Destructor, error) {
		limit := newConcurrencyLimit(now)
		limit.afterFunc = time.AfterFunc
		return &shadowState{limit: limit, health: newHealth(now, 0, 0, nil)}, nil
	})
	if err != nil {
		return nil, err
	}
	r.state = v.(*shadowState)
	return r, nil
}

// release gives back the replica's shadow state, once; the replica
// keeps it to read, for the copies that end after its config.
func (r *replica) release() {
	if !r.released {
		_, _ = shadowStates.Delete(r.key)
		r.released = true
	}
}

// unixReplicaHost is the host name that the copies to a unix socket
// carry in their URL; the transport dials the socket for it (see
// dialUnixReplicas).
func unixReplicaHost(path string) string {
	return strings.NewReplacer("/", "-", ".", "-").Replace(strings.Trim(path, "/")) + ".unix.mirror.invalid"
}

// pool is a target's replicas, and how it chooses among them.
type pool struct {
	replicas  atomic.Pointer[replicaSet] // the replicas now
	selector  reverseproxy.Selector      // nil: at random
	leastConn bool                       // the fewest copies in flight: the mirror's own count
	// the target has active health checks: a replica must also pass them
	activeChecks atomic.Bool

	mu      sync.Mutex          // serialises changes of replicas
	byDial  map[string]*replica // every replica in use, by dial address
	scheme  string
	rawPref string
	onSet   func([]*replica) // called with the new replicas, under mu
}

// replicaSet is a pool's replicas, with their upstreams in the same
// order for the selection policies, made once per change of replicas so
// that choosing among all of them allocates nothing.
type replicaSet struct {
	replicas  []*replica
	upstreams reverseproxy.UpstreamPool
}

// now returns the replicas as they are.
func (p *pool) now() []*replica {
	if set := p.replicas.Load(); set != nil {
		return set.replicas
	}
	return nil
}

// set makes dials the pool's replicas, keeping the state of those it
// already has and giving back the state of those it drops.
func (p *pool) set(dials []string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	next := make([]*replica, 0, len(dials))
	keep := make(map[string]*replica, len(dials))
	for _, d := range dials {
		if _, dup := keep[d]; dup {
			continue
		}
		r, ok := p.byDial[d]
		if !ok {
			var err error
			if r, err = newReplica(d, p.scheme, p.rawPref); err != nil {
				for d, r := range keep { // the new ones, unused
					if p.byDial[d] == nil {
						r.release()
					}
				}
				return err
			}
		}
		keep[d] = r
		next = append(next, r)
	}
	for d, r := range p.byDial {
		if _, ok := keep[d]; !ok {
			r.release()
		}
	}
	p.byDial = keep
	set := &replicaSet{replicas: next, upstreams: make(reverseproxy.UpstreamPool, len(next))}
	for i, r := range next {
		set.upstreams[i] = r.up
	}
	p.replicas.Store(set)
	if p.onSet != nil {
		p.onSet(next)
	}
	return nil
}

// close gives back every replica's state, as the config is unloaded; the
// replicas stay, for what still reads them.
func (p *pool) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, r := range p.byDial {
		r.release()
	}
	p.byDial = nil
}

// pick chooses the replica for a copy of req, and reports whether the
// copy is the probe of an ejected replica; ok is false when every
// replica is ejected and none is due a probe. It runs on the request
// path: a target of one replica allocates nothing.
func (p *pool) pick(req *http.Request) (r *replica, probe, ok bool) {
	set := p.replicas.Load()
	if set == nil {
		return nil, false, false
	}
	rs := set.replicas
	switch len(rs) {
	case 0:
		return nil, false, false
	case 1:
		if !p.passesChecks(rs[0]) {
			return nil, false, false
		}
		ok, probe = rs[0].state.health.allow()
		return rs[0], probe, ok
	}
	var buf [16]*replica // pools of up to 16 replicas choose without allocating
	available := buf[:0]
	roomy := 0
	for _, r := range rs {
		if !p.passesChecks(r) {
			continue
		}
		if !r.state.health.closed() {
			// an ejected replica due a probe takes this copy, so that it
			// is found again while the others serve
			if ok, probe := r.state.health.allow(); ok {
				return r, probe, true
			}
			continue
		}
		available = append(available, r)
		if !r.state.limit.full() {
			available[roomy], available[len(available)-1] = available[len(available)-1], available[roomy]
			roomy++
		}
	}
	if len(available) == 0 {
		return nil, false, false
	}
	if roomy > 0 {
		available = available[:roomy] // pass over the replicas whose limit is full
	}
	var all reverseproxy.UpstreamPool // the policy may choose among all of them
	if len(available) == len(rs) {
		all = set.upstreams
	}
	return p.choose(available, all, req), false, true
}

// choose applies the selection policy to the available replicas; all is
// their upstreams when they are every replica of the pool, else nil.
func (p *pool) choose(available []*replica, all reverseproxy.UpstreamPool, req *http.Request) *replica {
	if len(available) == 1 {
		return available[0]
	}
	if p.leastConn {
		best := available[weakrand.IntN(len(available))]
		for _, r := range available {
			if r.state.limit.inFlightNow() < best.state.limit.inFlightNow() {
				best = r
			}
		}
		return best
	}
	if p.selector == nil {
		return available[weakrand.IntN(len(available))]
	}
	ups := all
	if ups == nil {
		ups = make(reverseproxy.UpstreamPool, len(available))
		for i, r := range available {
			ups[i] = r.up
		}
	}
	chosen := p.selector.Select(ups, req, discardWriter{})
	for _, r := range available {
		if r.up == chosen {
			return r
		}
	}
	return available[0] // a policy that chose none
}

// other returns a replica other than r that is not ejected, for a copy
// whose dial to r failed, or nil.
func (p *pool) other(r *replica) *replica {
	for _, o := range p.now() {
		if o != r && o.state.health.closed() && p.passesChecks(o) {
			return o
		}
	}
	return nil
}

// passesChecks reports whether r passes the target's active health
// checks, if it has any: reverse_proxy's checker marks its host.
func (p *pool) passesChecks(r *replica) bool {
	return !p.activeChecks.Load() || r.up.Healthy()
}

// healthy counts the replicas that are not ejected and pass the active
// health checks.
func (p *pool) healthy() int {
	n := 0
	for _, r := range p.now() {
		if r.state.health.closed() && p.passesChecks(r) {
			n++
		}
	}
	return n
}

// maxReplicaLabels bounds the replica label values of a target's
// replica_copies_total: a dynamic source's replicas come and go.
const maxReplicaLabels = 64

// replicaLabel returns the replica label value of r: its dial address
// while fewer than maxReplicaLabels are in use, "other" after.
func (t *Target) replicaLabel(r *replica) string {
	t.replicaLabelsMu.Lock()
	defer t.replicaLabelsMu.Unlock()
	if _, ok := t.replicaLabels[r.dial]; ok {
		return r.dial
	}
	if len(t.replicaLabels) >= maxReplicaLabels {
		return "other"
	}
	if t.replicaLabels == nil {
		t.replicaLabels = make(map[string]struct{})
	}
	t.replicaLabels[r.dial] = struct{}{}
	return r.dial
}

// discardWriter is the response writer that a selection policy gets: the
// cookie policy sets a cookie on it, which no client sees, since a copy
// has no client.
type discardWriter struct{}

func (discardWriter) Header() http.Header         { return http.Header{} }
func (discardWriter) Write(p []byte) (int, error) { return len(p), nil }
func (discardWriter) WriteHeader(int)             {}
