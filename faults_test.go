package mirror

import (
	"bufio"
	"cmp"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"

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
	for _, tc := range []struct {
		name    string
		serve   func(net.Conn) // nil: an unresolvable host
		timeout string
		want    outcome
		code    string // a status the duration histogram must have counted
	}{
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
				if tc.serve != nil {
					addr, _ := rawShadow(t, tc.serve)
					upstream = "http://" + addr
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

// gaugeValue reads g's current value.
func gaugeValue(t testing.TB, g prometheus.Gauge) float64 {
	t.Helper()
	var m dto.Metric
	if err := g.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetGauge().GetValue()
}
