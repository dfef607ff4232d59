package mirror

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"

	"go.uber.org/goleak"
)

// TestStreamGiB uploads 1 GiB, generated as it is sent, through the mirror
// to a primary and a fast shadow: the checksums at the client, the primary
// and the shadow are equal, and the heap grows by no more than the
// documented bound of one streamed copy (max_body_size + stream_window +
// stream_slack), plus what net/http's own buffers take.
func TestStreamGiB(t *testing.T) {
	const size = 1 << 30
	if testing.Short() {
		t.Skip("moves 1 GiB three times over loopback")
	}
	rec := recordOutcomes(t)
	shadow := newStreamShadow(t, 0)
	// the defaults: the window and the slack absorb this shared machine's
	// scheduling stalls, which are long at the ~150 MB/s the race detector
	// allows; a fast shadow must not be cut off here
	h := provisionHandler(t, fmt.Sprintf(`{"targets":[{"upstream":%q}]}`, shadow.URL))
	front := serveThrough(t, h, remotePrimary(t))

	stop := make(chan struct{})
	peak := heapPeak(stop)
	primarySum, clientSum := upload(t, http.DefaultClient, front.URL, size, true)
	c := receive(t, shadow.got, "the copy at the shadow")
	close(stop)
	growth := <-peak

	if primarySum != clientSum {
		t.Errorf("primary checksum %s, want the client's %s", primarySum, clientSum)
	}
	if c.err != nil || c.n != size || c.sum != clientSum {
		t.Errorf("shadow got %d bytes (checksum %s, error %v), want %d bytes with checksum %s", c.n, c.sum, c.err, size, clientSum)
	}
	if c.contentLength != size {
		t.Errorf("copy's Content-Length = %d, want %d", c.contentLength, size)
	}
	if o := rec.wait(t, 1)[0]; o.outcome != mirrored {
		t.Errorf("outcome = %v, want mirrored", o.outcome)
	}
	// the mirror's bound, plus 16 MiB for net/http's buffers on the four
	// connections and the test's own; holding the body would take 1 GiB
	bound := uint64(h.MaxBodySize+h.StreamWindow+defaultStreamSlack) + 16<<20
	t.Logf("peak heap growth over a 1 GiB streamed upload: %.1f MiB (asserted bound %.0f MiB)", float64(growth)/(1<<20), float64(bound)/(1<<20))
	if growth > bound {
		t.Errorf("heap grew by %d bytes, want at most %d", growth, bound)
	}
}

// TestStreamSlowShadowCutOff uploads 64 MiB at full speed while the shadow
// reads 64 KiB a second: the primary gets every byte, the copy is cut off
// and counted, and no goroutine or file descriptor is left behind.
func TestStreamSlowShadowCutOff(t *testing.T) {
	const size = 64 << 20
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	goroutines, fds := runtime.NumGoroutine(), openFiles()
	rec := recordOutcomes(t)
	shadow := newStreamShadow(t, 64<<10)
	h := provisionHandler(t, fmt.Sprintf(`{"targets":[{"upstream":%q}]}`, shadow.URL))
	front := serveThrough(t, h, checksumPrimary)
	client := &http.Client{Transport: &http.Transport{}}

	primarySum, clientSum := upload(t, client, front.URL, size, true)
	if primarySum != clientSum {
		t.Errorf("primary checksum %s, want the client's %s", primarySum, clientSum)
	}
	if o := rec.wait(t, 1)[0]; o.outcome != cutOffSlow {
		t.Errorf("outcome = %v, want cut_off_slow", o.outcome)
	}
	assertShadowTruncated(t, shadow, size)
	if n := h.inFlight.Load(); n != 0 {
		t.Errorf("in-flight slots = %d, want 0", n)
	}

	client.CloseIdleConnections()
	front.Close()
	if err := h.Cleanup(); err != nil {
		t.Fatal(err)
	}
	if _, after := settled(goroutines, fds); after > fds {
		t.Errorf("open files after the test = %d, before %d", after, fds)
	}
}

// TestStreamOneSlowOfThree copies one upload to three targets, one of them
// slow: only the slow one is cut off; the other two get every byte.
func TestStreamOneSlowOfThree(t *testing.T) {
	const size = 64 << 20
	rec := recordOutcomes(t)
	fastA, fastB := newStreamShadow(t, 0), newStreamShadow(t, 0)
	slow := newStreamShadow(t, 64<<10)
	h := provisionHandler(t, fmt.Sprintf(`{"targets":[{"name":"a","upstream":%q},{"name":"slow","upstream":%q},{"name":"b","upstream":%q}],"stream_window":16777216}`,
		fastA.URL, slow.URL, fastB.URL))
	front := serveThrough(t, h, remotePrimary(t))

	primarySum, clientSum := upload(t, http.DefaultClient, front.URL, size, false)
	if primarySum != clientSum {
		t.Errorf("primary checksum %s, want the client's %s", primarySum, clientSum)
	}
	for name, got := range map[string]chan shadowCopy{"a": fastA.got, "b": fastB.got} {
		c := receive(t, got, "copy at "+name)
		if c.err != nil || c.sum != clientSum {
			t.Errorf("target %s got %d bytes (checksum %s, error %v), want checksum %s", name, c.n, c.sum, c.err, clientSum)
		}
	}
	outcomes := make(map[string]outcome)
	for _, o := range rec.wait(t, 3) {
		outcomes[o.target] = o.outcome
	}
	if outcomes["a"] != mirrored || outcomes["b"] != mirrored || outcomes["slow"] != cutOffSlow {
		t.Errorf("outcomes = %v, want a and b mirrored, slow cut_off_slow", outcomes)
	}
}

