package mirror

// The end-to-end harness. These tests run one real Caddy inside the test
// process and drive it as an operator does: every config goes through the
// admin API's POST /load, metrics come from its /metrics and reports from
// its /mirror/report.
//
// No port is fixed, so that the suite runs beside anything else on the
// machine:
//   - the admin API listens on a unix socket in a temporary directory;
//   - every site listens on port 0 of a loopback address of its own
//     (`bind 127.0.0.1` for the front, `bind 127.0.0.2` for a second site,
//     ...): the kernel gives it a free port as Caddy binds it, and the
//     harness reads the port back from the running server after each load.
//   - Caddy binds each config's listeners anew on Linux (SO_REUSEPORT), so
//     port 0 would give a site a new port on every reload. While a site
//     bound to an address is running, the harness therefore loads the next
//     config with that site's port in place of 0 (see pinPorts): it keeps
//     its port through the reloads of a test, and the port is never let go
//     of in between.
//
// Every test that starts Caddy is skipped under -short; see startCaddy.

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	_ "github.com/caddyserver/caddy/v2/modules/standard"

	"github.com/caddy-mirror/mirror/compare"
)

// adminURL is the base of admin API requests. Any host will do:
// adminClient dials the admin socket whatever the URL says.
const adminURL = "http://caddy-admin"

// frontAddress is where the front site listens: `bind 127.0.0.1` and
// port 0 in the test Caddyfiles, listen 127.0.0.1:0 in JSON.
const frontAddress = "127.0.0.1"

var (
	caddyOnce    sync.Once
	caddyErr     error
	caddyStarted bool
	adminDir     string       // holds the admin socket
	adminSocket  string       // the admin API's unix socket
	adminClient  *http.Client // dials adminSocket

	// frontURL is the base URL of the site bound to frontAddress in the
	// latest config that a test loaded, such as http://127.0.0.1:43117.
	frontURL string
)

// TestMain chooses where the admin socket will be, and stops the
// in-process Caddy, if a test started it, once every test has run.
func TestMain(m *testing.M) {
	// a short path: a unix socket's path is limited to about 100 bytes
	dir, err := os.MkdirTemp("", "mirror-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "creating the admin socket's directory:", err)
		os.Exit(1)
	}
	adminDir, adminSocket = dir, filepath.Join(dir, "admin.sock")
	adminClient = unixClient(adminSocket)
	code := m.Run()
	if caddyStarted {
		_ = caddy.Stop()
	}
	_ = os.RemoveAll(adminDir)
	os.Exit(code)
}

// startCaddy starts the in-process Caddy on first use, with its admin API
// on a unix socket. It skips the test under -short, since what starts
// Caddy is an end-to-end test.
func startCaddy(t testing.TB) {
	t.Helper()
	if testing.Short() {
		t.Skip("starts an in-process Caddy: an end-to-end test, not run with -short")
	}
	caddyOnce.Do(func() {
		caddyStarted = true
		caddyErr = caddy.Load(fmt.Appendf(nil, `{"admin": {"listen": "unix/%s", "config": {"persist": false}}}`, adminSocket), true)
	})
	if caddyErr != nil {
		t.Fatalf("starting the in-process Caddy: %v", caddyErr)
	}
}

// caddyfileGlobals returns the global options block that starts every
// Caddyfile these tests load, with extra options added inside it.
func caddyfileGlobals(extra ...string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "{\n\tadmin unix/%s\n\tpersist_config off\n\tskip_install_trust\n", adminSocket)
	// no HTTP->HTTPS redirect server, which would bind port 80
	b.WriteString("\tauto_https disable_redirects\n\tgrace_period 1ns\n")
	for _, e := range extra {
		b.WriteString("\t" + strings.ReplaceAll(strings.TrimSpace(e), "\n", "\n\t") + "\n")
	}
	b.WriteString("}\n")
	return b.String()
}

// caddyTester is a client of the in-process Caddy's sites.
type caddyTester struct {
	// Client sends requests to the sites. It trusts any certificate:
	// Caddy's internal CA is not installed in tests.
	Client *http.Client
	t      testing.TB
}

// loadSites starts the in-process Caddy if need be and loads the test
// globals followed by sites, a Caddyfile, through POST /load.
func loadSites(t testing.TB, sites string) *caddyTester {
	t.Helper()
	startCaddy(t)
	return loadConfig(t, []byte(caddyfileGlobals()+sites), "text/caddyfile")
}

