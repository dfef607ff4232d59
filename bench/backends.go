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
}

// serve starts an HTTP server for h on a free loopback port.
func serve(h http.Handler) (*backend, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	b := &backend{addr: ln.Addr().String()}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b.received.Add(1)
		h.ServeHTTP(w, r)
	})}
	go func() { _ = srv.Serve(ln) }() // until the process exits
	return b, nil
}

// newPrimary starts the primary: it reads the body, takes delay, and
// answers primaryBody.
func newPrimary(delay time.Duration) (*backend, error) {
	return serve(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		if delay > 0 {
			time.Sleep(delay)
		}
		_, _ = w.Write(primaryBody)
	}))
}

// shadow kinds, from healthy to hostile.
const (
	shadowFast      = "fast"
	shadowSlow      = "slow"      // answers after 200 ms
	shadowHanging   = "hanging"   // never answers
	shadowRefusing  = "refusing"  // its port is bound but not listening: connections are refused
	shadowResetting = "resetting" // resets every connection
	shadowFlapping  = "flapping"  // fast, slow, hanging or down, as the soak sets it
	shadowTrickle   = "trickle"   // reads request bodies at 1 MiB/s
)

// newShadow starts a shadow of the given kind.
func newShadow(kind string) (*backend, error) {
	switch kind {
	case shadowFast:
		return serve(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.Copy(io.Discard, r.Body)
			_, _ = io.WriteString(w, "hello from v2\n")
		}))
	case shadowSlow:
		return serve(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.Copy(io.Discard, r.Body)
			time.Sleep(200 * time.Millisecond)
			_, _ = io.WriteString(w, "hello from v2, late\n")
		}))
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
		return &backend{addr: h.addr()}, nil
	case shadowResetting:
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		b := &backend{addr: ln.Addr().String()}
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
