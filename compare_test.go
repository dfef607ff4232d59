package mirror

import (
	"bytes"
	"compress/flate"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/andybalholm/brotli"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// encode compresses body with a Content-Encoding.
func encode(t testing.TB, encoding, body string) []byte {
	t.Helper()
	var buf bytes.Buffer
	var w io.WriteCloser
	switch encoding {
	case "gzip":
		w = gzip.NewWriter(&buf)
	case "br":
		w = brotli.NewWriter(&buf)
	case "zstd":
		zw, err := zstd.NewWriter(&buf)
		if err != nil {
			t.Fatal(err)
		}
		w = zw
	default:
		return []byte(body)
	}
	if _, err := io.WriteString(w, body); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// jsonServer answers every request with body, JSON, encoded with encoding.
func jsonServer(t testing.TB, encoding, body string) *httptest.Server {
	encoded := encode(t, encoding, body)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if encoding != "" {
			w.Header().Set("Content-Encoding", encoding)
		}
		_, _ = w.Write(encoded)
	}))
	t.Cleanup(srv.Close)
	return srv
}

// comparedTarget is a target entry of a handler config that compares.
func comparedTarget(name, upstream, compare string) string {
	return fmt.Sprintf(`{"name":%q,"upstream":%q,"compare":{%s}}`, name, upstream, compare)
}

func TestCompareDecodesContentEncoding(t *testing.T) {
	const primaryBody = `{"id":7,"tags":["a","b"],"price":1.50}`
	primaryGzip := encode(t, "gzip", primaryBody)
	primary := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Content-Encoding", "gzip")
		_, err := w.Write(primaryGzip)
		return err
	})
	// the same document, written differently and encoded three ways, and
	// a changed one
	same := `{"price":1.5,"tags":["a","b"],"id":7}`
	targets := []string{
		comparedTarget("enc-br", jsonServer(t, "br", same).URL, ""),
		comparedTarget("enc-zstd", jsonServer(t, "zstd", same).URL, ""),
		comparedTarget("enc-identity", jsonServer(t, "", same).URL, ""),
		comparedTarget("enc-changed", jsonServer(t, "zstd", `{"price":2,"tags":["a","b"],"id":7}`).URL, ""),
	}
	rec := recordOutcomes(t)
	h := provisionHandler(t, `{"targets":[`+strings.Join(targets, ",")+`]}`)
	front := serveThrough(t, h, primary)

	resp, err := http.Get(front.URL + "/doc")
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(got) != primaryBody {
		t.Errorf("client got %q, want the primary's %q", got, primaryBody)
	}
	rec.wait(t, len(targets))

	for _, tg := range h.Targets {
		r := reportOf(t, tg.label)
		want := "match"
		if tg.label == "enc-changed" {
			want = "mismatch"
			if len(r.Fields) != 1 || r.Fields[0].Field != "/price" {
				t.Errorf("%s: fields %+v, want only /price", tg.label, r.Fields)
			}
		}
		if r.Counts[want] != 1 || r.Compared != 1 {
			t.Errorf("%s: counts %v of %d compared, want one %s", tg.label, r.Counts, r.Compared, want)
		}
	}
}

