package mirror

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// replicaServer is one replica of a shadow pool: it counts the copies it
// answers and reports the Host each came with.
type replicaServer struct {
	*httptest.Server
	mu     sync.Mutex
	copies int
	hosts  map[string]int
}

func newReplicaServer(t *testing.T) *replicaServer {
	t.Helper()
	s := &replicaServer{hosts: map[string]int{}}
	s.Server = httptest.NewServer(s.handler())
	t.Cleanup(s.Close)
	return s
}

func (s *replicaServer) handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		s.mu.Lock()
		s.copies++
		s.hosts[r.Host]++
		s.mu.Unlock()
		_, _ = io.WriteString(w, "replica")
	})
}

// count returns how many copies s answered.
func (s *replicaServer) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.copies
}

// poolConfig is a handler config of one target over upstreams, with more
// target fields in extra.
func poolConfig(upstreams []string, extra string) string {
	quoted := make([]string, len(upstreams))
	for i, u := range upstreams {
		quoted[i] = fmt.Sprintf("%q", u)
	}
	return fmt.Sprintf(`{"targets":[{"name":"pool","upstreams":[%s]%s}]}`, strings.Join(quoted, ","), extra)
}

// sendSequentially sends n POSTs through front, one after the other, and
// waits for each copy's outcome.
func sendSequentially(t *testing.T, front string, rec outcomeRecorder, n int) map[string]int {
	t.Helper()
	var outcomes []recordedOutcome
	for i := range n {
		resp, err := http.Post(fmt.Sprintf("%s/item/%d", front, i), "text/plain", strings.NewReader("body"))
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusAccepted {
			t.Fatalf("request %d: the client got %d, want the primary's 202", i, resp.StatusCode)
		}
		outcomes = append(outcomes, rec.wait(t, 1)...)
	}
	return counts(outcomes)
}

// TestPoolRoundRobin: round robin over three replicas sends each a third
// of the copies, exactly.
func TestPoolRoundRobin(t *testing.T) {
	rs := []*replicaServer{newReplicaServer(t), newReplicaServer(t), newReplicaServer(t)}
	rec := recordOutcomes(t)
	h := provisionHandler(t, poolConfig([]string{rs[0].URL, rs[1].URL, rs[2].URL}, `,"selection_policy":{"policy":"round_robin"}`))
	front := serveThrough(t, h, checksumPrimary)
	if got := sendSequentially(t, front.URL, rec, 300); got["mirrored"] != 300 {
		t.Fatalf("outcomes %v, want 300 mirrored", got)
	}
	for i, r := range rs {
		if n := r.count(); n != 100 {
			t.Errorf("replica %d got %d copies, want 100 of 300", i, n)
		}
	}
}

// TestPoolRefusingReplica: one replica of three refuses connections; its
// copies' dials fail and go to another replica, the replica is ejected
// after max_fails, and the live replicas get every copy.
func TestPoolRefusingReplica(t *testing.T) {
	live := []*replicaServer{newReplicaServer(t), newReplicaServer(t)}
	rec := recordOutcomes(t)
	h := provisionHandler(t, poolConfig([]string{live[0].URL, "http://" + closedAddr(t), live[1].URL}, ""))
	front := serveThrough(t, h, checksumPrimary)
	const n = 200
	got := sendSequentially(t, front.URL, rec, n)
	delivered := live[0].count() + live[1].count()
	t.Logf("outcomes %v; the live replicas got %d and %d", got, live[0].count(), live[1].count())
	if delivered < n*95/100 || got["mirrored"] != delivered {
		t.Errorf("the live replicas got %d of %d copies (%v), want at least 95%%", delivered, n, got)
	}
	if healthy := h.Targets[0].pool.healthy(); healthy != 2 {
		t.Errorf("%d replicas healthy, want the 2 live ones: the refusing one ejected", healthy)
	}
}