// loadConfig starts the in-process Caddy if need be and loads cfg, of the
// given content type, through POST /load, failing the test if Caddy
// refuses it. The admin section of a JSON cfg must be adminJSON().
func loadConfig(t testing.TB, cfg []byte, contentType string) *caddyTester {
	t.Helper()
	startCaddy(t)
	if status, msg := postLoad(t, cfg, contentType); status != http.StatusOK {
		t.Fatalf("POST /load: %d %s\nconfig:\n%s", status, msg, cfg)
	}
	transport := &http.Transport{
		TLSClientConfig:   &tls.Config{InsecureSkipVerify: true},
		ForceAttemptHTTP2: true,
	}
	t.Cleanup(transport.CloseIdleConnections)
	return &caddyTester{Client: &http.Client{Transport: transport, Timeout: waitLimit}, t: t}
}

// postLoad sends cfg to POST /load and returns the status and the body of
// the answer. After a successful load it reads the sites' ports back.
func postLoad(t testing.TB, cfg []byte, contentType string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, adminURL+"/load", bytes.NewReader(pinPorts(cfg)))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", contentType)
	resp, err := adminClient.Do(req)
	if err != nil {
		t.Fatalf("POST /load: %v", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode == http.StatusOK {
		awaitHandover(t)
		refreshFrontURL(t)
	}
	return resp.StatusCode, string(body)
}

// awaitHandover waits, after a config change, until the previous config's
// servers have stopped listening. Caddy binds each config's listeners anew
// (SO_REUSEPORT) and returns from a load once the old servers' shutdowns
// have started, not finished: until an old listener is closed, the kernel
// may hand it a new connection, which the old config then serves. Each
// running site's address must be left with one listening socket, its own.
// Where /proc/net/tcp cannot be read, it does not wait.
func awaitHandover(t testing.TB) {
	t.Helper()
	app, err := caddy.ActiveContext().AppIfConfigured("http")
	if err != nil {
		return
	}
	var addrs []*net.TCPAddr
	for _, srv := range app.(*caddyhttp.App).Servers {
		for _, ln := range srv.Listeners() {
			if addr, ok := ln.Addr().(*net.TCPAddr); ok {
				addrs = append(addrs, addr)
			}
		}
	}
	deadline := time.Now().Add(waitLimit)
	for _, addr := range addrs {
		for {
			n, err := listeningSockets(addr)
			if err != nil || n <= 1 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("after a config change, %d sockets still listen on %s, want the new config's alone", n, addr)
			}
			time.Sleep(time.Millisecond) // polled, as goleak polls
		}
	}
}

// listeningSockets counts the TCP sockets listening on addr, an IPv4
// address, from /proc/net/tcp.
func listeningSockets(addr *net.TCPAddr) (int, error) {
	table, err := os.ReadFile("/proc/net/tcp")
	if err != nil {
		return 0, err
	}
	ip := addr.IP.To4()
	if ip == nil {
		return 0, errors.New("not an IPv4 address")
	}
	// the kernel writes the address in host byte order (little-endian
	// here), then the port in hex
	local := fmt.Sprintf("%02X%02X%02X%02X:%04X", ip[3], ip[2], ip[1], ip[0], addr.Port)
	const listen = "0A"
	n := 0
	for _, line := range strings.Split(string(table), "\n")[1:] {
		if f := strings.Fields(line); len(f) > 3 && f[1] == local && f[3] == listen {
			n++
		}
	}
	return n, nil
}

// refreshFrontURL reads the front's port back after a load. It writes
// frontURL only when the port changed, so that a test reloading while its
// clients read frontURL races with nothing: the front keeps its listener,
// and its port, while each config binds the same address.
func refreshFrontURL(t testing.TB) {
	t.Helper()
	if u := siteURL(t, frontAddress); u != frontURL {
		frontURL = u
	}
}

// Where a config binds port 0 of a loopback address: a Caddyfile site
// address ending in :0 whose block starts with bind, and a JSON listen
// address.
var (
	caddyfilePortZero = regexp.MustCompile(`(?m)^(\S*:)0( \{\n\s*bind (127\.0\.0\.\d+)\n)`)
	jsonPortZero      = regexp.MustCompile(`"(127\.0\.0\.\d+):0"`)
)

