package main

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"time"
)

// flappingShadow is a shadow whose behaviour the soak changes while load
// runs: fast, slow (200 ms), hanging, or down (nothing listens, so
// connections are refused). It keeps its address throughout.
type flappingShadow struct {
	addr string
	mu   sync.Mutex
	mode string
	srv  *http.Server // nil while down
}

func newFlappingShadow() (*flappingShadow, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	f := &flappingShadow{addr: ln.Addr().String(), mode: shadowFast}
	f.serveOn(ln)
	return f, nil
}

// serveOn starts a new server on ln; a closed server cannot serve again.
func (f *flappingShadow) serveOn(ln net.Listener) {
	f.srv = &http.Server{Handler: http.HandlerFunc(f.serveHTTP)}
	go func(srv *http.Server) { _ = srv.Serve(ln) }(f.srv)
}

func (f *flappingShadow) serveHTTP(w http.ResponseWriter, r *http.Request) {
	_, _ = io.Copy(io.Discard, r.Body)
	f.mu.Lock()
	mode := f.mode
	f.mu.Unlock()
	switch mode {
	case shadowSlow:
		time.Sleep(200 * time.Millisecond)
	case shadowHanging:
		<-r.Context().Done()
		return
	}
	_, _ = io.WriteString(w, "hello from v2 ("+mode+")\n")
}

// set switches the shadow to mode. Going down closes the listener and
// every connection, as a crash would, so that new connections are refused;
// coming back up listens on the same address.
func (f *flappingShadow) set(mode string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	switch mode {
	case shadowFast, shadowSlow, shadowHanging:
		if f.srv == nil {
			ln, err := net.Listen("tcp", f.addr)
			if err != nil {
				return fmt.Errorf("listening on %s again: %v", f.addr, err)
			}
			f.serveOn(ln)
		}
	case "down":
		if f.srv != nil {
			f.srv.Close()
			f.srv = nil
		}
	default:
		return fmt.Errorf("unknown mode %q", mode)
	}
	f.mode = mode
	return nil
}
