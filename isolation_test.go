package mirror

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// checksumPrimary stands in for reverse_proxy: it reads the whole body and
// answers with its checksum.
var checksumPrimary = caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
	sum := sha256.New()
	if _, err := io.Copy(sum, r.Body); err != nil {
		return err
	}
	w.Header().Set("Content-Type", "text/plain")
	w.Header().Set("X-Primary", "v1")
	w.WriteHeader(http.StatusAccepted)
	_, err := io.WriteString(w, hex.EncodeToString(sum.Sum(nil)))
	return err
})

// clientResponse is what a client saw of one response.
type clientResponse struct {
	status int
	header http.Header
	body   string
	reused bool // sent on a reused keep-alive connection
}

// String describes the response for test failures.
func (c clientResponse) String() string {
	h := c.header.Clone()
	h.Del("Date")
	return fmt.Sprintf("%d %v %q", c.status, h, c.body)
}

// sendOnOneConnection sends two POSTs over one keep-alive connection. When
// afterFirst is set, it runs between the two requests.
func sendOnOneConnection(t *testing.T, url string, afterFirst func()) [2]clientResponse {
	t.Helper()
	client := &http.Client{
		Transport: &http.Transport{MaxConnsPerHost: 1, MaxIdleConnsPerHost: 1},
		Timeout:   waitLimit,
	}
	defer client.CloseIdleConnections()
	var out [2]clientResponse
	for i := range out {
		req, _ := http.NewRequest(http.MethodPost, url+"/orders?id=7", strings.NewReader("request body "+fmt.Sprint(i)))
		req = req.WithContext(httptrace.WithClientTrace(req.Context(), &httptrace.ClientTrace{
			GotConn: func(info httptrace.GotConnInfo) { out[i].reused = info.Reused },
		}))
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("request %d: %v (did the primary wait for the mirror?)", i+1, err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatalf("request %d: reading body: %v", i+1, err)
		}
		out[i].status, out[i].header, out[i].body = resp.StatusCode, resp.Header, string(body)
		if i == 0 && afterFirst != nil {
			afterFirst()
		}
	}
	return out
}

// baseline returns the responses of the primary with no mirror in front.
func baseline(t *testing.T) [2]clientResponse {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = checksumPrimary.ServeHTTP(w, withCaddyContext(w, r))
	}))
	defer srv.Close()
	return sendOnOneConnection(t, srv.URL, nil)
}

// rawShadow listens on loopback and hands every accepted connection to
// serve, after reporting it on the returned channel.
func rawShadow(t *testing.T, serve func(net.Conn)) (addr string, accepted <-chan struct{}) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	ch := make(chan struct{}, 16)
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			ch <- struct{}{}
			go serve(conn)
		}
	}()
	return ln.Addr().String(), ch
}

// readRequestHead reads one request's head from conn.
func readRequestHead(conn net.Conn) {
	_, _ = http.ReadRequest(bufio.NewReader(conn))
}

func TestIsolation(t *testing.T) {
	want := baseline(t)
	for _, tc := range []struct {
		name string
		// shadow starts the misbehaving shadow; received reports each copy
		// it gets, when it can tell; release lets it finish.
		shadow  func(t *testing.T, release <-chan struct{}) (upstream string, received <-chan struct{})
		timeout string
		want    outcome
	}{
		{
			name: "slow", timeout: "1m", want: mirrored,
			shadow: func(t *testing.T, release <-chan struct{}) (string, <-chan struct{}) {
				got := make(chan struct{}, 2)
				srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					got <- struct{}{}
					<-release
					_, _ = io.WriteString(w, "late shadow answer")
				}))
				t.Cleanup(srv.Close)
				return srv.URL, got
			},
		},
		{
			name: "reading the body slowly", timeout: "1m", want: mirrored,
			shadow: func(t *testing.T, release <-chan struct{}) (string, <-chan struct{}) {
				got := make(chan struct{}, 2)
				addr, _ := rawShadow(t, func(conn net.Conn) {
					defer conn.Close()
					req, err := http.ReadRequest(bufio.NewReader(conn))
					if err != nil {
						return
					}
					_, _ = req.Body.Read(make([]byte, 1)) // a byte, then nothing until released
					got <- struct{}{}
					<-release
					_, _ = io.Copy(io.Discard, req.Body)
					_, _ = io.WriteString(conn, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
				})
				return "http://" + addr, got
			},
		},
		{
			// a timeout under minLate: the copies time out before the
			// concurrency limit could find them late
			name: "hanging", timeout: "900ms", want: failed,
			shadow: func(t *testing.T, _ <-chan struct{}) (string, <-chan struct{}) {
				got := make(chan struct{}, 2)
				srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					_, _ = io.Copy(io.Discard, r.Body) // so the server notices the hang-up
					got <- struct{}{}
					<-r.Context().Done() // never answers; the copy's timeout ends it
				}))
				t.Cleanup(srv.Close)
				return srv.URL, got
			},
		},
		{
			name: "refusing", timeout: "1m", want: failed,
			shadow: func(t *testing.T, _ <-chan struct{}) (string, <-chan struct{}) {
				return "http://" + closedAddr(t), nil
			},
		},
		{
			name: "resetting", timeout: "1m", want: failed,
			shadow: func(t *testing.T, _ <-chan struct{}) (string, <-chan struct{}) {
				addr, accepted := rawShadow(t, func(conn net.Conn) {
					readRequestHead(conn)
					_ = conn.(*net.TCPConn).SetLinger(0) // close with RST
					conn.Close()
				})
				return "http://" + addr, accepted
			},
		},
		{
			name: "answering garbage", timeout: "1m", want: failed,
			shadow: func(t *testing.T, _ <-chan struct{}) (string, <-chan struct{}) {
				addr, accepted := rawShadow(t, func(conn net.Conn) {
					readRequestHead(conn)
					_, _ = io.WriteString(conn, "SMTP ready\r\n\x00\xff garbage\r\n\r\n")
					conn.Close()
				})
				return "http://" + addr, accepted
			},
		},
	} {
		// with compare on, the primary's response is also captured and
		// compared with the shadow's: the client must see no difference
		for _, compare := range []string{"", `,"compare":{"headers":["Content-Type"]}`} {
			name := tc.name
			if compare != "" {
				name += " compared"
			}
			t.Run(name, func(t *testing.T) {
				rec := recordOutcomes(t)
				release := make(chan struct{})
				upstream, received := tc.shadow(t, release)
				h := provisionHandler(t, fmt.Sprintf(`{"targets":[{"upstream":%q,"timeout":%q%s}]}`, upstream, tc.timeout, compare))
				front := serveThrough(t, h, checksumPrimary)

				got := sendOnOneConnection(t, front.URL, func() {
					if received != nil {
						// the first copy is now with the shadow, unanswered
						receive(t, received, "the first copy at the shadow")
					}
				})
				for i := range got {
					if got[i].String() != want[i].String() {
						t.Errorf("response %d = %v, want %v as with no mirror", i+1, got[i], want[i])
					}
				}
				if !got[1].reused {
					t.Error("the second request did not reuse the keep-alive connection")
				}
				close(release)
				for _, o := range rec.wait(t, 2) {
					if o.outcome != tc.want {
						t.Errorf("outcome = %v, want %v", o.outcome, tc.want)
					}
				}
				if compare != "" && tc.want == mirrored {
					if got := reportOf(t, h.Targets[0].label).Counts["mismatch"]; got != 2 {
						t.Errorf("compared as mismatch %d times, want 2: the shadow's answer differs; %+v", got, reportOf(t, h.Targets[0].label))
					}
				}
			})
		}
	}
}
