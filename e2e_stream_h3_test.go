package mirror

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
)

// h3UploadSite is a tls internal site that streams copies of large
// uploads to the shadow at %s while reverse_proxy sends them to the
// primary at %s. Its window absorbs this shared machine's scheduling
// stalls but is smaller than the uploads, so a copy that kept the whole
// body would be cut off. Keep-alive to the primary is off: reverse_proxy's
// own connection can outlive an unload (see TestE2E_ReloadUnderLoad), and
// what must return to baseline is what the mirror and HTTP/3 hold.
const h3UploadSite = `
https://localhost:0 {
	` + tlsFrontRoutes + `
	mirror @copied {
		to %s {
			name h3-upload
		}
		stream_window 8MiB
	}
	reverse_proxy %s {
		transport http {
			keepalive off
		}
	}
}
`

// TestStreamHTTP3Client uploads large bodies with quic-go's HTTP/3 client
// through a Caddy site with mirror and reverse_proxy, one with a
// Content-Length and one without: the client, the primary and the shadow
// have the same checksum, the copy keeps the client's length or goes
// chunked, it is counted mirrored and is no longer in flight, and once the
// config is unloaded no goroutine or file descriptor is left behind.
func TestStreamHTTP3Client(t *testing.T) {
	rec := recordOutcomes(t)
	shadow := newStreamShadow(t, 0)
	vias := make(chan string, 2)
	primary := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		vias <- r.Header.Get("Via") // reverse_proxy's, naming the client's protocol
		if err := checksumPrimary.ServeHTTP(w, r); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
		}
	}))
	t.Cleanup(primary.Close)
	site := fmt.Sprintf(h3UploadSite, shadow.URL, primary.URL)

	// Caddy, its internal CA and its certificate cache outlive a config:
	// start them before counting goroutines and open files
	tester := loadSites(t, site)
	front := waitForTLSFront(t)
	unloadMirrors(tester)
	// the test's own keep-alive connections to the admin endpoint
	adminClient.CloseIdleConnections()
	tester.Client.CloseIdleConnections()
	goroutines0, fds0 := runtime.NumGoroutine(), openFiles()

	loadSites(t, site)
	t.Cleanup(func() { unloadMirrors(tester) })
	// the TCP port is kept; the UDP one may change (see pinPorts)
	if f := waitForTLSFront(t); f.url != front.url {
		t.Fatalf("the front moved from %s to %s on reload", front.url, f.url)
	} else {
		front = f
	}
	h3 := front.h3Transport()
	t.Cleanup(func() { h3.Close() })
	client := &http.Client{Transport: h3}
	for _, tc := range []struct {
		size  int64
		known bool
	}{{32 << 20, true}, {16 << 20, false}} {
		start := time.Now()
		primarySum, clientSum := upload(t, client, front.url+"/upload", tc.size, tc.known)
		elapsed := time.Since(start) // reported, never asserted
		if via := receive(t, vias, "the primary's request"); via != "3.0 Caddy" {
			t.Fatalf("the primary's request came Via %q, want 3.0 Caddy (an HTTP/3 client)", via)
		}
		c := receive(t, shadow.got, "the copy")
		wantLength := tc.size
		if !tc.known {
			wantLength = -1 // streamed before its length was known
		}
		if primarySum != clientSum || c.sum != clientSum || c.n != tc.size || c.err != nil {
			t.Errorf("%d bytes, length known %v: primary %s, shadow %s (%d bytes, error %v), want %s",
				tc.size, tc.known, primarySum, c.sum, c.n, c.err, clientSum)
		}
		if c.contentLength != wantLength {
			t.Errorf("%d bytes, length known %v: copy's Content-Length = %d, want %d", tc.size, tc.known, c.contentLength, wantLength)
		}
		if o := rec.wait(t, 1)[0]; o.target != "h3-upload" || o.outcome != mirrored {
			t.Errorf("%d bytes, length known %v: outcome %s for %s, want mirrored for h3-upload", tc.size, tc.known, o.outcome, o.target)
		}
		t.Logf("%d MiB over HTTP/3, length known %v: uploaded in %v, copy %d bytes with Content-Length %d", tc.size>>20, tc.known, elapsed.Round(time.Millisecond), c.n, c.contentLength)
	}
	inFlight := -1.0
	for _, s := range scrapeFamily(t, "caddy_http_mirror_in_flight") {
		if s.labels["target"] == "h3-upload" {
			inFlight = s.value
		}
	}
	if inFlight != 0 {
		t.Errorf("caddy_http_mirror_in_flight{target=\"h3-upload\"} = %v after both copies were counted, want 0", inFlight)
	}

	h3.Close()
	unloadMirrors(tester) // closes the site's listeners and its idle connections
	if n := connectionsLeft(shadow.URL, primary.URL); n != 0 {
		t.Errorf("%d connections to the shadow or the primary are still open after the unload, want none", n)
	}
	goroutines, fds := settled(goroutines0, fds0)
	t.Logf("goroutines %d, then %d; open files %d, then %d", goroutines0, goroutines, fds0, fds)
	if goroutines > goroutines0+4 || fds > fds0+4 {
		t.Errorf("after the uploads: %d goroutines and %d open files, want the %d and %d of before (±4)", goroutines, fds, goroutines0, fds0)
	}
}

