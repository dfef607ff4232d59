package main

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"testing"
)

// TestTagCounterReadBody: a body with its declared length and checksum is
// whole; one cut short or changed is short; one with no declaration, or
// no tag, is not counted.
func TestTagCounterReadBody(t *testing.T) {
	c := newTagCounter()
	body := []byte("a body the backend must get whole")
	send := func(tag string, got []byte, declared http.Header) {
		r := httptest.NewRequest(http.MethodPost, "/", bytes.NewReader(got))
		for k, v := range declared {
			r.Header[k] = v
		}
		if tag != "" {
			r.Header.Set(tagHeader, tag)
		}
		c.readBody(r)
	}
	send("t", body, bodyHeaders(body))
	send("t", body[:10], bodyHeaders(body))
	changed := bytes.ToUpper(body)
	send("t", changed, bodyHeaders(body))
	send("t", body, nil)
	send("", body, bodyHeaders(body))
	if got := c.get("t"); got.Whole != 1 || got.Short != 2 {
		t.Fatalf("%+v; want 1 whole, 2 short", got)
	}
	if got := c.get("other"); got != (tagCount{}) {
		t.Fatalf("an unseen tag: %+v", got)
	}
}

// TestServeCountsByTag: a backend counts the requests of each tag.
func TestServeCountsByTag(t *testing.T) {
	b, err := serve(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	if err != nil {
		t.Fatal(err)
	}
	for _, tag := range []string{"a", "a", "b", ""} {
		req, _ := http.NewRequest(http.MethodGet, "http://"+b.addr+"/", nil)
		if tag != "" {
			req.Header.Set(tagHeader, tag)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	if a, bb := b.tags.get("a").Received, b.tags.get("b").Received; a != 2 || bb != 1 || b.received.Load() != 4 {
		t.Fatalf("a %d, b %d, all %d; want 2, 1, 4", a, bb, b.received.Load())
	}
}
