package main

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// slowReader is a primary that reads bodies at about 4 MiB/s and counts
// the bodies it got whole and those cut short.
type slowReader struct {
	whole, short atomic.Int64
}

func (s *slowReader) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	buf := make([]byte, 64<<10)
	for {
		_, err := io.ReadFull(r.Body, buf)
		if err == io.EOF {
			break
		}
		if err != nil {
			s.short.Add(1)
			return
		}
		time.Sleep(15 * time.Millisecond) // pacing the reads, not synchronising
	}
	s.whole.Add(1)
	_, _ = w.Write(primaryBody)
}

// TestClosedLoopDrainsUploads: uploads in flight when the phase ends are
// finished, not cut off, so the proxy in front of the primary never
// answers one of them with a 502 and the primary gets every body whole.
func TestClosedLoopDrainsUploads(t *testing.T) {
	primary := &slowReader{}
	backend := httptest.NewServer(primary)
	defer backend.Close()
	target, _ := url.Parse(backend.URL)
	front := httptest.NewServer(httputil.NewSingleHostReverseProxy(target))
	defer front.Close()

	q := newRequester(front.URL, 4, http.MethodPost, make([]byte, 1<<20), primaryBody)
	defer q.close()
	l := closedLoop(q, 4, 100*time.Millisecond)
	if l.errors != 0 || l.cancelled != 0 {
		t.Fatalf("%d errors%s, %d cancelled; want none", l.errors, l.firstErrorNote(), l.cancelled)
	}
	if l.completed < 4 || int64(l.completed) != primary.whole.Load() || primary.short.Load() != 0 {
		t.Fatalf("%d completed; the primary got %d bodies whole and %d cut short", l.completed, primary.whole.Load(), primary.short.Load())
	}
}

// TestClosedLoopCountsErrorStatuses: a proxy that answers a whole request
// with an error status is counted, and the report says what came back.
func TestClosedLoopCountsErrorStatuses(t *testing.T) {
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		http.Error(w, "no upstream", http.StatusBadGateway)
	}))
	defer front.Close()
	q := newRequester(front.URL, 2, http.MethodPost, []byte("body"), primaryBody)
	defer q.close()
	l := closedLoop(q, 2, 50*time.Millisecond)
	if l.errors == 0 || l.errors != l.completed || !strings.Contains(l.firstError, "502") || !strings.Contains(l.firstError, "no upstream") {
		t.Fatalf("%d errors of %d completed, first %q; want all, with the status and the body", l.errors, l.completed, l.firstError)
	}
}

// TestDoTellsItsOwnCancellationFromAFailedConnection: a connection the
// server drops is the proxy's error; a request whose context the load
// generator ended is its own.
func TestDoTellsItsOwnCancellationFromAFailedConnection(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	hold := make(chan struct{})
	defer close(hold)
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer conn.Close()
				buf := make([]byte, 1)
				_, _ = conn.Read(buf)
				if buf[0] == 'P' { // POST: hang until the client gives up
					<-hold
				}
			}()
		}
	}()
	q := newRequester("http://"+ln.Addr().String()+"/", 1, http.MethodGet, nil, primaryBody)
	defer q.close()
	if err := q.do(context.Background()); err == nil || errors.Is(err, errCancelledByLoad) {
		t.Fatalf("a dropped connection: %v; want a proxy error", err)
	}
	q.method = http.MethodPost
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := q.do(ctx); !errors.Is(err, errCancelledByLoad) {
		t.Fatalf("a request whose context ended: %v; want errCancelledByLoad", err)
	}
}
