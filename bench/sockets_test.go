package main

import (
	"net"
	"os"
	"testing"
)

// TestParseTCPLine reads the remote port, the state and the inode of a
// line of /proc/net/tcp, and skips its header.
func TestParseTCPLine(t *testing.T) {
	line := "   3: 0100007F:A1B2 0100007F:1F90 01 00000000:00000000 00:00000000 00000000     0        0 123456 1 0000000000000000 20 4 30 10 -1"
	s, ok := parseTCPLine(line)
	if !ok || s.remotePort != 0x1F90 || s.state != "01" || s.inode != "123456" {
		t.Fatalf("%+v %v", s, ok)
	}
	if _, ok := parseTCPLine("  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode"); ok {
		t.Fatal("the header parsed")
	}
}

// TestSocketsHeldTo counts the connection this process holds to a
// listener, and none once it is closed, by each of the two ways.
func TestSocketsHeldTo(t *testing.T) {
	byPeer := func(t *testing.T, pids []int, port int) int {
		n, err := socketsHeldByPeer(pids, port)
		if err != nil {
			t.Skipf("the kernel does not let this process copy its own descriptors: %v", err)
		}
		return n
	}
	fromTables := func(_ *testing.T, pids []int, port int) int {
		_, _, n := countSockets(pids, port)
		return n
	}
	for name, count := range map[string]func(*testing.T, []int, int) int{"by peer": byPeer, "from the tables": fromTables} {
		t.Run(name, func(t *testing.T) { testSocketsHeld(t, count) })
	}
}

func testSocketsHeld(t *testing.T, count func(*testing.T, []int, int) int) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	port := portOf(ln.Addr().String())
	if n := count(t, []int{os.Getpid()}, port); n != 1 {
		t.Fatalf("%d sockets held to the listener; want 1", n)
	}
	conn.Close()
	if n := count(t, []int{os.Getpid()}, port); n != 0 {
		t.Fatalf("%d sockets held after the close; want 0", n)
	}
}
