package main

import (
	"errors"
	"fmt"
	"log"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// nginxConf mirrors to the shadow the way nginx's documentation does:
// mirror with mirror_request_body, over keep-alive upstreams, one worker.
// client_max_body_size 0 takes bodies of any size, as Caddy does.
// /__bench_ready answers this nginx's own token, so that startNginx knows
// it is this nginx that answers on the port and not another socket's
// owner.
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
		location = /__bench_ready {
			default_type text/plain;
			return 200 "%[6]s";
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

// nginxPortTries is how many ports startNginx tries. nginx cannot bind
// port 0 and say which port it got, so the port is chosen free beforehand,
// and another socket can take it before nginx binds it.
const nginxPortTries = 5

// nginxStartTimeout bounds how long an nginx may take to answer. nginx
// itself tries a taken port for 2.5 s before it exits.
const nginxStartTimeout = 30 * time.Second

// errPortTaken is the error of an nginx that could not bind its port
// because another socket held it.
var errPortTaken = errors.New("address already in use")

// freePort returns a loopback port that is free now; another socket can
// take it before the caller binds it. Only nginx, which cannot bind port 0
// and report it back, uses it.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// startNginx runs nginx with the equivalent of the Caddy config, on
// another port when the one chosen was taken before nginx could bind it.
func startNginx(cpus, primary, shadow string, m *mirrorConfig) (*proxyProcess, error) {
	var taken []string
	for range nginxPortTries {
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		p, err := startNginxOn(port, cpus, primary, shadow, m)
		if !errors.Is(err, errPortTaken) {
			return p, err
		}
		taken = append(taken, strconv.Itoa(port))
		log.Printf("  nginx: 127.0.0.1:%d was taken by another socket before nginx could bind it; trying another port", port)
	}
	return nil, fmt.Errorf("nginx could not bind a loopback port in %d tries: 127.0.0.1:{%s} were each free when chosen and taken by another socket (Address already in use) before nginx bound them",
		nginxPortTries, strings.Join(taken, ","))
}

// startNginxOn runs nginx on port and waits until it answers there. Its
// error wraps errPortTaken when nginx could not bind the port.
func startNginxOn(port int, cpus, primary, shadow string, m *mirrorConfig) (*proxyProcess, error) {
	dir, err := os.MkdirTemp("", "bench-nginx-")
	if err != nil {
		return nil, err
	}
	mirror := ""
	if m != nil {
		mirror = "mirror /__mirror;\n\t\t\tmirror_request_body on;"
	}
	token := filepath.Base(dir)
	conf := fmt.Sprintf(nginxConf, dir, port, primary, shadow, mirror, token)
	confPath := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	p := &proxyProcess{
		cmd:    pinned(cpus, "nginx", "-p", dir, "-c", confPath, "-g", "daemon off;"),
		url:    fmt.Sprintf("http://127.0.0.1:%d/", port),
		dir:    dir,
		output: &outputWatcher{},
	}
	if err := p.start(); err != nil {
		return nil, err
	}
	err = p.waitServing(p.url+"__bench_ready", time.Now().Add(nginxStartTimeout), func(body []byte) bool { return string(body) == token })
	if err != nil {
		inUse := p.nginxPortInUse()
		p.stop()
		if inUse {
			return nil, fmt.Errorf("nginx on 127.0.0.1:%d: %w", port, errPortTaken)
		}
		return nil, err
	}
	return p, nil
}

// nginxPortInUse reports whether nginx said, on its standard error or in
// its error log, that its port was in use.
func (p *proxyProcess) nginxPortInUse() bool {
	errorLog, _ := os.ReadFile(filepath.Join(p.dir, "error.log"))
	return strings.Contains(string(errorLog)+p.output.lastLines(), "Address already in use")
}
