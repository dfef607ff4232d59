package compare

import (
	"bytes"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
)

// writeScript plays ops against w as a route might: each op byte either
// flushes, or writes the next bytes of body (as many as the op's value
// says, through Write or through ReadFrom), and returns what was written.
// Announced trailers are set after the body, unannounced ones with
// http.TrailerPrefix.
func writeScript(w http.ResponseWriter, ops, body []byte, announced, unannounced string) []byte {
	if announced != "" {
		w.Header().Set("Trailer", "X-Announced")
	}
	var written []byte
	for _, op := range ops {
		switch {
		case op%8 == 0:
			_ = http.NewResponseController(w).Flush()
		default:
			n := min(int(op), len(body))
			chunk := body[:n]
			body = body[n:]
			if op%2 == 0 {
				_, _ = io.Copy(w, bytes.NewReader(chunk)) // through ReadFrom
			} else {
				_, _ = w.Write(chunk)
			}
			written = append(written, chunk...)
		}
	}
	if announced != "" {
		w.Header().Set("X-Announced", announced)
	}
	if unannounced != "" {
		w.Header().Set(http.TrailerPrefix+"X-Late", unannounced)
	}
	return written
}

// headerValue is a trailer value that net/http can send.
func headerValue(s string) string {
	return strings.TrimSpace(strings.Map(func(r rune) rune {
		if r < ' ' || r > '~' {
			return -1
		}
		return r
	}, s))
}

// FuzzCapture drives the primary's capture with arbitrary sequences of
// writes and flushes, and trailers, through a real net/http server: the
// client gets exactly the bytes and trailers that the route wrote, and the
// capture holds the written body up to its limit, and the same trailers.
func FuzzCapture(f *testing.F) {
	f.Add([]byte{3, 0, 200, 8, 255}, []byte(`{"items":[1,2,3]}`+strings.Repeat("x", 600)), uint16(10), "OK", "")
	f.Add([]byte{1, 1, 0, 0, 2}, []byte("ab"), uint16(0), "", "late")
	f.Add([]byte{255, 16, 7}, bytes.Repeat([]byte{0, 1, 2, 255}, 300), uint16(4096), "0", "UNAVAILABLE")
	f.Fuzz(func(t *testing.T, ops, body []byte, keep uint16, announced, unannounced string) {
		announced, unannounced = headerValue(announced), headerValue(unannounced)
		captured := make(chan *Response, 1)
		wrote := make(chan []byte, 1)
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			resp := newResponse(int64(keep))
			ex := &Exchange{primary: resp}
			ex.refs.Store(1)
			cw := ex.CaptureWriter(w)
			wrote <- writeScript(cw, ops, body, announced, unannounced)
			ex.capture.settle(false)
			captured <- resp
		}))
		defer srv.Close()

		resp, err := srv.Client().Get(srv.URL)
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		written, c := <-wrote, <-captured
		if !bytes.Equal(got, written) {
			t.Fatalf("client got %d bytes, want the %d the route wrote", len(got), len(written))
		}
		want := written[:min(len(written), int(keep))]
		var kept []byte
		if c.body != nil {
			kept = c.body.Bytes()
		}
		if !bytes.Equal(kept, want) || c.truncated != (keep > 0 && len(written) > int(keep)) {
			t.Fatalf("captured %d bytes (truncated %v), want the first %d of %d", len(kept), c.truncated, len(want), len(written))
		}
		if !c.got {
			// the route wrote nothing through the capture (an io.Copy of
			// nothing), so nothing was captured: that is all it may miss
			if len(written) > 0 || c.trailer != nil {
				t.Fatalf("no response captured, yet the route wrote %d bytes (captured trailers %v)", len(written), c.trailer)
			}
			c.releaseBody()
			return
		}
		if c.streaming || c.incomplete {
			t.Errorf("a response that ended was captured as streaming (%v) or incomplete (%v)", c.streaming, c.incomplete)
		}
		wantTrailer := http.Header{}
		if announced != "" {
			wantTrailer.Set("X-Announced", announced)
		}
		if unannounced != "" {
			wantTrailer.Set("X-Late", unannounced)
		}
		clientTrailer := http.Header{}
		for k, v := range resp.Trailer {
			if len(v) > 0 && v[0] != "" {
				clientTrailer[k] = v
			}
		}
		wantClient := wantTrailer
		if resp.ContentLength >= 0 {
			// net/http sends a short response, written at once, with a
			// Content-Length, and so without trailers
			wantClient = http.Header{}
		}
		if !maps.EqualFunc(clientTrailer, wantClient, slices.Equal) {
			t.Errorf("client got trailers %v, want %v", resp.Trailer, wantClient)
		}
		if !maps.EqualFunc(c.trailer, wantTrailer, slices.Equal) {
			t.Errorf("captured trailers %v, want %v", c.trailer, wantTrailer)
		}
		c.releaseBody()
	})
}

func TestCaptureSwitchingProtocolsIsStreaming(t *testing.T) {
	for _, tc := range []struct {
		name      string
		status    int
		mediaType string
		want      bool
	}{
		{"switching protocols", http.StatusSwitchingProtocols, "", true},
		{"server-sent events", http.StatusOK, "text/event-stream", true},
		{"early hints, then JSON", http.StatusEarlyHints, "application/json", false},
		{"JSON", http.StatusOK, "application/json", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp := newResponse(16)
			w := newCaptureWriter(httptest.NewRecorder(), resp)
			w.Header().Set("Content-Type", tc.mediaType)
			w.WriteHeader(tc.status)
			_, _ = w.Write([]byte("{}"))
			if resp.streaming != tc.want {
				t.Errorf("streaming = %v, want %v", resp.streaming, tc.want)
			}
			resp.releaseBody()
		})
	}
}
