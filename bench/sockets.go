package main

import (
	"bufio"
	"errors"
	"fmt"
	"log"
	"os"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// tcpSocket is what this program reads of a line of /proc/net/tcp.
type tcpSocket struct {
	remotePort int
	state      string // hex, as the kernel writes it: 01 ESTABLISHED, 06 TIME_WAIT, 0A LISTEN
	inode      string
}

// parseTCPLine parses a line of /proc/net/tcp or /proc/net/tcp6; ok is
// false for the header and anything else that is not a socket.
func parseTCPLine(line string) (s tcpSocket, ok bool) {
	fields := strings.Fields(line)
	if len(fields) < 10 {
		return s, false
	}
	_, portHex, found := strings.Cut(fields[2], ":")
	if !found {
		return s, false
	}
	port, err := strconv.ParseInt(portHex, 16, 32)
	if err != nil {
		return s, false
	}
	return tcpSocket{remotePort: int(port), state: fields[3], inode: fields[9]}, true
}

// socketInodes returns the inodes of the sockets the processes hold
// open, from their /proc/<pid>/fd links ("socket:[inode]").
func socketInodes(pids []int) map[string]bool {
	inodes := map[string]bool{}
	for _, pid := range pids {
		dir := fmt.Sprintf("/proc/%d/fd", pid)
		entries, _ := os.ReadDir(dir)
		for _, e := range entries {
			link, err := os.Readlink(dir + "/" + e.Name())
			if inode, ok := strings.CutPrefix(link, "socket:["); err == nil && ok {
				inodes[strings.TrimSuffix(inode, "]")] = true
			}
		}
	}
	return inodes
}

// socketsHeldTo counts the TCP sockets that the processes hold open to
// port: those among their descriptors whose remote port it is, in any
// state but TIME_WAIT (which no process holds). A socket the process has
// closed and the kernel is still closing is not counted, unlike
// socketsTo's.
//
// It asks each descriptor for its peer (socketsHeldByPeer), and reads the
// kernel's TCP tables only where the kernel refuses that: a read of
// /proc/net/tcp walks every bucket of the kernel's table, about 10 ms of
// one of this machine's two cores, which showed as a spike in the
// primary's latency at every sample.
func socketsHeldTo(pids []int, port int) int {
	n, err := socketsHeldByPeer(pids, port)
	if err != nil {
		heldFallback.Do(func() {
			log.Printf("  counting the sockets the proxy holds from /proc/net/tcp, which costs the shared cores more: %v", err)
		})
		_, _, n = countSockets(pids, port)
	}
	return n
}

// heldFallback logs, once, that socketsHeldTo falls back to the tables.
var heldFallback sync.Once

// socketsHeldByPeer counts the connected sockets among the processes'
// descriptors whose peer's port is port: it takes a copy of each
// descriptor (pidfd_getfd, which a parent may do to its descendants),
// asks for its peer and closes the copy, which leaves the process's own
// descriptor as it was. It fails where the kernel does not allow it.
func socketsHeldByPeer(pids []int, port int) (int, error) {
	n := 0
	for _, pid := range pids {
		pidfd, err := unix.PidfdOpen(pid, 0)
		if err != nil {
			return 0, fmt.Errorf("pidfd_open(%d): %w", pid, err)
		}
		entries, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
		for _, e := range entries {
			target, err := strconv.Atoi(e.Name())
			if err != nil {
				continue
			}
			fd, err := unix.PidfdGetfd(pidfd, target, 0)
			if errors.Is(err, unix.EBADF) {
				continue // closed since the listing
			}
			if err != nil {
				unix.Close(pidfd)
				return 0, fmt.Errorf("pidfd_getfd(%d, %d): %w", pid, target, err)
			}
			peer, err := unix.Getpeername(fd)
			unix.Close(fd)
			if err == nil && peerPort(peer) == port {
				n++
			}
		}
		unix.Close(pidfd)
	}
	return n, nil
}

// peerPort is the port of an IP socket address, 0 for any other.
func peerPort(sa unix.Sockaddr) int {
	switch a := sa.(type) {
	case *unix.SockaddrInet4:
		return a.Port
	case *unix.SockaddrInet6:
		return a.Port
	}
	return 0
}

// socketsTo counts the TCP sockets whose remote port is port, from the
// kernel's tables: those open, and those in TIME_WAIT.
func socketsTo(port int) (open, timeWait int) {
	open, timeWait, _ = countSockets(nil, port)
	return open, timeWait
}

// countSockets reads the kernel's TCP tables once and counts the sockets
// whose remote port is port: those open (not in TIME_WAIT nor listening),
// those in TIME_WAIT, and those of the open ones that the processes hold
// among their descriptors (none when pids is empty, and no descriptor is
// read then).
func countSockets(pids []int, port int) (open, timeWait, held int) {
	var inodes map[string]bool
	if len(pids) > 0 {
		inodes = socketInodes(pids)
	}
	for _, table := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		f, err := os.Open(table)
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			s, ok := parseTCPLine(sc.Text())
			if !ok || s.remotePort != port {
				continue
			}
			switch s.state {
			case "06": // TIME_WAIT
				timeWait++
			case "0A": // LISTEN
			default:
				open++
				if inodes[s.inode] {
					held++
				}
			}
		}
		f.Close()
	}
	return open, timeWait, held
}

// portOf returns the port of a host:port address, 0 when it has none.
func portOf(addr string) int {
	i := strings.LastIndexByte(addr, ':')
	port, _ := strconv.Atoi(addr[i+1:])
	return port
}
