package mirror

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

func FuzzUnmarshalCaddyfile(f *testing.F) {
	for _, seed := range []string{
		"mirror http://127.0.0.1:9002",
		"mirror http://a {\n\tpercent 25\n\tsample_by {http.request.header.X-User-Id}\n\tmax_rate 200\n}",
		"mirror {\n\tto http://a {\n\t\tpercent 10\n\t}\n\tto https://b {\n\t\tmatch {\n\t\t\tmethod POST PUT\n\t\t}\n\t\theader_up -Authorization\n\t}\n\tmax_body_size 4MB\n\tmax_in_flight 8\n}",
		"mirror http://a {\n\ttimeout 5s\n\ttransport http {\n\t\tdial_timeout 1s\n\t}\n\theader_up X-A ^a(.*)$ b$1\n}",
		"mirror {\n\tpercent\n}",
		"mirror http://a {\n\tpercent NaN\n\tmax_rate Inf\n}",
		"mirror http://a {\n\tmax_rate -Infinity\n\tcompare {\n\t\tthreshold nan\n\t}\n}",
		"mirror http://a http://b",
		"mirror {\n\tto http://a {\n\t\tname s\n\t}\n\tto http://b {\n\t\tcompare {\n\t\t\tnoise_from s\n\t\t\theaders A B\n\t\t\tignore /x/*\n\t\t\tthreshold 3\n\t\t}\n\t}\n}",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, input string) {
		tokens, err := caddyfile.Tokenize([]byte(input), "Fuzzfile")
		if err != nil {
			return
		}
		var h Handler
		if err := h.UnmarshalCaddyfile(caddyfile.NewDispenser(tokens)); err != nil {
			return
		}
		if _, err := json.Marshal(h); err != nil {
			t.Errorf("UnmarshalCaddyfile(%q) succeeded but its config does not marshal: %v", input, err)
		}
	})
}

