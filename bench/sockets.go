package main

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
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
func socketsHeldTo(pids []int, port int) int {
	inodes := socketInodes(pids)
	n := 0
	for _, table := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		f, err := os.Open(table)
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			s, ok := parseTCPLine(sc.Text())
			if ok && s.remotePort == port && s.state != "06" && inodes[s.inode] {
				n++
			}
		}
		f.Close()
	}
	return n
}

// portOf returns the port of a host:port address, 0 when it has none.
func portOf(addr string) int {
	i := strings.LastIndexByte(addr, ':')
	port, _ := strconv.Atoi(addr[i+1:])
	return port
}
