package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"testing"

	"github.com/klauspost/compress/zstd"
)

// TestZstdWindowBomb: the frame declares a 512 MiB window, not as a single
// segment, and decodes to "ok".
func TestZstdWindowBomb(t *testing.T) {
	var h zstd.Header
	if err := h.Decode(zstdWindowBomb()); err != nil {
		t.Fatal(err)
	}
	if h.WindowSize != 512<<20 || h.SingleSegment || h.HasFCS {
		t.Fatalf("window %d, single segment %v, content size given %v; want 512 MiB, false, false", h.WindowSize, h.SingleSegment, h.HasFCS)
	}
	dec, err := zstd.NewReader(bytes.NewReader(zstdWindowBomb()), zstd.WithDecoderLowmem(true), zstd.WithDecoderConcurrency(1))
	if err != nil {
		t.Fatal(err)
	}
	defer dec.Close()
	got, err := io.ReadAll(dec)
	if err != nil || string(got) != "ok" {
		t.Fatalf("decoded %q, %v; want ok", got, err)
	}
}

// TestHeaderBombResponse: Go's client parses the header bomb, about 9 MiB
// of header lines, under its default 10 MiB limit, and its body.
func TestHeaderBombResponse(t *testing.T) {
	raw := headerBombResponse(headerBombSize, headerBombLine)
	if len(raw) < headerBombSize || len(raw) >= 10<<20 {
		t.Fatalf("%d bytes; want about %d, under 10 MiB", len(raw), headerBombSize)
	}
	resp, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(raw)), nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || len(resp.Header) < headerBombSize/headerBombLine || string(body) != "hello from v2\n" {
		t.Fatalf("status %d, %d header fields, body %q", resp.StatusCode, len(resp.Header), body)
	}
}

// TestCompareBombJSON: the bomb and the primary's document are valid JSON
// of the same shape, and the bomb is about 2.6 KB.
func TestCompareBombJSON(t *testing.T) {
	type doc struct {
		A json.Number   `json:"a"`
		B []json.Number `json:"b"`
	}
	var bomb, primary doc
	for _, c := range []struct {
		body []byte
		into *doc
	}{{compareBombJSON, &bomb}, {primaryJSON, &primary}} {
		dec := json.NewDecoder(bytes.NewReader(c.body))
		dec.UseNumber()
		if err := dec.Decode(c.into); err != nil {
			t.Fatalf("%s: %v", excerpt(c.body), err)
		}
	}
	if len(bomb.B) != compareBombNumbers || len(primary.B) != compareBombNumbers || bomb.A != "1e-999999" {
		t.Fatalf("bomb: a %s, %d numbers; primary %d numbers", bomb.A, len(bomb.B), len(primary.B))
	}
	if n := len(compareBombJSON); n < 2500 || n > 2700 {
		t.Fatalf("the bomb is %d bytes; want about 2.6 KB", n)
	}
}