// pinPorts returns cfg with port 0 of each loopback address replaced by
// the port that the running site bound to that address has, if one is
// running, so that the site keeps its port across the load.
func pinPorts(cfg []byte) []byte {
	cfg = caddyfilePortZero.ReplaceAllFunc(cfg, func(m []byte) []byte {
		sub := caddyfilePortZero.FindSubmatch(m)
		if hostPort := siteHostPortIfRunning(string(sub[3])); hostPort != "" {
			_, port, _ := net.SplitHostPort(hostPort)
			return slices.Concat(sub[1], []byte(port), sub[2])
		}
		return m
	})
	return jsonPortZero.ReplaceAllFunc(cfg, func(m []byte) []byte {
		sub := jsonPortZero.FindSubmatch(m)
		if hostPort := siteHostPortIfRunning(string(sub[1])); hostPort != "" {
			return []byte(`"` + hostPort + `"`)
		}
		return m
	})
}

// siteHostPortIfRunning returns the host:port of the running site bound
// to host, or "".
func siteHostPortIfRunning(host string) string {
	_, hostPort, _ := strings.Cut(runningSiteURL(host), "://")
	return hostPort
}

// adminJSON is the admin section of the JSON configs that tests load.
func adminJSON() map[string]any {
	return map[string]any{"listen": "unix/" + adminSocket, "config": map[string]any{"persist": false}}
}

// siteURL returns the base URL of the running site bound to host, such as
// http://127.0.0.2:40511, or "" if no site is bound there.
func siteURL(t testing.TB, host string) string {
	t.Helper()
	return runningSiteURL(host)
}

// runningSiteURL is siteURL, for callers without a test.
func runningSiteURL(host string) string {
	app, err := caddy.ActiveContext().AppIfConfigured("http")
	if err != nil {
		return ""
	}
	for _, srv := range app.(*caddyhttp.App).Servers {
		for _, ln := range srv.Listeners() {
			addr, ok := ln.Addr().(*net.TCPAddr)
			if !ok || addr.IP.String() != host {
				continue
			}
			scheme := "http"
			if len(srv.TLSConnPolicies) > 0 {
				scheme = "https"
			}
			return fmt.Sprintf("%s://%s", scheme, addr)
		}
	}
	return ""
}

// siteHostPort returns the host:port that the site bound to host listens
// on, failing the test if there is none.
func siteHostPort(t testing.TB, host string) string {
	t.Helper()
	u := siteURL(t, host)
	if u == "" {
		t.Fatalf("no running site is bound to %s", host)
	}
	_, hostPort, _ := strings.Cut(u, "://")
	return hostPort
}

// unloadMirrors replaces the running config with one without mirrors. Caddy
// cleans up the old handlers, which waits for their copies, so afterwards
// every copy has been counted and every backend request made.
func unloadMirrors(tester *caddyTester) {
	if !caddyStarted {
		return
	}
	cfg := caddyfileGlobals() + "http://:0 {\n\tbind " + frontAddress + "\n\trespond \"no mirror\"\n}\n"
	req, err := http.NewRequest(http.MethodPost, adminURL+"/load", bytes.NewReader(pinPorts([]byte(cfg))))
	if err != nil {
		return
	}
	req.Header.Set("Content-Type", "text/caddyfile")
	if resp, err := adminClient.Do(req); err == nil {
		resp.Body.Close()
		if tester != nil && tester.t != nil {
			awaitHandover(tester.t)
		}
	}
}

// adminDo sends a request to the admin API and fails the test unless it
// succeeds.
func adminDo(t testing.TB, method, path string, body []byte) {
	t.Helper()
	startCaddy(t)
	if method == http.MethodPost && path == "/load" {
		body = pinPorts(body)
	}
	req, _ := http.NewRequest(method, adminURL+path, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	resp, err := adminClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(resp.Body)
		t.Fatalf("%s %s: %d %s", method, path, resp.StatusCode, msg)
	}
	awaitHandover(t)
	if method == http.MethodPost && path == "/load" {
		refreshFrontURL(t)
	}
}

// adminGet fetches path from the admin API and returns its body, failing
// the test unless the answer is 200.
func adminGet(t testing.TB, path string) []byte {
	t.Helper()
	resp, err := adminClient.Get(adminURL + path)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: reading the answer: %v", path, err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %.200s", path, resp.StatusCode, body)
	}
	return body
}

