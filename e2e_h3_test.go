package mirror

import (
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"runtime"
	"testing"
	"time"

	"github.com/quic-go/quic-go/http3"
)

// TestE2E_CompareHTTP2AndHTTP3Clients: clients over HTTP/2 with TLS and
// over HTTP/3 (quic-go's client) reach a site with tls internal; their
// copies arrive, and their responses are compared.
func TestE2E_CompareHTTP2AndHTTP3Clients(t *testing.T) {
	primary := jsonServer(t, "", `{"id":7,"tags":["a","b"]}`)
	candidate := jsonServer(t, "", `{"tags":["a","b"],"id":7}`)
	rec := recordOutcomes(t)
	tester := loadSites(t, fmt.Sprintf(`
localhost:9443 {
	tls internal
	mirror {
		to %s {
			name tls-clients
			compare
		}
	}
	reverse_proxy %s
}
`, candidate.URL, primary.URL))
	t.Cleanup(func() { unloadMirrors(tester) })
	resetReport(t)

	tlsConfig := waitForTLSFront(t)
	h3 := &http3.Transport{TLSClientConfig: tlsConfig}
	t.Cleanup(func() { h3.Close() })
	clients := map[string]*http.Client{
		"HTTP/2.0": {Transport: &http.Transport{TLSClientConfig: tlsConfig, ForceAttemptHTTP2: true}},
		"HTTP/3.0": {Transport: h3},
	}
	for proto, client := range clients {
		resp, err := client.Get("https://localhost:9443/doc")
		if err != nil {
			t.Fatalf("%s: %v", proto, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.Proto != proto || string(body) != `{"id":7,"tags":["a","b"]}` {
			t.Errorf("%s client got %s %q, want the primary's body", proto, resp.Proto, body)
		}
		if o := rec.wait(t, 1)[0]; o.outcome != mirrored {
			t.Errorf("%s: outcome %v, want mirrored", proto, o.outcome)
		}
	}
	r, raw := getReport(t)
	if len(r.Targets) != 1 || r.Targets[0].Counts["match"] != int64(len(clients)) || r.Targets[0].Compared != int64(len(clients)) {
		t.Errorf("want %d matches, one per client\n%s", len(clients), raw)
	}
}

// waitForTLSFront waits until the tls internal site on localhost:9443
// completes a TLS handshake, and returns the client TLS config that did it.
// Caddy's internal CA is not in the system pool in tests, so the config
// skips verifying the front's certificate (the shadows are plain HTTP).
func waitForTLSFront(t testing.TB) *tls.Config {
	t.Helper()
	tlsConfig := &tls.Config{InsecureSkipVerify: true, ServerName: "localhost"}
	// Caddy obtains the internal certificate in the background: wait
	// until a handshake succeeds (no request is sent, so none is copied)
	deadline := time.Now().Add(waitLimit)
	for {
		conn, err := tls.Dial("tcp", "localhost:9443", tlsConfig)
		if err == nil {
			conn.Close()
			return tlsConfig
		}
		if time.Now().After(deadline) {
			t.Fatalf("no TLS handshake with the front: %v", err)
		}
		runtime.Gosched()
	}
}
