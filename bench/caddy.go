package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
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
	secondNoise bool   // the second target is the first's compare.noise_from
	https       bool   // the shadow is an https:// upstream, its certificate not verified
	// afterPrimary sends each copy once the primary has answered
	// (wait_for_primary 100ms), not as soon as it is complete
	afterPrimary bool
	// replicas, when set, are the addresses of the target's other
	// replicas: the target is then a pool of the shadow and these
	replicas []string
}

// caddyFrontListen is the front's listen address: port 0, so that Caddy
// binds a port nothing else holds, and says which in its log.
const caddyFrontListen = "127.0.0.1:0"

// caddyStartTimeout bounds how long a Caddy may take to report its front
// address and to answer on it.
const caddyStartTimeout = 30 * time.Second

// caddyJSON is the config of the Caddy under test: reverse_proxy to the
// primary, behind the mirror when m is set, its admin endpoint on admin's
// socket.
func caddyJSON(admin *adminAPI, primary, shadow string, m *mirrorConfig) ([]byte, error) {
	return caddyJSONOn(admin, caddyFrontListen, primary, shadow, m)
}

// caddyJSONOn is caddyJSON with the front on listen: a reload names the
// port that the first config's port 0 got, so that the front stays put.
func caddyJSONOn(admin *adminAPI, listen, primary, shadow string, m *mirrorConfig) ([]byte, error) {
	var handlers []any
	if m != nil {
		handlers = append(handlers, mirrorHandler(shadow, m))
	}
	handlers = append(handlers, map[string]any{
		"handler":   "reverse_proxy",
		"upstreams": []any{map[string]any{"dial": primary}},
	})
	return json.Marshal(map[string]any{
		"admin":   map[string]any{"listen": admin.listenAddress()},
		"logging": caddyLogging(),
		"apps": map[string]any{"http": map[string]any{"servers": map[string]any{"front": map[string]any{
			"listen": []string{listen},
			"routes": []any{map[string]any{"handle": handlers}},
		}}}},
	})
}

// mirrorHandler is the mirror handler's JSON for m.
func mirrorHandler(shadow string, m *mirrorConfig) map[string]any {
	target := map[string]any{"upstream": "http://" + shadow}
	if m.shadow == shadowSlowH2C {
		target["upstream"] = "h2c://" + shadow
	}
	if m.https {
		target["upstream"] = "https://" + shadow
		target["transport"] = map[string]any{"protocol": "http", "tls": map[string]any{"insecure_skip_verify": true}}
	}
	if len(m.replicas) > 0 {
		upstreams := []string{"http://" + shadow}
		for _, addr := range m.replicas {
			upstreams = append(upstreams, "http://"+addr)
		}
		delete(target, "upstream")
		target["upstreams"] = upstreams
	}
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
		if m.compare && m.secondNoise {
			target["compare"].(map[string]any)["noise_from"] = "second"
		}
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
	if m.afterPrimary {
		mirror["wait_for_primary"] = "100ms"
	}
	return mirror
}

// caddyLogging is Caddy's logging: errors only, as JSON lines on standard
// error, and a second log at INFO of the HTTP app's own logger alone,
// which says at startup which port each port-0 listener got. The
// handlers' and the request logs stay out of it, so it adds a few lines
// per start, which showCaddyLine keeps off this program's output.
func caddyLogging() map[string]any {
	jsonStderr := func(level string) map[string]any {
		return map[string]any{"level": level, "writer": map[string]any{"output": "stderr"}, "encoder": map[string]any{"format": "json"}}
	}
	listeners := jsonStderr("INFO")
	listeners["include"] = []string{"http"}
	listeners["exclude"] = []string{"http.log", "http.handlers", "http.stdlib"}
	return map[string]any{"logs": map[string]any{"default": jsonStderr("ERROR"), "listeners": listeners}}
}

// caddyLogLine is what this program reads of a line of Caddy's log.
type caddyLogLine struct {
	Level         string `json:"level"`
	Msg           string `json:"msg"`
	InputAddress  string `json:"input_address"`
	ActualAddress string `json:"actual_address"`
}

// parseCaddyLine parses a line of Caddy's JSON log; ok is false for a line
// that is not one (Caddy's dependencies print some of their own).
func parseCaddyLine(line []byte) (l caddyLogLine, ok bool) {
	if !bytes.HasPrefix(line, []byte("{")) {
		return l, false
	}
	return l, json.Unmarshal(line, &l) == nil
}

// showCaddyLine says whether a line of Caddy's output goes on to this
// program's: errors and anything that is not a log line do; the listeners
// log's INFO and WARN lines, which only this program reads, do not.
func showCaddyLine(line []byte) bool {
	l, ok := parseCaddyLine(line)
	return !ok || (l.Level != "debug" && l.Level != "info" && l.Level != "warn")
}

// frontAddressReader returns a reader of Caddy's output lines that sends
// the front's actual address, from the "port 0 listener" line, on the
// channel it returns.
func frontAddressReader() (func(line []byte), <-chan string) {
	found := make(chan string, 1)
	return func(line []byte) {
		l, ok := parseCaddyLine(line)
		if ok && l.Msg == "port 0 listener" && l.InputAddress == caddyFrontListen && l.ActualAddress != "" {
			select {
			case found <- l.ActualAddress:
			default: // one is enough
			}
		}
	}, found
}

// startCaddy runs the Caddy binary at bin with the given config and waits
// until it serves.
func startCaddy(bin, cpus string, primary, shadow string, m *mirrorConfig) (*proxyProcess, error) {
	dir, err := os.MkdirTemp("", "bench-caddy-")
	if err != nil {
		return nil, err
	}
	admin, err := newAdminAPI(dir)
	if err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	cfg, err := caddyJSON(admin, primary, shadow, m)
	if err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	cfgPath := filepath.Join(dir, "caddy.json")
	if err := os.WriteFile(cfgPath, cfg, 0o644); err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	read, front := frontAddressReader()
	p := &proxyProcess{
		cmd:    pinned(cpus, bin, "run", "--config", cfgPath),
		admin:  admin,
		dir:    dir,
		output: &outputWatcher{read: read, show: showCaddyLine},
	}
	if err := p.start(); err != nil {
		return nil, err
	}
	deadline := time.Now().Add(caddyStartTimeout)
	addr, err := p.await(front, deadline, `the "port 0 listener" line for `+caddyFrontListen+" in its log")
	if err == nil {
		p.url = "http://" + addr + "/"
		err = p.waitServing(p.url, deadline, nil)
	}
	if err != nil {
		p.stop()
		return nil, err
	}
	return p, nil
}