func FuzzJSONConfig(f *testing.F) {
	for _, seed := range []string{
		`{"targets":[{"upstream":"http://127.0.0.1:9002"}]}`,
		`{"targets":[{"upstream":"https://s/p","percent":0.01,"sample_by":"{http.request.header.X}","max_rate":2.5,"timeout":"1s"}],"max_body_size":10,"max_in_flight":2}`,
		`{"targets":[{"upstream":"http://a","match":[{"method":["GET"]}],"headers":{"set":{"X":["y"]},"delete":["Authorization"]}}]}`,
		`{"targets":[{"upstream":"http://a","transport":{"protocol":"http","keep_alive":{"max_idle_conns_per_host":4}}}]}`,
		`{"targets":[{"upstream":"ftp://a","percent":150}],"max_body_size":-1}`,
		`{"targets":[null]}`,
		`{"targets":[{"name":"s","upstream":"http://a"},{"upstream":"http://b","compare":{"noise_from":"s","headers":["X"],"body":"json","ignore":["/a/*"],"max_body_size":9,"threshold":1,"samples":0}}]}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, cfg []byte) {
		var h Handler
		if err := json.Unmarshal(cfg, &h); err != nil {
			return
		}
		ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
		defer cancel()
		if err := h.Provision(ctx); err == nil {
			_ = h.Validate()
		}
		if err := h.Cleanup(); err != nil {
			t.Errorf("Cleanup after %s: %v", cfg, err)
		}
	})
}

// chunkedReader returns its data in reads of the sizes given in turn.
type chunkedReader struct {
	data  []byte
	sizes []byte
}

func (c *chunkedReader) Read(p []byte) (int, error) {
	if len(c.data) == 0 {
		return 0, io.EOF
	}
	n := len(c.data)
	if len(c.sizes) > 0 {
		n = min(n, int(c.sizes[0])+1)
		c.sizes = c.sizes[1:]
	}
	n = copy(p, c.data[:n])
	c.data = c.data[n:]
	return n, nil
}

// pacedShadow is a transport whose shadow reads a copy's body in reads of
// the sizes given in turn, stops once it has taken stallAt bytes until
// resume is closed, then reads the rest. It hands what it read, and the
// read error if any, to got.
type pacedShadow struct {
	sizes   []byte
	stallAt int
	resume  chan struct{}
	got     chan pacedCopy
}

type pacedCopy struct {
	body []byte
	err  error
}

func (s *pacedShadow) RoundTrip(req *http.Request) (*http.Response, error) {
	var body []byte
	var err error
	if req.Body != nil {
		buf := make([]byte, 256)
		for i := 0; err == nil; i++ {
			if len(body) >= s.stallAt && s.resume != nil {
				<-s.resume
				s.resume = nil
			}
			size := len(buf)
			if len(s.sizes) > 0 {
				size = int(s.sizes[i%len(s.sizes)]) + 1
			}
			if len(body) < s.stallAt {
				size = min(size, s.stallAt-len(body)) // stop exactly there
			}
			var n int
			n, err = req.Body.Read(buf[:size])
			body = append(body, buf[:n]...)
		}
		req.Body.Close()
		if err == io.EOF {
			err = nil
		}
	}
	s.got <- pacedCopy{body, err}
	if err != nil {
		return nil, err
	}
	return &http.Response{StatusCode: http.StatusOK, Body: http.NoBody, Request: req}, nil
}

// FuzzTeeBody checks the body tee, buffered and streamed, under arbitrary
// body splits, primary read sizes, window sizes and shadow reading: the
// primary always reads the input; the copy gets the input byte for byte,
// or, only when it streams, is cut off and counted. It runs without
// stream_slack; TestStreamSlack tests the slack.
func FuzzTeeBody(f *testing.F) {
	f.Add([]byte("hello, shadow"), []byte{0, 3, 200}, []byte{1, 1, 7}, []byte{5}, uint16(100), uint16(64))
	f.Add(bytes.Repeat([]byte{0xff, 0}, 300), []byte{255}, []byte{0}, []byte{}, uint16(0), uint16(1000))
	f.Add(bytes.Repeat([]byte("streamed "), 200), []byte{31, 7}, []byte{63}, []byte{255, 1}, uint16(300), uint16(90))
	f.Add(bytes.Repeat([]byte("cut off "), 200), []byte{}, []byte{}, []byte{}, uint16(0), uint16(16))
	f.Add([]byte{}, []byte{}, []byte{}, []byte{}, uint16(0), uint16(0))
	const limit = 256
	// no stream_slack: a copy that falls a window behind is cut off at
	// once, which the oracle below can tell
	h := provisionHandler(f, `{"targets":[{"upstream":"http://fuzz.invalid","max_fails":-1}],"max_body_size":256,"stream_slack":-1}`)
	tg := h.Targets[0]
	rec := recordOutcomes(f)

	f.Fuzz(func(t *testing.T, data, sourceSizes, readSizes, shadowSizes []byte, stallAt, window uint16) {
		// windows below the configurable minimum make cut-offs likely
		h.StreamWindow = int64(window%2048) + 1
		shadow := &pacedShadow{sizes: shadowSizes, stallAt: int(stallAt), resume: make(chan struct{}), got: make(chan pacedCopy, 1)}
		tg.Transport = shadow

		r, _ := http.NewRequest(http.MethodPost, "http://front/", nil)
		r = withCaddyContext(nil, r)
		a, _, ok := h.admit(tg, r)
		if !ok {
			t.Fatal("admit refused a copy")
		}
		source := io.NopCloser(&chunkedReader{data: bytes.Clone(data), sizes: sourceSizes})
		tee := newTeeBody(h, source, []pendingCopy{{target: tg, replica: a.replica, req: tg.newCopy(r, a.replica)}}, -1)

		var primary bytes.Buffer
		buf := make([]byte, 512)
		for i := 0; ; i++ {
			size := len(buf)
			if len(readSizes) > 0 {
				size = int(readSizes[i%len(readSizes)]) + 1
			}
			n, err := tee.Read(buf[:size])
			primary.Write(buf[:n])
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("Read: %v", err)
			}
		}
		tee.settle(skippedBodyIncomplete) // as ServeHTTP does; a no-op here
		close(shadow.resume)

		if !bytes.Equal(primary.Bytes(), data) {
			t.Fatalf("primary read %d bytes that differ from the %d sent", primary.Len(), len(data))
		}
		got := receive(t, shadow.got, "the copy at the shadow")
		o := rec.wait(t, 1)[0].outcome
		// bytes the shadow had not taken when the primary was done
		behind := len(data) - max(limit, int(stallAt))
		switch {
		case o == mirrored:
			if !bytes.Equal(got.body, data) || got.err != nil {
				t.Fatalf("copy has %d bytes (error %v) that differ from the %d sent", len(got.body), got.err, len(data))
			}
			if behind > int(h.StreamWindow) {
				t.Fatalf("copy %d bytes behind with a window of %d was not cut off", behind, h.StreamWindow)
			}
		case o == cutOffSlow && len(data) > limit:
			if got.err == nil || !bytes.Equal(got.body, data[:len(got.body)]) {
				t.Fatalf("cut-off copy read %d bytes, error %v: want a prefix of the input and an error", len(got.body), got.err)
			}
		default:
			t.Fatalf("outcome for %d bytes (limit %d, window %d) = %v", len(data), limit, h.StreamWindow, o)
		}
		if n := h.inFlight.Load(); n != 0 {
			t.Fatalf("in-flight slots after the copy ended = %d, want 0", n)
		}
	})
}
