package mirror

import (
	"bufio"
	"cmp"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// TestMirrorFaults puts hostile shadows behind the mirror. For each, the
// primary's responses must be exactly those with no mirror, and the copy
// must end with the expected outcome.
func TestMirrorFaults(t *testing.T) {
	want := baseline(t)
	// answer reads a request's head, writes raw, then runs after.
	answer := func(raw string, after func(net.Conn)) func(net.Conn) {
		return func(conn net.Conn) {
			defer conn.Close()
			br := bufio.NewReader(conn)
			req, err := http.ReadRequest(br)
			if err != nil {
				return
			}
			_, _ = io.Copy(io.Discard, req.Body)
			_, _ = io.WriteString(conn, raw)
			if after != nil {
				after(conn)
			}
		}
	}
	waitForHangUp := func(conn net.Conn) { _, _ = io.Copy(io.Discard, conn) }
	json := func(body string, header ...string) string {
		return "HTTP/1.1 202 Accepted\r\nConnection: close\r\nContent-Type: application/json\r\n" + strings.Join(header, "") +
			"Content-Length: " + fmt.Sprint(len(body)) + "\r\n\r\n" + body
	}
	for _, tc := range []struct {
		name    string
		serve   func(net.Conn) // nil: an unresolvable host
		https   bool           // the copy is sent over TLS, verification off
		timeout string
		want    outcome
		code    string // a status the duration histogram must have counted
	}{
		// a shadow that accepts connections and never completes a TLS
		// handshake: the handshake timeout, no longer than the target's,
		// ends each, and no connection outlives its copy (checked below)
		{name: "TLS handshake that never completes", https: true, timeout: "1s", want: failed, serve: waitForHangUp},
		{name: "9 MB of response headers", want: failed, serve: answer("HTTP/1.1 200 OK\r\n"+strings.Repeat("X-Bomb: "+strings.Repeat("b", 1000)+"\r\n", 9000)+"\r\n", nil)},
		{name: "numbers with huge exponents", want: mirrored, code: "202", serve: answer(json(`{"a":1e-999999,"b":[`+strings.Repeat("1e999999,", 250)+`1]}`), nil)},
		{name: "a zstd window of 512 MiB", want: mirrored, code: "202", serve: answer(json(zstdWindowBomb, "Content-Encoding: zstd\r\n"), nil)},
		{name: "a 900 KB member name", want: mirrored, code: "202", serve: answer(json(`{"`+strings.Repeat("k", 900<<10)+`":1}`), nil)},
		// the status came back: the copy is mirrored, and when compared, a
		// mismatch for its cut body, never skipped_streaming
		{name: "body cut by the timeout", timeout: "1s", want: mirrored, code: "202", serve: answer("HTTP/1.1 202 Accepted\r\nContent-Type: text/plain\r\nContent-Length: 1000\r\n\r\npartial", waitForHangUp)},
		{name: "a made-up status", want: mirrored, code: "other", serve: answer("HTTP/1.1 777 Whatever\r\nConnection: close\r\nContent-Length: 0\r\n\r\n", nil)},
		{name: "slowloris headers", serve: answer("HTTP/1.1 200 OK\r\nX-Slow: a", waitForHangUp), timeout: "1s", want: failed},
		{name: "endless body", want: mirrored, code: "200", serve: answer("HTTP/1.1 200 OK\r\n\r\n", func(conn net.Conn) {
			chunk := strings.Repeat("x", 64<<10)
			for {
				if _, err := io.WriteString(conn, chunk); err != nil {
					return // the mirror stopped reading and hung up
				}
			}
		})},
		{name: "huge response headers", want: failed, serve: answer("HTTP/1.1 200 OK\r\nX-Huge: "+strings.Repeat("h", 11<<20)+"\r\n\r\n", nil)},
		{name: "reset mid-response", want: mirrored, code: "200", serve: answer("HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\npartial", func(conn net.Conn) {
			_ = conn.(*net.TCPConn).SetLinger(0)
		})},
		{name: "5xx", want: mirrored, code: "503", serve: answer("HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n", nil)},
		{name: "closes before responding", want: failed, serve: answer("", nil)},
		{name: "never reads the body", timeout: "1s", want: failed, serve: func(conn net.Conn) {
			defer conn.Close()
			_, _ = http.ReadRequest(bufio.NewReader(conn)) // the head only
			waitForHangUp(conn)
		}},
		{name: "unresolvable host", timeout: "2s", want: failed},
		// a protocol switch that the copy did not ask for hands the
		// connection over to the body, out of the reach of its context
		{name: "unrequested 101", want: failed, serve: answer("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: evil\r\n\r\nGARBAGE", waitForHangUp)},
		{name: "1xx flood", timeout: "1s", want: failed, serve: answer("", func(conn net.Conn) {
			for {
				if _, err := io.WriteString(conn, "HTTP/1.1 102 Processing\r\n\r\n"); err != nil {
					return
				}
			}
		})},
	} {
		for _, compare := range []bool{false, true} {
			name := tc.name
			compareCfg := ""
			if compare {
				name += " compared"
				compareCfg = `,"compare":{}`
			}
			t.Run(name, func(t *testing.T) {
				rec := recordOutcomes(t)
				upstream := "http://mirror-test.invalid"
				var conns *connCount
				if tc.serve != nil {
					conns = new(connCount)
					addr, _ := rawShadow(t, conns.track(tc.serve))
					upstream = "http://" + addr
					if tc.https {
						upstream = "https://" + addr
						compareCfg += `,"transport":{"protocol":"http","tls":{"insecure_skip_verify":true}}`
					}
				}
				timeout := cmp.Or(tc.timeout, "10s")
				// a fixed limit: the adaptive one could cancel a copy held
				// past minLate (cancelled_late, tested on its own) before
				// the fault's own outcome is reached
				h := provisionHandler(t, fmt.Sprintf(`{"targets":[{"upstream":%q,"timeout":%q,"concurrency":{"fixed":true}%s}],"max_body_size":8388608}`, upstream, timeout, compareCfg))
				front := serveThrough(t, h, checksumPrimary)
				got := sendOnOneConnection(t, front.URL, nil)
				for i := range got {
					if got[i].String() != want[i].String() {
						t.Errorf("response %d = %v, want %v as with no mirror", i+1, got[i], want[i])
					}
				}
				for _, o := range rec.wait(t, 2) {
					if o.outcome != tc.want {
						t.Errorf("outcome = %v, want %v", o.outcome, tc.want)
					}
				}
				tg := h.Targets[0]
				if n := gaugeValue(t, tg.inFlight); n != 0 {
					t.Errorf("in-flight gauge = %v after both copies ended, want 0", n)
				}
				if conns != nil {
					// every connection the copies opened is closed (the
					// shadow sees its end), but one kept for reuse
					conns.waitOpenAtMost(t, 1)
				}
				if compare {
					counts := reportOf(t, tg.label).Counts
					for result, n := range counts {
						if n != 0 && (tc.want != mirrored || result == "skipped_streaming") {
							t.Errorf("compare result %s counted %d times, want none for a copy %v", result, n, tc.want)
						}
					}
				}
				if tc.code != "" {
					var m dto.Metric
					if err := tg.durations.WithLabelValues(tc.code).(prometheus.Metric).Write(&m); err != nil {
						t.Fatal(err)
					}
					if n := m.GetHistogram().GetSampleCount(); n != 2 {
						t.Errorf("duration histogram for code %s counted %d exchanges, want 2", tc.code, n)
					}
				}
			})
		}
	}
}

// zstdWindowBomb is a zstd frame of one empty raw block whose header asks
// for a window of 512 MiB (2^29): magic, a frame header with a window
// descriptor (exponent 19), a last raw block of size 0.
const zstdWindowBomb = "\x28\xb5\x2f\xfd\x00\x98\x01\x00\x00"

// connCount counts a raw shadow's connections that are open.
type connCount struct {
	mu   sync.Mutex
	open int
	cond *sync.Cond
}

// track wraps serve so that the connections it serves are counted until
// the mirror closes them: serve must return once its peer has hung up.
func (c *connCount) track(serve func(net.Conn)) func(net.Conn) {
	c.cond = sync.NewCond(&c.mu)
	return func(conn net.Conn) {
		c.mu.Lock()
		c.open++
		c.mu.Unlock()
		defer func() {
			c.mu.Lock()
			c.open--
			c.mu.Unlock()
			c.cond.Broadcast()
		}()
		serve(conn)
	}
}

// waitOpenAtMost waits until at most n connections are open, failing the
// test after waitLimit.
func (c *connCount) waitOpenAtMost(t *testing.T, n int) {
	t.Helper()
	timer := time.AfterFunc(waitLimit, c.cond.Broadcast)
	defer timer.Stop()
	deadline := time.Now().Add(waitLimit)
	c.mu.Lock()
	defer c.mu.Unlock()
	for c.open > n {
		if time.Now().After(deadline) {
			t.Errorf("%d connections to the shadow still open after the copies ended, want at most %d", c.open, n)
			return
		}
		c.cond.Wait()
	}
}

// gaugeValue reads g's current value.
func gaugeValue(t testing.TB, g prometheus.Gauge) float64 {
	t.Helper()
	var m dto.Metric
	if err := g.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetGauge().GetValue()
}

// TestTLSHangOpensTheBreaker: a shadow that accepts connections and never
// completes a TLS handshake, with the mirror's defaults but a 1s timeout:
// each copy fails within the timeout, its socket closed, and after
// max_fails of them the breaker opens, so that the next copies cost no
// connection at all (dropped_unhealthy).
func TestTLSHangOpensTheBreaker(t *testing.T) {
	rec := recordOutcomes(t)
	conns := new(connCount)
	addr, accepted := rawShadow(t, conns.track(func(conn net.Conn) { _, _ = io.Copy(io.Discard, conn) }))
	h := provisionHandler(t, fmt.Sprintf(`{"targets":[{"upstream":"https://%s","timeout":"1s","transport":{"protocol":"http","tls":{"insecure_skip_verify":true}}}]}`, addr))
	front := serveThrough(t, h, checksumPrimary)
	for range defaultMaxFails {
		sendOnOneConnection(t, front.URL, nil)
	}
	got := counts(rec.wait(t, 2*defaultMaxFails))
	if got["failed"]+got["cancelled_late"] < defaultMaxFails {
		t.Fatalf("outcomes %v, want at least %d failed or cancelled_late", got, defaultMaxFails)
	}
	conns.waitOpenAtMost(t, 0)
	seen := len(accepted)
	sendOnOneConnection(t, front.URL, nil)
	if got := counts(rec.wait(t, 2)); got["dropped_unhealthy"] != 2 {
		t.Errorf("once the breaker is open: %v, want 2 dropped_unhealthy", got)
	}
	if n := len(accepted); n != seen {
		t.Errorf("%d more connections to the hanging shadow once the breaker opened, want none", n-seen)
	}
}