func TestCompareSkipsWhatCannotBeCompared(t *testing.T) {
	shadow := jsonServer(t, "", `{"ok":true}`)
	for _, tc := range []struct {
		name    string
		compare string
		primary caddyhttp.HandlerFunc
		want    string
	}{
		{
			name: "server-sent events that end", want: "skipped_streaming",
			primary: func(w http.ResponseWriter, r *http.Request) error {
				w.Header().Set("Content-Type", "text/event-stream")
				_, _ = io.WriteString(w, "data: 1\n\n")
				return http.NewResponseController(w).Flush()
			},
		},
		{
			name: "flushed primary that ends", want: "match",
			primary: func(w http.ResponseWriter, r *http.Request) error {
				_, _ = io.WriteString(w, `{"ok":`)
				w.(http.Flusher).Flush()
				_, _ = io.WriteString(w, `tr`)
				_ = http.NewResponseController(w).Flush()
				_, err := io.WriteString(w, `ue}`)
				return err
			},
		},
		{
			name: "hijacked primary", want: "skipped_streaming",
			primary: func(w http.ResponseWriter, r *http.Request) error {
				conn, buf, err := http.NewResponseController(w).Hijack()
				if err != nil {
					return err
				}
				defer conn.Close()
				_, _ = buf.WriteString("HTTP/1.1 200 OK\r\nContent-Length: 11\r\nConnection: close\r\n\r\n{\"ok\":true}")
				return buf.Flush()
			},
		},
		{
			name: "primary failed", want: "no_primary",
			primary: func(w http.ResponseWriter, r *http.Request) error {
				return caddyhttp.Error(http.StatusBadGateway, errors.New("upstream down"))
			},
		},
		{
			name: "body over max_body_size", compare: `"max_body_size":8`, want: "body_truncated",
			primary: func(w http.ResponseWriter, r *http.Request) error {
				w.Header().Set("Content-Type", "application/json")
				_, err := io.WriteString(w, `{"ok":true}`)
				return err
			},
		},
		{
			name: "identical", want: "match",
			primary: func(w http.ResponseWriter, r *http.Request) error {
				w.Header().Set("Content-Type", "application/json")
				_, err := io.WriteString(w, `{"ok":true}`)
				return err
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := recordOutcomes(t)
			h := provisionHandler(t, `{"targets":[`+comparedTarget("skips", shadow.URL, tc.compare)+`]}`)
			front := serveThrough(t, h, tc.primary)
			resp, err := http.Get(front.URL)
			if err != nil {
				t.Fatal(err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			rec.wait(t, 1)
			r := reportOf(t, "skips")
			for name, n := range r.Counts {
				if want := int64(map[bool]int{true: 1}[name == tc.want]); n != want {
					t.Errorf("%s = %d, want %d (counts %v)", name, n, want, r.Counts)
				}
			}
		})
	}
}

// TestCompareLongPollIsStreaming: a primary still answering when the
// target's timeout ends is a long poll; it is counted skipped_streaming,
// and its client still gets the whole response.
func TestCompareLongPollIsStreaming(t *testing.T) {
	shadow := jsonServer(t, "", `{"events":[]}`)
	release := make(chan struct{})
	primary := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		<-release
		w.Header().Set("Content-Type", "application/json")
		_, err := io.WriteString(w, `{"events":[1]}`)
		return err
	})
	rec := recordOutcomes(t)
	h := provisionHandler(t, `{"targets":[{"name":"long-poll","upstream":"`+shadow.URL+`","timeout":"50ms","compare":{}}]}`)
	front := serveThrough(t, h, primary)

	got := make(chan string, 1)
	go func() {
		resp, err := http.Get(front.URL + "/poll")
		if err != nil {
			got <- err.Error()
			return
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		got <- string(body)
	}()
	// the copy's outcome is counted once its comparison gave up waiting
	if o := rec.wait(t, 1); o[0].outcome != mirrored {
		t.Errorf("outcome %v, want mirrored", o[0].outcome)
	}
	close(release)
	if body := receive(t, got, "the primary's response"); body != `{"events":[1]}` {
		t.Errorf("client got %q", body)
	}
	if r := reportOf(t, "long-poll"); r.Counts["skipped_streaming"] != 1 || r.Compared != 0 {
		t.Errorf("counts %v, %d compared; want one skipped_streaming", r.Counts, r.Compared)
	}
}

// TestCompareUndecodedEncodingAsBytes: a body in a Content-Encoding that
// the comparison does not decode is compared as its bytes, with a body in
// the same encoding only.
func TestCompareUndecodedEncodingAsBytes(t *testing.T) {
	var deflated bytes.Buffer
	fw, _ := flate.NewWriter(&deflated, flate.BestCompression)
	_, _ = io.WriteString(fw, `{"id":7,"name":"seven"}`)
	_ = fw.Close()
	serve := func(encoding string, body []byte) string {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("Content-Encoding", encoding)
			_, _ = w.Write(body)
		}))
		t.Cleanup(srv.Close)
		return srv.URL
	}
	for _, tc := range []struct {
		name            string
		primaryEncoding string
		shadowEncoding  string
		shadowBody      []byte
		want            string
	}{
		{"deflate, identical", "deflate", "deflate", deflated.Bytes(), "match"},
		{"deflate, other bytes", "deflate", "deflate", append(slices.Clone(deflated.Bytes()), 0), "mismatch"},
		{"an unknown encoding, identical", "x-custom", "x-custom", deflated.Bytes(), "match"},
		{"the same bytes under another encoding", "deflate", "x-custom", deflated.Bytes(), "mismatch"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			primary := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
				w.Header().Set("Content-Type", "application/json")
				w.Header().Set("Content-Encoding", tc.primaryEncoding)
				_, err := w.Write(deflated.Bytes())
				return err
			})
			rec := recordOutcomes(t)
			h := provisionHandler(t, `{"targets":[`+comparedTarget("undecoded", serve(tc.shadowEncoding, tc.shadowBody), "")+`]}`)
			front := serveThrough(t, h, primary)
			req := mustRequest(t, http.MethodGet, front.URL)
			req.Header.Set("Accept-Encoding", tc.primaryEncoding)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			got, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if !bytes.Equal(got, deflated.Bytes()) {
				t.Errorf("client got %x, want the primary's bytes", got)
			}
			rec.wait(t, 1)
			r := reportOf(t, "undecoded")
			if r.Counts[tc.want] != 1 || r.Compared != 1 {
				t.Errorf("counts %v, want one %s", r.Counts, tc.want)
			}
			if tc.want == "mismatch" && (len(r.Fields) != 1 || r.Fields[0].Field != "body") {
				t.Errorf("fields %+v, want only body", r.Fields)
			}
		})
	}
}