// TestStreamClientAborts has the client give up half-way through a streamed
// upload: the primary reads what was sent and then an error, as it would
// without a mirror; the shadow sees a truncated request and an error; the
// copy is counted cut_off_incomplete and nothing is left behind.
func TestStreamClientAborts(t *testing.T) {
	const sent, declared = 3 << 20, 8 << 20
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	rec := recordOutcomes(t)
	shadow := newStreamShadow(t, 0)
	h := provisionHandler(t, fmt.Sprintf(`{"targets":[{"upstream":%q}],"max_body_size":65536}`, shadow.URL))
	primary := newHalfwayPrimary(sent)
	front := serveThrough(t, h, primary)

	conn, err := net.Dial("tcp", strings.TrimPrefix(front.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	head := fmt.Sprintf("POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n", declared)
	body := io.LimitReader(newGeneratedBody(declared), sent)
	if _, err := io.Copy(conn, io.MultiReader(strings.NewReader(head), body)); err != nil {
		t.Fatal(err)
	}
	<-primary.reading // the primary has read all that was sent
	receive(t, shadow.started, "the copy's request at the shadow")
	conn.Close()

	assertAbandoned(t, primary, shadow, rec, declared)
	front.Close()
	shadow.Close()
	if err := h.Cleanup(); err != nil {
		t.Fatal(err)
	}
}

// TestStreamLengths streams bodies of known and unknown length across
// max_body_size: each copy has the client's bytes, with the client's
// Content-Length when it had one and chunked otherwise.
func TestStreamLengths(t *testing.T) {
	rec := recordOutcomes(t)
	shadow := newStreamShadow(t, 0)
	h := provisionHandler(t, fmt.Sprintf(`{"targets":[{"upstream":%q}],"max_body_size":65536,"stream_window":16777216}`, shadow.URL))
	front := serveThrough(t, h, checksumPrimary)
	for _, tc := range []struct {
		size  int64
		known bool
	}{{65536, false}, {65537, false}, {5 << 20, false}, {65537, true}, {5 << 20, true}} {
		primarySum, clientSum := upload(t, http.DefaultClient, front.URL, tc.size, tc.known)
		if o := rec.wait(t, 1)[0]; o.outcome != mirrored {
			t.Fatalf("%d bytes: outcome = %v, want mirrored", tc.size, o.outcome)
		}
		c := receive(t, shadow.got, "the copy")
		wantLength := tc.size
		if !tc.known && tc.size > h.MaxBodySize {
			wantLength = -1 // streamed before its length was known
		}
		if primarySum != clientSum || c.sum != clientSum || c.contentLength != wantLength {
			t.Errorf("%d bytes, length known %v: primary %s, shadow %s with Content-Length %d; want %s and %d",
				tc.size, tc.known, primarySum, c.sum, c.contentLength, clientSum, wantLength)
		}
	}
}

// TestStreamMaxStreamSize cuts off a copy of unknown length once it grows
// past max_stream_size; the primary still gets it all.
func TestStreamMaxStreamSize(t *testing.T) {
	rec := recordOutcomes(t)
	shadow := newStreamShadow(t, 0)
	h := provisionHandler(t, fmt.Sprintf(`{"targets":[{"upstream":%q}],"max_body_size":65536,"max_stream_size":1048576}`, shadow.URL))
	front := serveThrough(t, h, checksumPrimary)
	primarySum, clientSum := upload(t, http.DefaultClient, front.URL, 2<<20, false)
	if primarySum != clientSum {
		t.Errorf("primary checksum %s, want %s", primarySum, clientSum)
	}
	// whether the shadow saw the start of the copy depends on how soon
	// its connection was made; what it saw is never more than the cap
	if o := rec.wait(t, 1)[0]; o.outcome != cutOffTooLarge {
		t.Errorf("outcome = %v, want cut_off_too_large", o.outcome)
	}
	shadow.Close()
	select {
	case c := <-shadow.got:
		if c.err == nil || c.n > 1<<20 {
			t.Errorf("shadow read %d bytes, error %v; want at most 1 MiB and an error", c.n, c.err)
		}
	default:
	}
}

// TestStreamHTTP2Client uploads a large body over HTTP/2 with TLS: the
// copy is streamed to the shadow byte for byte.
func TestStreamHTTP2Client(t *testing.T) {
	const size = 16 << 20
	rec := recordOutcomes(t)
	shadow := newStreamShadow(t, 0)
	h := provisionHandler(t, fmt.Sprintf(`{"targets":[{"upstream":%q}],"stream_window":33554432}`, shadow.URL))
	protos := make(chan string, 1)
	front := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		protos <- r.Proto
		if err := h.ServeHTTP(w, withCaddyContext(w, r), checksumPrimary); err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
		}
	}))
	front.EnableHTTP2 = true
	front.StartTLS()
	t.Cleanup(front.Close)

	primarySum, clientSum := upload(t, front.Client(), front.URL, size, false)
	if p := receive(t, protos, "the request at the front"); p != "HTTP/2.0" {
		t.Fatalf("client spoke %s, want HTTP/2.0", p)
	}
	c := receive(t, shadow.got, "the copy")
	if primarySum != clientSum || c.sum != clientSum || c.n != size {
		t.Errorf("primary %s, shadow %s (%d bytes), want %s", primarySum, c.sum, c.n, clientSum)
	}
	if o := rec.wait(t, 1)[0]; o.outcome != mirrored {
		t.Errorf("outcome = %v, want mirrored", o.outcome)
	}
}
