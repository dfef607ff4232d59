package mirror

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// checksumShadow is a shadow that records the checksum of every body it
// gets, by the request's X-Req-Id.
type checksumShadow struct {
	*httptest.Server
	mu   sync.Mutex
	sums map[string]string
}

func newChecksumShadow(t *testing.T) *checksumShadow {
	s := &checksumShadow{sums: make(map[string]string)}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sum := sha256.New()
		if _, err := io.Copy(sum, r.Body); err != nil {
			t.Errorf("shadow reading body: %v", err)
		}
		s.mu.Lock()
		s.sums[r.Header.Get("X-Req-Id")] = hex.EncodeToString(sum.Sum(nil))
		s.mu.Unlock()
	}))
	t.Cleanup(s.Close)
	return s
}

// copied returns the checksum of the copy with X-Req-Id id, if one came.
func (s *checksumShadow) copied(id string) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sum, ok := s.sums[id]
	return sum, ok
}

// copies returns how many copies came.
func (s *checksumShadow) copies() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.sums)
}

// TestBodyIntegrity sends bodies around max_body_size, of known and unknown
// length: with large_bodies stream every one is copied byte for byte, the
// larger ones streamed; with skip the larger ones are not copied.
func TestBodyIntegrity(t *testing.T) {
	for _, mode := range []string{largeBodiesStream, largeBodiesSkip} {
		t.Run(mode, func(t *testing.T) { testBodyIntegrity(t, mode) })
	}
}

func testBodyIntegrity(t *testing.T, mode string) {
	const (
		limit       = 32 << 10
		requests    = 240
		concurrency = 16
	)
	rec := recordOutcomes(t)
	shadow := newChecksumShadow(t)
	// the limit fixed: every copy must be sent, however far the copies of
	// 16 clients lag under the race detector
	h := provisionHandler(t, fmt.Sprintf(`{"targets":[{"upstream":%q,"concurrency":{"fixed":true}}],"max_body_size":%d,"max_in_flight":100000,"large_bodies":%q}`, shadow.URL, limit, mode))
	front := serveThrough(t, h, checksumPrimary)

	rng := rand.New(rand.NewPCG(1, 2))
	sizes := []int{0, 1, limit - 1, limit, limit + 1, 2 * limit}
	for len(sizes) < requests {
		sizes = append(sizes, rng.IntN(2*limit+1))
	}
	bodies := make([][]byte, requests)
	for i, size := range sizes {
		bodies[i] = make([]byte, size)
		for j := range bodies[i] {
			bodies[i][j] = byte(rng.Uint32())
		}
	}

	var wg sync.WaitGroup
	work := make(chan int)
	for range concurrency {
		wg.Go(func() {
			for i := range work {
				var body io.Reader = bytes.NewReader(bodies[i])
				if i%2 == 1 {
					body = struct{ io.Reader }{body} // unknown length: chunked
				}
				req, _ := http.NewRequest(http.MethodPost, front.URL+"/upload", body)
				req.Header.Set("X-Req-Id", fmt.Sprint(i))
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Errorf("request %d: %v", i, err)
					continue
				}
				got, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if want := sha256hex(bodies[i]); string(got) != want {
					t.Errorf("request %d (%d bytes): primary checksum %s, want %s", i, len(bodies[i]), got, want)
				}
			}
		})
	}
	for i := range requests {
		work <- i
	}
	close(work)
	wg.Wait()

	if err := h.Cleanup(); err != nil { // waits for every copy
		t.Fatal(err)
	}
	within := 0
	for i, body := range bodies {
		sum, copied := shadow.copied(fmt.Sprint(i))
		wantCopy := len(body) <= limit || mode == largeBodiesStream
		switch {
		case wantCopy && !copied:
			t.Errorf("request %d (%d bytes) was not copied", i, len(body))
		case wantCopy && sum != sha256hex(body):
			t.Errorf("request %d (%d bytes): copy checksum %s, want %s", i, len(body), sum, sha256hex(body))
		case !wantCopy && copied:
			t.Errorf("request %d (%d bytes, over the limit) was copied", i, len(body))
		}
		if wantCopy {
			within++
		}
	}
	got := counts(rec.wait(t, requests))
	if got["mirrored"] != within || got["skipped_body_too_large"] != requests-within {
		t.Errorf("outcomes = %v, want %d mirrored and %d skipped_body_too_large", got, within, requests-within)
	}
}

func sha256hex(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

func TestBodyNotReadToTheEnd(t *testing.T) {
	for _, tc := range []struct {
		name    string
		primary caddyhttp.Handler
		send    func(t *testing.T, url string)
	}{
		{
			name: "primary does not read the body",
			primary: caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
				_, err := io.WriteString(w, "static answer")
				return err
			}),
			send: func(t *testing.T, url string) {
				resp, err := http.Post(url, "text/plain", strings.NewReader("unread body"))
				if err != nil {
					t.Fatal(err)
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if string(body) != "static answer" {
					t.Errorf("client got %q, want the primary's answer", body)
				}
			},
		},
		{
			name:    "client aborts its upload",
			primary: checksumPrimary,
			send: func(t *testing.T, url string) {
				conn, err := net.Dial("tcp", strings.TrimPrefix(url, "http://"))
				if err != nil {
					t.Fatal(err)
				}
				_, _ = io.WriteString(conn, "POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\nonly part of it")
				conn.Close()
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := recordOutcomes(t)
			shadow := newChecksumShadow(t)
			h := provisionHandler(t, fmt.Sprintf(`{"targets":[{"upstream":%q}]}`, shadow.URL))
			front := serveThrough(t, h, tc.primary)
			tc.send(t, front.URL)
			if o := rec.wait(t, 1)[0]; o.outcome != skippedBodyIncomplete {
				t.Errorf("outcome = %v, want skipped_body_incomplete", o.outcome)
			}
			if got := h.inFlight.Load(); got != 0 {
				t.Errorf("in-flight slots held = %d, want 0", got)
			}
			_ = h.Cleanup()
			if n := shadow.copies(); n != 0 {
				t.Errorf("shadow got %d copies, want none", n)
			}
		})
	}
}
