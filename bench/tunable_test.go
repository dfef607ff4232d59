package main

import (
	"io"
	"net/http"
	"testing"
	"time"
)

// TestParseStream: a duration, a rate and a piece interval (streamTick by
// default), or an error saying what is wrong.
func TestParseStream(t *testing.T) {
	for _, c := range []struct {
		spec  string
		want  stream
		piece int
	}{
		{"30s@102400", stream{d: 30 * time.Second, every: streamTick, rate: 102400}, 10240},
		{"5s@820/1.25s", stream{d: 5 * time.Second, every: 1250 * time.Millisecond, rate: 820}, 1025},
	} {
		got, err := parseStream(c.spec)
		if err != nil || got != c.want || got.piece() != c.piece {
			t.Errorf("parseStream(%q) = %+v (piece %d), %v, want %+v (piece %d)", c.spec, got, got.piece(), err, c.want, c.piece)
		}
	}
	for _, bad := range []string{"30s", "x@1", "1s@0", "1s@-5", "-1s@10", "1s@x", "1s@100/0s", "1s@100/2s", "1s@100/x", "1s@5"} {
		if _, err := parseStream(bad); err == nil {
			t.Errorf("parseStream(%q) parsed", bad)
		}
	}
}

// TestTunableShadowStreams: the tunable shadow streams rate × d bytes,
// and counts a response read whole as answered and one dropped midway as
// cut.
func TestTunableShadowStreams(t *testing.T) {
	b, err := newTunableShadow()
	if err != nil {
		t.Fatal(err)
	}
	get := func(tag string, read int64) int64 {
		req, _ := http.NewRequest(http.MethodGet, "http://"+b.addr+"/", nil)
		req.Header.Set(tagHeader, tag)
		req.Header.Set(streamHeader, "300ms@10240")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		n, _ := io.Copy(io.Discard, io.LimitReader(resp.Body, read))
		resp.Body.Close()
		return n
	}
	if n := get("whole", 1<<20); n != 3*1024 {
		t.Fatalf("read %d bytes; want 3072", n)
	}
	get("cut", 100)
	deadline := time.Now().Add(5 * time.Second)
	for b.tags.get("cut").Cut == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond) // polling the shadow, with a deadline
	}
	if w, c := b.tags.get("whole"), b.tags.get("cut"); w.Answered != 1 || c.Cut != 1 || c.Answered != 0 {
		t.Fatalf("whole %+v, cut %+v", w, c)
	}
}