// TestPoolHangingReplica: one replica of three accepts copies and never
// answers; once its limit is full it is passed over, so the live replicas
// get all but the copies it holds.
func TestPoolHangingReplica(t *testing.T) {
	live := []*replicaServer{newReplicaServer(t), newReplicaServer(t)}
	release := make(chan struct{})
	hanging := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(hanging.Close)
	t.Cleanup(func() { close(release) })
	rec := recordOutcomes(t)
	h := provisionHandler(t, poolConfig([]string{live[0].URL, hanging.URL, live[1].URL}, ""))
	front := serveThrough(t, h, checksumPrimary)
	const n, clients = 300, 8
	burst(t, front.URL, clients, n)
	delivered := live[0].count() + live[1].count()
	for delivered < n*9/10 && len(rec) > 0 { // outcomes still coming in
		rec.wait(t, 1)
		delivered = live[0].count() + live[1].count()
	}
	t.Logf("the live replicas got %d and %d of %d", live[0].count(), live[1].count(), n)
	if delivered < n*9/10 {
		t.Errorf("the live replicas got %d of %d copies, want at least 90%%", delivered, n)
	}
}

// TestPoolUpstreamPlaceholder: header_up Host {upstream_hostport} names
// each copy's own replica.
func TestPoolUpstreamPlaceholder(t *testing.T) {
	rs := []*replicaServer{newReplicaServer(t), newReplicaServer(t)}
	rec := recordOutcomes(t)
	h := provisionHandler(t, poolConfig([]string{rs[0].URL, rs[1].URL}, `,"selection_policy":{"policy":"round_robin"},"headers":{"set":{"Host":["{http.reverse_proxy.upstream.hostport}"]}}`))
	front := serveThrough(t, h, checksumPrimary)
	sendSequentially(t, front.URL, rec, 4)
	for i, r := range rs {
		self := strings.TrimPrefix(r.URL, "http://")
		r.mu.Lock()
		if r.hosts[self] != 2 || len(r.hosts) != 1 {
			t.Errorf("replica %d saw Hosts %v, want its own %s twice", i, r.hosts, self)
		}
		r.mu.Unlock()
	}
}

// TestPoolUnixAndH2C: a replica on a unix socket, and a pool of h2c
// replicas, each get their copies, the h2c ones over HTTP/2.
func TestPoolUnixAndH2C(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "shadow.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	unix := &replicaServer{hosts: map[string]int{}}
	unix.Server = httptest.NewUnstartedServer(unix.handler())
	unix.Listener = ln
	unix.Start()
	t.Cleanup(unix.Close)

	var protos sync.Map
	h2cServer := func() string {
		s := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			protos.Store(r.Proto, true)
			_, _ = io.WriteString(w, "h2c")
		})}
		s.Protocols = new(http.Protocols)
		s.Protocols.SetUnencryptedHTTP2(true)
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		go func() { _ = s.Serve(l) }()
		t.Cleanup(func() { _ = s.Shutdown(context.Background()) })
		return "h2c://" + l.Addr().String()
	}

	rec := recordOutcomes(t)
	h := provisionHandler(t, fmt.Sprintf(`{"targets":[{"name":"unix","upstream":"unix/%s"},{"name":"h2c","upstreams":[%q,%q]}]}`, sock, h2cServer(), h2cServer()))
	front := serveThrough(t, h, checksumPrimary)
	got := sendSequentially(t, front.URL, rec, 2) // two outcomes each
	got2 := counts(rec.wait(t, 2))
	if got["mirrored"]+got2["mirrored"] != 4 {
		t.Errorf("outcomes %v %v, want 4 mirrored", got, got2)
	}
	if n := unix.count(); n != 2 {
		t.Errorf("the unix replica got %d copies, want 2", n)
	}
	if _, ok := protos.Load("HTTP/2.0"); !ok {
		t.Error("the h2c replicas got no HTTP/2 copy")
	}
}

// TestPoolPoliciesAdaptAndRun: every one of reverse_proxy's selection
// policies, through the Caddyfile and JSON, loads and sends copies.
func TestPoolPoliciesAdaptAndRun(t *testing.T) {
	rs := []*replicaServer{newReplicaServer(t), newReplicaServer(t)}
	for _, policy := range []string{"random", "random_choose 2", "round_robin", "weighted_round_robin 1 2", "least_conn", "first", "ip_hash", "client_ip_hash", "uri_hash", "query id", "header X-User", "cookie lb"} {
		t.Run(policy, func(t *testing.T) {
			out, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(fmt.Sprintf(
				":8080 {\n\tmirror %s %s {\n\t\tlb_policy %s\n\t}\n\trespond ok\n}\n", rs[0].URL, rs[1].URL, policy)), nil)
			if err != nil {
				t.Fatalf("adapt: %v", err)
			}
			cfg := mirrorHandlerJSON(t, out)
			rec := recordOutcomes(t)
			h := provisionHandler(t, cfg)
			front := serveThrough(t, h, checksumPrimary)
			if got := sendSequentially(t, front.URL, rec, 3); got["mirrored"] != 3 {
				t.Errorf("outcomes %v, want 3 mirrored", got)
			}
		})
	}
}

