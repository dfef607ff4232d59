package main

import (
	"fmt"
	"log"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

// proxyProcess is a running Caddy or nginx.
type proxyProcess struct {
	cmd    *exec.Cmd
	url    string    // the front, once it is known
	admin  *adminAPI // Caddy's admin endpoint; nil for nginx
	dir    string    // its temporary folder, removed by stop
	output *outputWatcher

	exited  chan struct{} // closed once the process has exited
	waitErr error         // how it exited, once exited is closed
}

// readyProbeClient is the client of the readiness probes.
var readyProbeClient = &http.Client{Timeout: time.Second}

// readyProbeEvery is how often waitServing probes the front.
const readyProbeEvery = 50 * time.Millisecond

// pinned builds a command, under taskset when cpus is set.
func pinned(cpus, name string, args ...string) *exec.Cmd {
	if cpus != "" {
		return exec.Command("taskset", append([]string{"-c", cpus, name}, args...)...)
	}
	return exec.Command(name, args...)
}

// start starts the process in its own process group, its output going to
// p.output, and notes when it exits.
func (p *proxyProcess) start() error {
	p.cmd.Stdout = p.output
	p.cmd.Stderr = p.output
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	p.exited = make(chan struct{})
	if err := p.cmd.Start(); err != nil {
		_ = os.RemoveAll(p.dir)
		return fmt.Errorf("starting %s: %v", p.cmd.Path, err)
	}
	go func() {
		p.waitErr = p.cmd.Wait()
		close(p.exited)
	}()
	return nil
}

// await waits for a value on ch until deadline; what says in an error
// what was awaited. It fails as soon as the process exits.
func (p *proxyProcess) await(ch <-chan string, deadline time.Time, what string) (string, error) {
	timer := time.NewTimer(time.Until(deadline))
	defer timer.Stop()
	select {
	case v := <-ch:
		return v, nil
	case <-p.exited:
		return "", fmt.Errorf("%s exited (%v) before %s; its last output:%s", p.cmd.Path, p.waitErr, what, p.output.lastLines())
	case <-timer.C:
		return "", fmt.Errorf("%s gave no %s in time; its last output:%s", p.cmd.Path, what, p.output.lastLines())
	}
}

// waitServing polls url until the process answers it, with a body that
// accept takes when accept is set, or exits, or deadline passes.
func (p *proxyProcess) waitServing(url string, deadline time.Time, accept func(body []byte) bool) error {
	defer readyProbeClient.CloseIdleConnections()
	last := "no answer yet"
	for {
		body, err := getURL(readyProbeClient, url, "")
		if err == nil && (accept == nil || accept(body)) {
			return nil
		}
		if err != nil {
			last = err.Error()
		} else {
			last = fmt.Sprintf("another server answered: %q", excerpt(body))
		}
		select {
		case <-p.exited:
			return fmt.Errorf("%s exited (%v) before it answered on %s; its last output:%s", p.cmd.Path, p.waitErr, url, p.output.lastLines())
		case <-time.After(readyProbeEvery):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s did not answer on %s in time (last probe: %s); its last output:%s", p.cmd.Path, url, last, p.output.lastLines())
		}
	}
}

// stop ends the process group and waits for it.
func (p *proxyProcess) stop() {
	// SIGTERM, as nginx wants it (a SIGKILLed master leaves its workers
	// behind); SIGKILL only for a process still there after stopGrace
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(stopGrace):
		log.Printf("  %s did not exit within %s of SIGTERM: killed", p.cmd.Path, stopGrace)
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.exited
	}
	if p.admin != nil {
		p.admin.close()
	}
	_ = os.RemoveAll(p.dir)
}

// stopGrace is how long stop waits for a proxy to exit after SIGTERM.
const stopGrace = 5 * time.Second

// pids returns the process and its descendants (nginx's worker; the Caddy
// under taskset).
func (p *proxyProcess) pids() []int {
	root := p.cmd.Process.Pid
	pids := []int{root}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		var pid int
		if _, err := fmt.Sscanf(e.Name(), "%d", &pid); err != nil {
			continue
		}
		if pgid, err := syscall.Getpgid(pid); err == nil && pgid == root && pid != root {
			pids = append(pids, pid)
		}
	}
	return pids
}

// cpuTime is the user plus system time the process group has used, from
// the kernel's accounting.
func (p *proxyProcess) cpuTime() time.Duration {
	return processCPU(p.pids()...)
}

// processCPU is the user plus system time the processes have used.
func processCPU(pids ...int) time.Duration {
	var ticks int64
	for _, pid := range pids {
		data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		// the fields after the command name, which is in parentheses
		fields := strings.Fields(string(data[strings.LastIndexByte(string(data), ')')+2:]))
		var utime, stime int64
		fmt.Sscan(fields[11], &utime)
		fmt.Sscan(fields[12], &stime)
		ticks += utime + stime
	}
	return time.Duration(ticks) * time.Second / 100 // USER_HZ
}

// kernelWork returns how many read and write system calls the process
// group has made (/proc/<pid>/io) and how many times its threads were
// switched out (voluntary and involuntary context switches).
func (p *proxyProcess) kernelWork() (syscalls, switches int64) {
	for _, pid := range p.pids() {
		syscalls += sumFields(fmt.Sprintf("/proc/%d/io", pid), "syscr: %d", "syscw: %d")
		tasks, _ := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
		for _, task := range tasks {
			switches += sumFields(fmt.Sprintf("/proc/%d/task/%s/status", pid, task.Name()),
				"voluntary_ctxt_switches: %d", "nonvoluntary_ctxt_switches: %d")
		}
	}
	return syscalls, switches
}

// sumFields adds up the numbers of the lines of a /proc file that match
// any of the formats, each of which scans one number.
func sumFields(path string, formats ...string) int64 {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	var sum int64
	for _, line := range strings.Split(string(data), "\n") {
		for _, format := range formats {
			var n int64
			if _, err := fmt.Sscanf(line, format, &n); err == nil {
				sum += n
			}
		}
	}
	return sum
}

// memory returns the group's resident set now and at its peak (VmRSS,
// VmHWM), in bytes.
func (p *proxyProcess) memory() (rss, peak int64) {
	return memoryOf(p.pids())
}

// memoryOf returns the processes' resident set now and at its peak, in
// bytes.
func memoryOf(pids []int) (rss, peak int64) {
	for _, pid := range pids {
		data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(data), "\n") {
			var kb int64
			if _, err := fmt.Sscanf(line, "VmRSS: %d kB", &kb); err == nil {
				rss += kb << 10
			}
			if _, err := fmt.Sscanf(line, "VmHWM: %d kB", &kb); err == nil {
				peak += kb << 10
			}
		}
	}
	return rss, peak
}
