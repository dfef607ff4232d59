package mirror

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// TestClientProtocols sends a body through the mirror the ways clients do:
// with Expect: 100-continue, over HTTP/2 with TLS, and over h2c. The primary
// and the copy must both get the body.
func TestClientProtocols(t *testing.T) {
	const body = "a body sent the hard way"
	for _, tc := range []struct {
		name  string
		serve func(h http.Handler) (url string, client *http.Client, stop func())
		req   func(req *http.Request)
	}{
		{
			name: "Expect: 100-continue",
			serve: func(h http.Handler) (string, *http.Client, func()) {
				srv := httptest.NewServer(h)
				return srv.URL, &http.Client{Transport: &http.Transport{ExpectContinueTimeout: time.Minute}}, srv.Close
			},
			req: func(req *http.Request) { req.Header.Set("Expect", "100-continue") },
		},
		{
			name: "HTTP/2 over TLS",
			serve: func(h http.Handler) (string, *http.Client, func()) {
				srv := httptest.NewUnstartedServer(h)
				srv.EnableHTTP2 = true
				srv.StartTLS()
				return srv.URL, srv.Client(), srv.Close
			},
		},
		{
			name: "h2c",
			serve: func(h http.Handler) (string, *http.Client, func()) {
				srv := httptest.NewUnstartedServer(h)
				srv.Config.Protocols = new(http.Protocols)
				srv.Config.Protocols.SetHTTP1(true)
				srv.Config.Protocols.SetUnencryptedHTTP2(true)
				srv.Start()
				tr := &http.Transport{Protocols: new(http.Protocols)}
				tr.Protocols.SetUnencryptedHTTP2(true)
				return srv.URL, &http.Client{Transport: tr}, srv.Close
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := recordOutcomes(t)
			shadow := newBackend(t, http.StatusOK, "shadow")
			h := provisionHandler(t, fmt.Sprintf(`{"targets":[{"upstream":%q}]}`, shadow.URL))
			protos := make(chan string, 1)
			url, client, stop := tc.serve(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				protos <- r.Proto
				_ = h.ServeHTTP(w, withCaddyContext(w, r), checksumPrimary)
			}))
			defer stop()
			req, _ := http.NewRequest(http.MethodPost, url+"/upload", strings.NewReader(body))
			if tc.req != nil {
				tc.req(req)
			}
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			got, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			proto := receive(t, protos, "the request's protocol")
			if string(got) != sha256hex([]byte(body)) {
				t.Errorf("primary checksum over %s = %s, want the body's", proto, got)
			}
			if o := rec.wait(t, 1)[0]; o.outcome != mirrored {
				t.Errorf("outcome over %s = %v, want mirrored", proto, o.outcome)
			}
			if c := receive(t, shadow.seen, "the copy"); c.body != body {
				t.Errorf("copy body over %s = %q, want %q", proto, c.body, body)
			}
			if tc.name != "Expect: 100-continue" && !strings.HasPrefix(proto, "HTTP/2") {
				t.Errorf("the request arrived as %s, not HTTP/2", proto)
			}
		})
	}
}

// TestContentLengthZeroWithABody sends a POST that declares no body but is
// followed by bytes: the server takes them as the next request, so the copy,
// like the primary's request, has no body.
func TestContentLengthZeroWithABody(t *testing.T) {
	rec := recordOutcomes(t)
	shadow := newBackend(t, http.StatusOK, "shadow")
	h := provisionHandler(t, fmt.Sprintf(`{"targets":[{"upstream":%q}]}`, shadow.URL))
	front := serveThrough(t, h, checksumPrimary)
	got := rawRequest(t, front.URL, "POST /zero HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\nnot a body")
	if string(got) != sha256hex(nil) {
		t.Errorf("primary checksum = %s, want the empty body's", got)
	}
	if o := rec.wait(t, 1)[0]; o.outcome != mirrored {
		t.Errorf("outcome = %v, want mirrored", o.outcome)
	}
	if c := receive(t, shadow.seen, "the copy"); c.body != "" || c.method != http.MethodPost {
		t.Errorf("copy = %s with body %q, want a POST with no body", c.method, c.body)
	}
}
