package mirror

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"runtime"
	"testing"
	"time"

	"github.com/quic-go/quic-go"
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
https://localhost:0 {
	%s
	mirror @copied {
		to %s {
			name tls-clients
			compare
		}
	}
	reverse_proxy %s
}
`, tlsFrontRoutes, candidate.URL, primary.URL))
	t.Cleanup(func() { unloadMirrors(tester) })
	front := waitForTLSFront(t)
	resetReport(t)
	h3 := front.h3Transport()
	t.Cleanup(func() { h3.Close() })
	clients := map[string]*http.Client{
		"HTTP/2.0": front.h2Client(),
		"HTTP/3.0": {Transport: h3},
	}
	for proto, client := range clients {
		resp, err := client.Get(front.url + "/doc")
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

// tlsFront is a tls internal site of the in-process Caddy, bound to
// 127.0.0.1 with its TCP and UDP ports chosen by the kernel. Its
// Caddyfile answers GET /alt-svc itself, without mirroring it, so that a
// client can learn the HTTP/3 port from Alt-Svc as browsers do.
type tlsFront struct {
	url     string // https://localhost:<tcp port>
	tcpAddr string // where HTTP/1.1 and HTTP/2 go
	udpAddr string // where HTTP/3 goes
	tls     *tls.Config
}

// tlsFrontRoutes are the lines that a tlsFront's site block starts with;
// its mirror directive takes the @copied matcher.
const tlsFrontRoutes = `bind 127.0.0.1
	tls internal
	@copied not path /alt-svc
	respond /alt-svc "the HTTP/3 port is in Alt-Svc"`

// waitForTLSFront waits until the tls internal site bound to 127.0.0.1
// answers GET /alt-svc over HTTP/2 (Caddy obtains the internal certificate
// in the background), and returns it with its HTTP/3 address from the
// answer's Alt-Svc. Caddy's internal CA is not in the system pool in
// tests, so the client skips verifying the front's certificate (the
// shadows are plain HTTP).
func waitForTLSFront(t testing.TB) tlsFront {
	t.Helper()
	hostPort := siteHostPort(t, "127.0.0.1")
	_, port, _ := net.SplitHostPort(hostPort)
	f := tlsFront{
		url:     "https://localhost:" + port,
		tcpAddr: hostPort,
		tls:     &tls.Config{InsecureSkipVerify: true, ServerName: "localhost"},
	}
	client := f.h2Client()
	defer client.CloseIdleConnections()
	deadline := time.Now().Add(waitLimit)
	for {
		resp, err := client.Get(f.url + "/alt-svc")
		if err == nil {
			resp.Body.Close()
			h3 := regexp.MustCompile(`h3=":(\d+)"`).FindStringSubmatch(resp.Header.Get("Alt-Svc"))
			if resp.StatusCode != http.StatusOK || h3 == nil {
				t.Fatalf("GET /alt-svc: %d, Alt-Svc %q: want 200 and an h3 port", resp.StatusCode, resp.Header.Get("Alt-Svc"))
			}
			f.udpAddr = net.JoinHostPort("127.0.0.1", h3[1])
			return f
		}
		if time.Now().After(deadline) {
			t.Fatalf("no answer from the TLS front: %v", err)
		}
		runtime.Gosched()
	}
}

// h2Client returns a client of the front over TLS, HTTP/2 when both
// sides offer it, that dials the front's address whatever localhost
// resolves to.
func (f tlsFront) h2Client() *http.Client {
	return &http.Client{Transport: &http.Transport{
		TLSClientConfig:   f.tls,
		ForceAttemptHTTP2: true,
		DialContext:       dialSite(f.tcpAddr),
	}, Timeout: waitLimit}
}

// h3Transport returns quic-go's HTTP/3 client transport to the front,
// dialing its UDP address whatever localhost resolves to.
func (f tlsFront) h3Transport() *http3.Transport {
	return &http3.Transport{
		TLSClientConfig: f.tls,
		Dial: func(ctx context.Context, _ string, tlsCfg *tls.Config, cfg *quic.Config) (*quic.Conn, error) {
			return quic.DialAddrEarly(ctx, f.udpAddr, tlsCfg, cfg)
		},
	}
}
