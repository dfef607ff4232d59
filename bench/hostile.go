package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
)

// The hostile shadows of scenario 1: each answers in a way meant to cost
// the mirror something other than time.

// primaryJSONPath is where the primary answers primaryJSON, the document
// that the JSON compare bomb's numbers are compared with.
const primaryJSONPath = "/json"

// compareBombNumbers is how many numbers the JSON compare bomb holds:
// about 2.6 KB of them.
const compareBombNumbers = 288

// headerBombSize is about how many bytes of header lines the header bomb
// answers, under Go's default limit of 10 MiB on a response's headers, in
// lines of headerBombLine bytes.
const (
	headerBombSize = 9 << 20
	headerBombLine = 8 << 10
)

var (
	// primaryJSON has the JSON compare bomb's shape with small numbers.
	primaryJSON = jsonNumbers("1", "1", compareBombNumbers)
	// compareBombJSON has numbers that a comparison by value must expand
	// to a million digits each.
	compareBombJSON = jsonNumbers("1e-999999", "1e999999", compareBombNumbers)
)

// jsonNumbers returns {"a":a,"b":[b,b,…]} with n copies of b.
func jsonNumbers(a, b string, n int) []byte {
	return []byte(`{"a":` + a + `,"b":[` + strings.TrimSuffix(strings.Repeat(b+",", n), ",") + `]}`)
}

// zstdWindowBomb is a zstd frame of 11 bytes that decodes to "ok" and
// declares a 512 MiB window, which a decoder may allocate up front.
func zstdWindowBomb() []byte {
	return []byte{
		0x28, 0xB5, 0x2F, 0xFD, // magic number 0xFD2FB528, little-endian
		0x00,             // frame header descriptor: no content size, single segment off, no checksum, no dictionary
		0x98,             // window descriptor: exponent 19, mantissa 0: 2^(10+19) bytes = 512 MiB
		0x11, 0x00, 0x00, // block header: last block, raw, 2 bytes (1 | 0<<1 | 2<<3)
		'o', 'k',
	}
}

// newTLSHangShadow starts a listener that accepts connections and never
// answers, so a TLS client waits in its handshake. It closes a connection
// only once the other end has closed it, so that no descriptor outlives
// the Caddy that opened it.
func newTLSHangShadow() (*backend, error) {
	return acceptEach(func(b *backend, conn net.Conn) {
		b.received.Add(1)
		_, _ = io.Copy(io.Discard, conn)
		conn.Close()
	})
}

// newHeaderBombShadow starts a server that answers every request with
// about headerBombSize bytes of header lines and a small body, over
// keep-alive connections.
func newHeaderBombShadow() (*backend, error) {
	resp := headerBombResponse(headerBombSize, headerBombLine)
	return acceptEach(func(b *backend, conn net.Conn) {
		defer conn.Close()
		br := bufio.NewReader(conn)
		for {
			req, err := http.ReadRequest(br)
			if err != nil {
				return
			}
			_, _ = io.Copy(io.Discard, req.Body)
			b.received.Add(1)
			if _, err := conn.Write(resp); err != nil {
				return
			}
		}
	})
}

// headerBombResponse is an HTTP/1.1 200 with header lines of lineLen bytes
// adding up to about size, and the fast shadow's body.
func headerBombResponse(size, lineLen int) []byte {
	var b bytes.Buffer
	b.WriteString("HTTP/1.1 200 OK\r\n")
	for i := 0; b.Len() < size; i++ {
		name := fmt.Sprintf("X-Bomb-%05d: ", i)
		b.WriteString(name + strings.Repeat("h", lineLen-len(name)-2) + "\r\n")
	}
	body := "hello from v2\n"
	fmt.Fprintf(&b, "Content-Type: text/plain; charset=utf-8\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
	return b.Bytes()
}

// newCompareBombShadow starts the JSON compare bomb (it answers
// compareBombJSON as application/json) or the zstd one (it answers
// zstdWindowBomb as Content-Encoding zstd, with the primary's
// Content-Type).
func newCompareBombShadow(kind string) (*backend, error) {
	return serve(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		if kind == shadowCompareBombJSON {
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write(compareBombJSON)
			return
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Content-Encoding", "zstd")
		_, _ = w.Write(zstdWindowBomb())
	}))
}

// acceptEach listens on a free loopback port and hands every connection
// to handle, in its own goroutine, until the process exits.
func acceptEach(handle func(b *backend, conn net.Conn)) (*backend, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	b := &backend{addr: ln.Addr().String(), tags: newTagCounter()}
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go handle(b, conn)
		}
	}()
	return b, nil
}
