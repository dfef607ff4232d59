package main

import (
	"errors"
	"fmt"
	"syscall"
	"time"
)

// portHolder is a TCP socket bound to a loopback port that never listens.
// Connections to the port are refused, and while the socket stays bound
// Linux lets no other socket take the port: connect and bind to port 0
// skip a bound port, and a bind to it fails unless both sockets set
// SO_REUSEADDR. A refusing shadow is one, so that its port cannot be taken
// and answered by another socket, as a port closed after it was chosen can
// be; the flapping shadow holds its port with one while it is down.
type portHolder struct {
	fd   int
	port int
}

// holdPort binds a socket to 127.0.0.1:port, any free port for 0. With
// share it sets SO_REUSEADDR, so that a listener of this program (Go sets
// it on every listener) can bind the port while it is held; without it,
// nothing can.
func holdPort(port int, share bool) (*portHolder, error) {
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("holding a loopback port: %v", err)
	}
	if share {
		if err := syscall.SetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_REUSEADDR, 1); err != nil {
			_ = syscall.Close(fd)
			return nil, fmt.Errorf("holding 127.0.0.1:%d: %v", port, err)
		}
	}
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}, Port: port}); err != nil {
		_ = syscall.Close(fd)
		return nil, fmt.Errorf("holding 127.0.0.1:%d: %w", port, err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		_ = syscall.Close(fd)
		return nil, fmt.Errorf("holding 127.0.0.1:%d: %v", port, err)
	}
	return &portHolder{fd: fd, port: sa.(*syscall.SockaddrInet4).Port}, nil
}

// holdPortAgain holds a port that a listener of this program has just
// closed. Go closes a listener's socket once its Accept has returned, a
// moment after Close, so it tries again until deadline while the port is
// still in use; past it the port is taken by another socket.
func holdPortAgain(port int, deadline time.Time) (*portHolder, error) {
	for {
		h, err := holdPort(port, true)
		if err == nil || !errors.Is(err, syscall.EADDRINUSE) || time.Now().After(deadline) {
			return h, err
		}
		time.Sleep(time.Millisecond) // polling the kernel, with a deadline
	}
}

// addr is the held address, host:port.
func (h *portHolder) addr() string {
	return fmt.Sprintf("127.0.0.1:%d", h.port)
}

// release closes the socket, which frees the port.
func (h *portHolder) release() {
	_ = syscall.Close(h.fd)
}
