package main

import (
	"encoding/json"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// mirrorConfig is the mirror handler's config for one variant; nil means
// plain reverse_proxy.
type mirrorConfig struct {
	shadow      string   // shadow kind
	percent     *float64 // nil: 100
	matchHeader bool     // a matcher that never matches
	maxBodySize int64
	largeBodies string // "" for the default, stream
	maxInFlight int
	compare     bool   // compare the shadow's responses with the primary's
	second      string // a second target's shadow kind; "" for none
	secondAddr  string // its address, set when the variant is started
}

// proxyProcess is a running Caddy or nginx.
type proxyProcess struct {
	cmd      *exec.Cmd
	url      string // the front
	adminURL string // Caddy's admin endpoint; "" for nginx
	dir      string
}

// freePort returns a loopback port that is free now.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// caddyJSON is the config of the Caddy under test: reverse_proxy to the
// primary, behind the mirror when m is set.
func caddyJSON(port, adminPort int, primary, shadow string, m *mirrorConfig) ([]byte, error) {
	var handlers []any
	if m != nil {
		target := map[string]any{"upstream": "http://" + shadow}
		if m.percent != nil {
			target["percent"] = *m.percent
		}
		if m.compare {
			target["compare"] = map[string]any{"headers": []string{"Content-Type"}}
		}
		if m.matchHeader {
			target["match"] = []any{map[string]any{"header": map[string]any{"X-Never-Sent": []string{"yes"}}}}
		}
		mirror := map[string]any{"handler": "mirror", "targets": []any{target}}
		if m.second != "" {
			target["name"] = "first"
			mirror["targets"] = []any{target, map[string]any{"name": "second", "upstream": "http://" + m.secondAddr}}
		}
		if m.maxBodySize != 0 {
			mirror["max_body_size"] = m.maxBodySize
		}
		if m.maxInFlight != 0 {
			mirror["max_in_flight"] = m.maxInFlight
		}
		if m.largeBodies != "" {
			mirror["large_bodies"] = m.largeBodies
		}
		handlers = append(handlers, mirror)
	}
	handlers = append(handlers, map[string]any{
		"handler":   "reverse_proxy",
		"upstreams": []any{map[string]any{"dial": primary}},
	})
	return json.Marshal(map[string]any{
		"admin":   map[string]any{"listen": fmt.Sprintf("127.0.0.1:%d", adminPort)},
		"logging": map[string]any{"logs": map[string]any{"default": map[string]any{"level": "ERROR"}}},
		"apps": map[string]any{"http": map[string]any{"servers": map[string]any{"front": map[string]any{
			"listen": []string{fmt.Sprintf("127.0.0.1:%d", port)},
			"routes": []any{map[string]any{"handle": handlers}},
		}}}},
	})
}

// startCaddy runs the Caddy binary at bin with the given config.
func startCaddy(bin, cpus string, primary, shadow string, m *mirrorConfig) (*proxyProcess, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	adminPort, err := freePort()
	if err != nil {
		return nil, err
	}
	cfg, err := caddyJSON(port, adminPort, primary, shadow, m)
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "bench-caddy-")
	if err != nil {
		return nil, err
	}
	cfgPath := filepath.Join(dir, "caddy.json")
	if err := os.WriteFile(cfgPath, cfg, 0o644); err != nil {
		return nil, err
	}
	p := &proxyProcess{
		cmd:      pinned(cpus, bin, "run", "--config", cfgPath),
		url:      fmt.Sprintf("http://127.0.0.1:%d/", port),
		adminURL: fmt.Sprintf("http://127.0.0.1:%d", adminPort),
		dir:      dir,
	}
	return p, p.start()
}

// nginxConf mirrors to the shadow the way nginx's documentation does:
// mirror with mirror_request_body, over keep-alive upstreams, one worker.
// client_max_body_size 0 takes bodies of any size, as Caddy does.
const nginxConf = `worker_processes 1;
user root;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log crit;
events { worker_connections 8192; }
http {
	access_log off;
	client_body_temp_path %[1]s/body;
	proxy_temp_path %[1]s/proxy;
	client_max_body_size 0;
	upstream primary { server %[3]s; keepalive 256; }
	upstream shadow { server %[4]s; keepalive 256; }
	server {
		listen 127.0.0.1:%[2]d;
		location / {
			%[5]s
			proxy_http_version 1.1;
			proxy_set_header Connection "";
			proxy_pass http://primary;
		}
		location = /__mirror {
			internal;
			proxy_http_version 1.1;
			proxy_set_header Connection "";
			proxy_connect_timeout 3s;
			proxy_read_timeout 10s;
			proxy_send_timeout 10s;
			proxy_pass http://shadow$request_uri;
		}
	}
}
`

// startNginx runs nginx with the equivalent of the Caddy config.
func startNginx(cpus, primary, shadow string, m *mirrorConfig) (*proxyProcess, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "bench-nginx-")
	if err != nil {
		return nil, err
	}
	mirror := ""
	if m != nil {
		mirror = "mirror /__mirror;\n\t\t\tmirror_request_body on;"
	}
	conf := fmt.Sprintf(nginxConf, dir, port, primary, shadow, mirror)
	confPath := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		return nil, err
	}
	p := &proxyProcess{
		cmd: pinned(cpus, "nginx", "-p", dir, "-c", confPath, "-g", "daemon off;"),
		url: fmt.Sprintf("http://127.0.0.1:%d/", port),
		dir: dir,
	}
	return p, p.start()
}

// pinned builds a command, under taskset when cpus is set.
func pinned(cpus, name string, args ...string) *exec.Cmd {
	if cpus != "" {
		return exec.Command("taskset", append([]string{"-c", cpus, name}, args...)...)
	}
	return exec.Command(name, args...)
}

func (p *proxyProcess) start() error {
	p.cmd.Stdout = os.Stderr
	p.cmd.Stderr = os.Stderr
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := p.cmd.Start(); err != nil {
		return err
	}
	client := &http.Client{Timeout: time.Second}
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if resp, err := client.Get(p.url); err == nil {
			resp.Body.Close()
			client.CloseIdleConnections()
			return nil
		}
	}
	p.stop()
	return fmt.Errorf("%s did not start serving %s", p.cmd.Path, p.url)
}

// stop ends the process group and waits for it.
func (p *proxyProcess) stop() {
	// SIGTERM, as nginx wants it (a SIGKILLed master leaves its workers
	// behind); SIGKILL only for a process still there after stopGrace
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGTERM)
	done := make(chan struct{})
	go func() {
		_ = p.cmd.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(stopGrace):
		log.Printf("  %s did not exit within %s of SIGTERM: killed", p.cmd.Path, stopGrace)
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-done
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
	for _, pid := range p.pids() {
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