// mirrorHandlerJSON finds the mirror handler in an adapted config.
func mirrorHandlerJSON(t *testing.T, cfg []byte) string {
	t.Helper()
	var doc any
	if err := json.Unmarshal(cfg, &doc); err != nil {
		t.Fatal(err)
	}
	var found map[string]any
	var walk func(v any)
	walk = func(v any) {
		switch x := v.(type) {
		case map[string]any:
			if x["handler"] == "mirror" {
				found = x
				return
			}
			for _, e := range x {
				walk(e)
			}
		case []any:
			for _, e := range x {
				walk(e)
			}
		}
	}
	walk(doc)
	if found == nil {
		t.Fatalf("no mirror handler in %s", cfg)
	}
	out, err := json.Marshal(found)
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

// TestPoolEjectedReplicaReturns: a replica that hangs up on its copies is
// ejected after max_fails while the other serves every copy, and once it
// answers again the probe due after fail_duration brings it back, with
// no copy lost meanwhile.
func TestPoolEjectedReplicaReturns(t *testing.T) {
	clock := fakeClock(t)
	healthy := newReplicaServer(t)
	var broken atomic.Bool
	broken.Store(true)
	flaky := newReplicaServer(t)
	flaky.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if broken.Load() {
			conn, _, err := http.NewResponseController(w).Hijack()
			if err == nil {
				conn.Close() // the copy fails: no response
			}
			return
		}
		flaky.handler().ServeHTTP(w, r)
	})
	rec := recordOutcomes(t)
	h := provisionHandler(t, poolConfig([]string{healthy.URL, flaky.URL}, `,"selection_policy":{"policy":"round_robin"},"max_fails":2,"fail_duration":"10s"`))
	front := serveThrough(t, h, checksumPrimary)
	tg := h.Targets[0]

	if got := sendSequentially(t, front.URL, rec, 10); got["failed"] != 2 || got["mirrored"] != 8 {
		t.Errorf("outcomes with one replica hanging up %v, want 2 failed (max_fails) and 8 mirrored", got)
	}
	if n := tg.pool.healthy(); n != 1 {
		t.Fatalf("%d replicas healthy, want 1: the one hanging up ejected", n)
	}
	if n := testutil.ToFloat64(tg.healthyGauge); n != 1 {
		t.Errorf("replicas_healthy = %v, want 1", n)
	}

	broken.Store(false)
	clock.Add(int64(10 * time.Second)) // its fail_duration has passed
	if got := sendSequentially(t, front.URL, rec, 10); got["mirrored"] != 10 {
		t.Errorf("outcomes after it answers again %v, want 10 mirrored", got)
	}
	if n := flaky.count(); n < 5 {
		t.Errorf("the returned replica got %d of the 10 copies after its probe, want at least 5", n)
	}
	if n := testutil.ToFloat64(tg.healthyGauge); n != 2 {
		t.Errorf("replicas_healthy = %v after the probe, want 2", n)
	}
}

// TestPoolPickAllocatesNothing: choosing a copy's replica runs on the
// request path; with every replica available, a selection policy
// chooses among the upstreams made when the replicas were set.
func TestPoolPickAllocatesNothing(t *testing.T) {
	rs := []*replicaServer{newReplicaServer(t), newReplicaServer(t), newReplicaServer(t)}
	h := provisionHandler(t, poolConfig([]string{rs[0].URL, rs[1].URL, rs[2].URL}, `,"selection_policy":{"policy":"round_robin"}`))
	p := h.Targets[0].pool
	req := httptest.NewRequest(http.MethodGet, "/", nil)
	seen := make(map[*replica]bool, 3) // sized: an insert allocates nothing
	allocs := testing.AllocsPerRun(300, func() {
		r, _, ok := p.pick(req)
		if !ok {
			t.Fatal("no replica picked")
		}
		seen[r] = true
	})
	if allocs != 0 {
		t.Errorf("pick allocates %v times per copy, want 0", allocs)
	}
	if len(seen) != 3 {
		t.Errorf("round robin picked %d of the 3 replicas", len(seen))
	}
}
