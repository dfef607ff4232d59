package mirror

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// waitLimit bounds every wait in the tests. It is a guard against a hang,
// never a synchronisation: the tests wait on channels.
const waitLimit = 10 * time.Second

// provisionHandler decodes cfg into a Handler, then provisions and
// validates it in a fresh Caddy context, as Caddy does when it loads a
// config. The handler is cleaned up when the test ends.
func provisionHandler(t testing.TB, cfg string) *Handler {
	t.Helper()
	h := new(Handler)
	if err := json.Unmarshal([]byte(cfg), h); err != nil {
		t.Fatalf("decoding config: %v", err)
	}
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	t.Cleanup(cancel)
	t.Cleanup(func() { _ = h.Cleanup() })
	if err := h.Provision(ctx); err != nil {
		t.Fatalf("Provision: %v", err)
	}
	if err := h.Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	return h
}

// withCaddyContext gives r the context values that Caddy's server sets up.
func withCaddyContext(w http.ResponseWriter, r *http.Request) *http.Request {
	return caddyhttp.PrepareRequest(r, caddy.NewReplacer(), w, nil)
}

// serveThrough starts a server that runs h in front of primary, the way a
// Caddy route runs mirror before reverse_proxy.
func serveThrough(t testing.TB, h *Handler, primary caddyhttp.Handler) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := h.ServeHTTP(w, withCaddyContext(w, r), primary); err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
		}
	}))
	t.Cleanup(srv.Close)
	return srv
}

// recordedOutcome is one outcome reported through onOutcome.
type recordedOutcome struct {
	target  string
	outcome outcome
}

// outcomeRecorder receives the outcomes of every copy while a test runs.
type outcomeRecorder chan recordedOutcome

// recordOutcomes installs an outcome recorder for the rest of the test.
// Tests that use it must not run in parallel.
func recordOutcomes(t testing.TB) outcomeRecorder {
	rec := make(outcomeRecorder, 1<<16)
	hook := func(tg *Target, o outcome) {
		select {
		case rec <- recordedOutcome{tg.label, o}:
		default: // a straggler from a finished test must not block
		}
	}
	onOutcome.Store(&hook)
	t.Cleanup(func() { onOutcome.Store(nil) })
	return rec
}

// wait returns the next n outcomes, failing the test if they do not come.
func (rec outcomeRecorder) wait(t testing.TB, n int) []recordedOutcome {
	t.Helper()
	got := make([]recordedOutcome, 0, n)
	guard := time.NewTimer(waitLimit)
	defer guard.Stop()
	for len(got) < n {
		select {
		case o := <-rec:
			got = append(got, o)
		case <-guard.C:
			t.Fatalf("got %d outcomes %v, want %d", len(got), got, n)
		}
	}
	return got
}

// counts tallies outcomes by name.
func counts(outcomes []recordedOutcome) map[string]int {
	m := make(map[string]int)
	for _, o := range outcomes {
		m[o.outcome.String()]++
	}
	return m
}

// receive waits for a value from ch, failing the test if none comes.
func receive[T any](t testing.TB, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(waitLimit):
		t.Fatalf("timed out waiting for %s", what)
		panic("unreachable")
	}
}

// rawRequest writes raw bytes to the server at url, as a client that does
// not follow the rules might, and returns the first response's body.
func rawRequest(t testing.TB, url, raw string) string {
	t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := io.WriteString(conn, raw); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return string(body)
}

// onlyReplica returns the replica of a target of one upstream.
func (tg *Target) onlyReplica(t testing.TB) *replica {
	t.Helper()
	rs := tg.pool.now()
	if len(rs) != 1 {
		t.Fatalf("target %s has %d replicas, want one", tg.label, len(rs))
	}
	return rs[0]
}

// closedAddr returns a loopback address that refuses connections for the
// rest of the test: a socket bound there and never listening, which also
// keeps the port from being given to another listener of the test (a
// port closed after listening could be, and the test would then copy to
// its own front).
func closedAddr(t *testing.T) string {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Close(fd) })
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("127.0.0.1:%d", sa.(*syscall.SockaddrInet4).Port)
}
