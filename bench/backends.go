package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync/atomic"
	"time"
)

// primaryBody is what the primary answers; the load checks every response
// against it.
var primaryBody = []byte("hello from v1\n")

// backend is a server this program runs on loopback.
type backend struct {
	addr     string // host:port
	received atomic.Int64
	tags     *tagCounter // requests by tagHeader
}

// serve starts an HTTP server for h on a free loopback port.
func serve(h http.Handler) (*backend, error) {
	return serveCounted(newTagCounter(), h)
}

// serveCounted starts an HTTP server for h on a free loopback port that
// counts its requests by tag in tags.
func serveCounted(tags *tagCounter, h http.Handler) (*backend, error) {
	return serveProtocols(tags, h, nil)
}

// serveProtocols is serveCounted with the server's protocols; nil for
// net/http's default, HTTP/1.1.
func serveProtocols(tags *tagCounter, h http.Handler, protocols *http.Protocols) (*backend, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	b := &backend{addr: ln.Addr().String(), tags: tags}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b.received.Add(1)
		b.tags.add(r.Header.Get(tagHeader), func(n *tagCount) { n.Received++ })
		h.ServeHTTP(w, r)
	}), Protocols: protocols}
	go func() { _ = srv.Serve(ln) }() // until the process exits
	return b, nil
}

// primaryDelayHeader overrides, for one request, how long the primary
// takes to answer (a Go duration).
const primaryDelayHeader = "X-Bench-Primary-Delay"

// newPrimary starts the primary: it reads the body, takes delay (or what
// the request's primaryDelayHeader says), and answers primaryBody, or
// primaryJSON on primaryJSONPath.
func newPrimary(delay time.Duration) (*backend, error) {
	return serve(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		if d, err := time.ParseDuration(r.Header.Get(primaryDelayHeader)); err == nil {
			pause(r, d)
		} else if delay > 0 {
			take(delay)
		}
		if r.URL.Path == primaryJSONPath {
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write(primaryJSON)
			return
		}
		_, _ = w.Write(primaryBody)
	}))
}

// sleepResolution is the shortest time.Sleep that sleeps about as long
// as it is asked to on the VMs this runs on: there a Sleep of 100 µs
// takes 1.1 ms, as long as one of 1 ms.
const sleepResolution = time.Millisecond

// take spends d answering: it sleeps d, or, for d shorter than a sleep
// can be, works for d on the CPU, as a handler computing its answer does.
func take(d time.Duration) {
	if d >= sleepResolution {
		time.Sleep(d)
		return
	}
	for start := time.Now(); time.Since(start) < d; {
	}
}

// pause waits d, or until the request's client is gone: pacing a
// backend, not synchronising.
func pause(r *http.Request, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-r.Context().Done():
	}
}

// shadow kinds, from healthy to hostile.
const (
	shadowFast      = "fast"
	shadowFastAlso  = "fast-2"    // a second fast shadow, a pool's other live replica (scenario 14)
	shadowSlow      = "slow"      // answers after 200 ms
	shadowSlowH2C   = "slow-h2c"  // the slow shadow over HTTP/2 without TLS: its copies share one connection
	shadowHanging   = "hanging"   // never answers
	shadowRefusing  = "refusing"  // its port is bound but not listening: connections are refused
	shadowResetting = "resetting" // resets every connection
	shadowFlapping  = "flapping"  // fast, slow, hanging or down, as the soak sets it
	shadowTrickle   = "trickle"   // reads request bodies at 1 MiB/s
	shadowTunable   = "tunable"   // answers as the request's X-Bench headers say (scenario 13)

	// hostile shadows (hostile.go)
	shadowTLSHang         = "tls-hang"          // accepts connections, never completes a TLS handshake
	shadowHeaderBomb      = "header-bomb"       // answers ~9 MiB of response headers
	shadowCompareBombJSON = "compare-bomb-json" // answers JSON numbers with huge exponents
	shadowCompareBombZstd = "compare-bomb-zstd" // answers a zstd frame that declares a 512 MiB window
)

// shadowKinds are the shadows the shadows' child starts, besides the
// flapping one.
var shadowKinds = []string{shadowFast, shadowFastAlso, shadowSlow, shadowSlowH2C, shadowHanging, shadowRefusing, shadowResetting, shadowTrickle,
	shadowTunable, shadowTLSHang, shadowHeaderBomb, shadowCompareBombJSON, shadowCompareBombZstd}

// The bodies the fast and the slow shadows answer.
var (
	fastShadowBody = []byte("hello from v2\n")
	slowShadowBody = []byte("hello from v2, late\n")
)

// newShadow starts a shadow of the given kind.
func newShadow(kind string) (*backend, error) {
	switch kind {
	case shadowFast, shadowFastAlso:
		return serve(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.Copy(io.Discard, r.Body)
			_, _ = w.Write(fastShadowBody)
		}))
	case shadowSlow, shadowSlowH2C:
		var protocols *http.Protocols
		if kind == shadowSlowH2C {
			protocols = new(http.Protocols)
			protocols.SetUnencryptedHTTP2(true)
		}
		return serveProtocols(newTagCounter(), http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.Copy(io.Discard, r.Body)
			time.Sleep(200 * time.Millisecond)
			_, _ = w.Write(slowShadowBody)
		}), protocols)
	case shadowTrickle:
		return serve(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			// 64 KiB every 62.5 ms: pacing a backend, not synchronising
			buf := make([]byte, 64<<10)
			for {
				if _, err := io.ReadFull(r.Body, buf); err != nil {
					break
				}
				time.Sleep(62500 * time.Microsecond)
			}
			_, _ = io.WriteString(w, "hello from v2, slowly\n")
		}))
	case shadowHanging:
		return serve(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.Copy(io.Discard, r.Body)
			<-r.Context().Done()
		}))
	case shadowRefusing:
		// held until the process exits, so that no other socket takes it
		h, err := holdPort(0, false)
		if err != nil {
			return nil, err
		}
		return &backend{addr: h.addr(), tags: newTagCounter()}, nil
	case shadowTunable:
		return newTunableShadow()
	case shadowTLSHang:
		return newTLSHangShadow()
	case shadowHeaderBomb:
		return newHeaderBombShadow()
	case shadowCompareBombJSON, shadowCompareBombZstd:
		return newCompareBombShadow(kind)
	case shadowResetting:
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
				go func() {
					_, _ = http.ReadRequest(bufio.NewReader(conn))
					b.received.Add(1)
					_ = conn.(*net.TCPConn).SetLinger(0)
					conn.Close()
				}()
			}
		}()
		return b, nil
	}
	return nil, fmt.Errorf("unknown shadow kind %q", kind)
}
