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

// captureTransport hands each copy's body to a channel.
type captureTransport chan []byte

func (c captureTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	var body []byte
	if req.Body != nil {
		body, _ = io.ReadAll(req.Body)
		req.Body.Close()
	}
	c <- body
	return &http.Response{StatusCode: http.StatusOK, Body: http.NoBody, Request: req}, nil
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

func FuzzTeeBody(f *testing.F) {
	f.Add([]byte("hello, shadow"), []byte{0, 3, 200}, []byte{1, 1, 7})
	f.Add(bytes.Repeat([]byte{0xff, 0}, 300), []byte{255}, []byte{0})
	f.Add([]byte{}, []byte{}, []byte{})
	const limit = 256
	h := provisionHandler(f, `{"targets":[{"upstream":"http://fuzz.invalid"}],"max_body_size":256}`)
	copies := make(captureTransport, 1)
	h.Targets[0].Transport = copies
	rec := recordOutcomes(f)

	f.Fuzz(func(t *testing.T, data, sourceSizes, readSizes []byte) {
		r, _ := http.NewRequest(http.MethodPost, "http://front/", nil)
		r = withCaddyContext(nil, r)
		tg := h.Targets[0]
		if _, _, ok := h.admit(tg, r); !ok {
			t.Fatal("admit refused a copy")
		}
		source := io.NopCloser(&chunkedReader{data: bytes.Clone(data), sizes: sourceSizes})
		tee := newTeeBody(h, source, []pendingCopy{{target: tg, req: tg.newCopy(r)}}, -1)

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

		if !bytes.Equal(primary.Bytes(), data) {
			t.Fatalf("primary read %d bytes that differ from the %d sent", primary.Len(), len(data))
		}
		want := mirrored
		if len(data) > limit {
			want = skippedBodyTooLarge
		} else if got := <-copies; !bytes.Equal(got, data) {
			t.Fatalf("copy has %d bytes that differ from the %d sent", len(got), len(data))
		}
		if o := rec.wait(t, 1)[0]; o.outcome != want {
			t.Fatalf("outcome for %d bytes = %v, want %v", len(data), o.outcome, want)
		}
		if n := h.inFlight.Load(); n != 0 {
			t.Fatalf("in-flight slots after the copy ended = %d, want 0", n)
		}
	})
}

// FuzzDiffJSON checks the JSON comparison on arbitrary bodies: it never
// panics, a body never differs from itself, differences are bounded, and
// comparing a with b finds as many differences as comparing b with a.
func FuzzDiffJSON(f *testing.F) {
	f.Add([]byte(`{"a":1,"b":[1,2,{"c":null}]}`), []byte(`{"b":[1,2.0,{"c":false}],"a":1e0}`), "/b/*/c")
	f.Add([]byte(`[1,2,3]`), []byte(`[1,2]`), "")
	f.Add([]byte(`{"a~/b":"x"}`), []byte(`not json`), "/a~0~1b")
	f.Fuzz(func(t *testing.T, a, b []byte, ignore string) {
		c := provisionedCompare(Compare{Body: "json", Ignore: []string{ignore}})
		ra, rb := jsonResponse(string(a)), jsonResponse(string(b))
		if diffs, _ := diffResponses(c, ra, ra); len(diffs) != 0 {
			t.Errorf("%q differs from itself: %+v", a, diffs)
		}
		ab, _ := diffResponses(c, ra, rb)
		ba, _ := diffResponses(c, rb, ra)
		if len(ab) > maxDifferences {
			t.Errorf("%d differences, want at most %d", len(ab), maxDifferences)
		}
		if len(ab) != len(ba) {
			t.Errorf("%q vs %q: %d differences one way, %d the other", a, b, len(ab), len(ba))
		}
	})
}