// do sends req through the tester's client and returns the status and body.
func do(t testing.TB, tester *caddyTester, req *http.Request) (int, string) {
	t.Helper()
	resp, err := tester.Client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading response: %v", err)
	}
	return resp.StatusCode, string(body)
}

// mustRequest returns a new request without a body.
func mustRequest(t testing.TB, method, url string) *http.Request {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	return req
}

// metricFamilies scrapes the admin endpoint's /metrics, checking that the
// answer is Prometheus's text format.
func metricFamilies(t testing.TB) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := adminClient.Get(adminURL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(resp.Body)
		t.Fatalf("GET /metrics: %d %.200s", resp.StatusCode, body)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parsing /metrics: %v", err)
	}
	return families
}

// metricValue reads a sample of caddy_http_mirror_requests_total from the
// admin endpoint's /metrics.
func metricValue(t testing.TB, target, outcome string) float64 {
	t.Helper()
	return scrape(t, "caddy_http_mirror_requests_total", map[string]string{"target": target, "outcome": outcome})
}

// scrape reads the value of the counter or gauge (or the sample count of
// the histogram) with exactly the given labels from the admin endpoint's
// /metrics.
func scrape(t testing.TB, name string, want map[string]string) float64 {
	t.Helper()
	family, ok := metricFamilies(t)[name]
	if !ok {
		t.Fatalf("/metrics has no %s", name)
	}
	for _, m := range family.GetMetric() {
		labels := map[string]string{}
		for _, l := range m.GetLabel() {
			labels[l.GetName()] = l.GetValue()
		}
		if maps.Equal(labels, want) {
			switch {
			case m.GetHistogram() != nil:
				return float64(m.GetHistogram().GetSampleCount())
			case m.GetGauge() != nil:
				return m.GetGauge().GetValue()
			}
			return m.GetCounter().GetValue()
		}
	}
	t.Fatalf("/metrics has no sample of %s with %v", name, want)
	return 0
}

// reportOf returns the comparison report of the target named name, from
// this process's reports, failing the test if there is none.
func reportOf(t testing.TB, name string) compare.TargetReport {
	t.Helper()
	for _, r := range compare.CurrentReport().Targets {
		if r.Name == name {
			return r
		}
	}
	t.Fatalf("no comparison report is named %q", name)
	return compare.TargetReport{}
}

// seenRequest is what a backend received.
type seenRequest struct {
	method, requestURI, host, proto string
	header                          http.Header
	body                            string
}

// backend is an httptest server that reports every request it receives.
type backend struct {
	*httptest.Server
	seen chan seenRequest
}

// newBackend starts a backend that answers every request with status and
// body, after reporting it.
func newBackend(t testing.TB, status int, body string) *backend {
	t.Helper()
	b := &backend{seen: make(chan seenRequest, 1024)}
	b.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// a body cut short (the client or the proxy gave up) is reported as
		// far as it came; tests compare bodies
		data, _ := io.ReadAll(r.Body)
		b.seen <- seenRequest{r.Method, r.RequestURI, r.Host, r.Proto, r.Header.Clone(), string(data)}
		w.Header().Set("X-Backend", body)
		w.WriteHeader(status)
		_, _ = io.WriteString(w, body)
	}))
	t.Cleanup(b.Close)
	return b
}

// addr returns the backend's host:port.
func (b *backend) addr() string {
	return strings.TrimPrefix(b.URL, "http://")
}

// assertNothingSeen fails the test if b received a request. Call it only
// after the config that could have sent one has been unloaded.
func (b *backend) assertNothingSeen(t testing.TB, name string) {
	t.Helper()
	select {
	case r := <-b.seen:
		t.Errorf("%s received %s %s, want nothing", name, r.method, r.requestURI)
	default:
	}
}

// errNoSite is returned by dialSite when the site is not running.
var errNoSite = errors.New("no running site at that address")

// dialSite returns a DialContext for clients of a TLS site whose URL
// names localhost: it dials the loopback address the site is bound to,
// whatever localhost resolves to on this machine.
func dialSite(hostPort string) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, _ string) (net.Conn, error) {
		if hostPort == "" {
			return nil, errNoSite
		}
		return (&net.Dialer{}).DialContext(ctx, network, hostPort)
	}
}
