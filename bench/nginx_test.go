package main

import (
	"errors"
	"net"
	"os"
	"os/exec"
	"testing"
)

// TestStartNginxOnATakenPort: nginx on a port another socket holds fails
// with errPortTaken, which startNginx answers with another port, and not
// before it has made sure the answer on the port is not the other
// socket's.
func TestStartNginxOnATakenPort(t *testing.T) {
	if _, err := exec.LookPath("nginx"); err != nil || os.Geteuid() != 0 {
		t.Skip("needs nginx, run as root")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() { // answers like a web server, but not this nginx
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			_, _ = conn.Write([]byte("HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nfrom"))
			conn.Close()
		}
	}()
	port := ln.Addr().(*net.TCPAddr).Port
	p, err := startNginxOn(port, "", "127.0.0.1:1", "127.0.0.1:2", nil)
	if err == nil {
		p.stop()
		t.Fatal("nginx started on a taken port")
	}
	if !errors.Is(err, errPortTaken) {
		t.Fatalf("%v; want errPortTaken", err)
	}
	p, err = startNginx("", "127.0.0.1:1", "127.0.0.1:2", nil)
	if err != nil {
		t.Fatal(err)
	}
	p.stop()
}