// connectionsLeft waits until no TCP connection to or from the ports of
// the servers at urls is open in /proc/net/tcp (TIME_WAIT holds no file and
// is not counted), polling as settled does, and returns how many are
// left; 0 where /proc is not available.
func connectionsLeft(urls ...string) int {
	ports := make(map[string]bool)
	for _, u := range urls {
		_, port, _ := net.SplitHostPort(strings.TrimPrefix(u, "http://"))
		n, _ := strconv.Atoi(port)
		ports[fmt.Sprintf("%04X", n)] = true
	}
	deadline := time.Now().Add(waitLimit)
	for {
		table, _ := os.ReadFile("/proc/net/tcp")
		open := 0
		for _, line := range strings.Split(string(table), "\n")[1:] {
			f := strings.Fields(line)
			if len(f) < 4 || f[3] == "0A" || f[3] == "06" { // listening, TIME_WAIT
				continue
			}
			_, local, _ := strings.Cut(f[1], ":")
			_, remote, _ := strings.Cut(f[2], ":")
			if ports[local] || ports[remote] {
				open++
			}
		}
		if open == 0 || time.Now().After(deadline) {
			return open
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestStreamHTTP3ClientAborts has quic-go's HTTP/3 client give up half-way
// through a streamed upload, which resets its stream: the primary reads
// what was sent and then an error, the shadow a truncated request and an
// error, the copy is counted cut_off_incomplete, and no connection to
// either is left once the config is unloaded.
func TestStreamHTTP3ClientAborts(t *testing.T) {
	const sent, declared = 3 << 20, 8 << 20
	rec := recordOutcomes(t)
	shadow := newStreamShadow(t, 0)
	halfway := newHalfwayPrimary(sent)
	primary := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = halfway.ServeHTTP(w, r)
	}))
	t.Cleanup(primary.Close)
	tester := loadSites(t, fmt.Sprintf(h3UploadSite, shadow.URL, primary.URL))
	t.Cleanup(func() { unloadMirrors(tester) })
	front := waitForTLSFront(t)
	h3 := front.h3Transport()
	t.Cleanup(func() { h3.Close() })

	ctx, abort := context.WithCancel(context.Background())
	defer abort()
	body, feed := io.Pipe()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, front.url+"/upload", body)
	if err != nil {
		t.Fatal(err)
	}
	req.ContentLength = declared
	done := make(chan error, 1)
	go func() {
		resp, err := h3.RoundTrip(req)
		if err == nil {
			resp.Body.Close()
		}
		done <- err
	}()
	if _, err := io.Copy(feed, io.LimitReader(newGeneratedBody(declared), sent)); err != nil {
		t.Fatal(err)
	}
	receive(t, halfway.reading, "the primary to read all that was sent")
	receive(t, shadow.started, "the copy's request at the shadow")
	abort()
	if err := receive(t, done, "the client's request to end"); err == nil {
		t.Error("the abandoned upload got a response, want an error")
	}
	feed.Close()

	p, c := assertAbandoned(t, halfway, shadow, rec, declared)
	t.Logf("abandoned after %d of %d bytes: the primary read %d (%v), the shadow %d (%v)", sent, declared, p.n, p.err, c.n, c.err)
	h3.Close()
	unloadMirrors(tester)
	if n := connectionsLeft(shadow.URL, primary.URL); n != 0 {
		t.Errorf("%d connections to the shadow or the primary are still open after the unload, want none", n)
	}
}

// TestStreamHTTP3SlowShadowCutOff has quic-go's HTTP/3 client upload 64 MiB
// at full speed while the shadow reads 64 KiB a second: the primary gets
// every byte, the copy is cut off and counted cut_off_slow, and no
// connection to the shadow or the primary is left once the config is
// unloaded.
func TestStreamHTTP3SlowShadowCutOff(t *testing.T) {
	const size = 64 << 20
	rec := recordOutcomes(t)
	shadow := newStreamShadow(t, 64<<10)
	primary := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := checksumPrimary.ServeHTTP(w, r); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
		}
	}))
	t.Cleanup(primary.Close)
	tester := loadSites(t, fmt.Sprintf(h3UploadSite, shadow.URL, primary.URL))
	t.Cleanup(func() { unloadMirrors(tester) })
	front := waitForTLSFront(t)
	h3 := front.h3Transport()
	t.Cleanup(func() { h3.Close() })

	primarySum, clientSum := upload(t, &http.Client{Transport: h3}, front.url+"/upload", size, true)
	if primarySum != clientSum {
		t.Errorf("primary checksum %s, want the client's %s", primarySum, clientSum)
	}
	if o := rec.wait(t, 1)[0]; o.target != "h3-upload" || o.outcome != cutOffSlow {
		t.Errorf("outcome %s for %s, want cut_off_slow for h3-upload", o.outcome, o.target)
	}
	assertShadowTruncated(t, shadow, size)
	h3.Close()
	unloadMirrors(tester)
	if n := connectionsLeft(shadow.URL, primary.URL); n != 0 {
		t.Errorf("%d connections to the shadow or the primary are still open after the unload, want none", n)
	}
}
