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
	port int
	mu   sync.Mutex
	mode string
	srv  *http.Server // nil while down
	held *portHolder  // holds the port while down; nil while up
}

// flappingRebindTimeout bounds how long going down waits for the closed
// listener's socket to be gone before it holds the port.
const flappingRebindTimeout = 2 * time.Second

// newFlappingShadow starts the flapping shadow, fast, on a free loopback
// port.
func newFlappingShadow() (*flappingShadow, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	f := &flappingShadow{addr: ln.Addr().String(), port: ln.Addr().(*net.TCPAddr).Port, mode: shadowFast}
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
// every connection, as a crash would, so that new connections are refused,
// and holds the port so that no other socket takes it meanwhile; coming
// back up listens on the same address.
func (f *flappingShadow) set(mode string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	switch mode {
	case shadowFast, shadowSlow, shadowHanging:
		if err := f.up(); err != nil {
			return err
		}
	case "down":
		if err := f.down(); err != nil {
			return err
		}
	default:
		return fmt.Errorf("unknown mode %q", mode)
	}
	f.mode = mode
	return nil
}

// up listens again when the shadow is down; the port holder lets this
// program's listener share the port, and is released once it listens.
func (f *flappingShadow) up() error {
	if f.srv != nil {
		return nil
	}
	ln, err := net.Listen("tcp", f.addr)
	if err != nil {
		return fmt.Errorf("listening on %s again: %v", f.addr, err)
	}
	if f.held != nil {
		f.held.release()
		f.held = nil
	}
	f.serveOn(ln)
	return nil
}

// down closes the server and holds its port.
func (f *flappingShadow) down() error {
	if f.srv == nil {
		return nil
	}
	f.srv.Close()
	f.srv = nil
	held, err := holdPortAgain(f.port, time.Now().Add(flappingRebindTimeout))
	if err != nil {
		return fmt.Errorf("the flapping shadow went down, but could not hold its port %d: another socket took it (%v)", f.port, err)
	}
	f.held = held
	return nil
}
