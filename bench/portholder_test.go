package main

import (
	"net"
	"strings"
	"testing"
	"time"
)

// TestRefusingShadowKeepsItsPort: the refusing shadow's port refuses
// connections, and no listener can take it.
func TestRefusingShadowKeepsItsPort(t *testing.T) {
	b, err := newShadow(shadowRefusing)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := net.Dial("tcp", b.addr); err == nil || !strings.Contains(err.Error(), "refused") {
		t.Fatalf("dialling the refusing shadow: %v; want connection refused", err)
	}
	if ln, err := net.Listen("tcp", b.addr); err == nil {
		ln.Close()
		t.Fatalf("another listener took the refusing shadow's %s", b.addr)
	}
}

// TestFlappingShadowHoldsItsPortWhileDown: down, the flapping shadow's
// port refuses connections and cannot be taken; up again, it answers.
func TestFlappingShadowHoldsItsPortWhileDown(t *testing.T) {
	f, err := newFlappingShadow()
	if err != nil {
		t.Fatal(err)
	}
	if err := f.set("down"); err != nil {
		t.Fatal(err)
	}
	if _, err := net.Dial("tcp", f.addr); err == nil {
		t.Fatal("the shadow is down, but a connection was accepted")
	}
	if h, err := holdPort(f.port, false); err == nil {
		h.release()
		t.Fatalf("another socket took %s while the shadow was down", f.addr)
	}
	if err := f.set(shadowFast); err != nil {
		t.Fatal(err)
	}
	conn, err := net.DialTimeout("tcp", f.addr, time.Second)
	if err != nil {
		t.Fatalf("the shadow is up again, but: %v", err)
	}
	conn.Close()
}
