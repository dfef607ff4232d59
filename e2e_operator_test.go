package mirror

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// jsonLines reads the JSON lines of a log file.
func jsonLines(t *testing.T, path string) []map[string]any {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var lines []map[string]any
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var line map[string]any
		if err := json.Unmarshal(sc.Bytes(), &line); err == nil {
			lines = append(lines, line)
		}
	}
	return lines
}

// TestE2E_ComparingNamesBelongToOnePrimary: two sites whose mirrors
// compare under the same name would mix two primaries in one report; such
// a config is refused with the name, and the previous one keeps serving.
// Without compare, the same name on two sites is one shadow's series.
func TestE2E_ComparingNamesBelongToOnePrimary(t *testing.T) {
	primaryA, primaryB := newBackend(t, http.StatusOK, "a"), newBackend(t, http.StatusOK, "b")
	shadowA, shadowB := newBackend(t, http.StatusOK, "sa"), newBackend(t, http.StatusOK, "sb")
	rec := recordOutcomes(t)
	sites := func(compare string) string {
		return fmt.Sprintf(`
http://:0 {
	bind 127.0.0.1
	mirror %s {
		name cand
		%s
	}
	reverse_proxy %s
}
http://:0 {
	bind 127.0.0.2
	mirror %s {
		name cand
		%s
	}
	reverse_proxy %s
}
`, shadowA.URL, compare, primaryA.addr(), shadowB.URL, compare, primaryB.addr())
	}
	tester := loadSites(t, sites(""))
	defer unloadMirrors(tester)
	do(t, tester, mustRequest(t, http.MethodGet, frontURL+"/x"))
	do(t, tester, mustRequest(t, http.MethodGet, siteURL(t, "127.0.0.2")+"/y"))
	rec.wait(t, 2)
	if got := metricValue(t, "cand", "mirrored"); got != 2 {
		t.Errorf("cand mirrored = %v, want the two sites' copies counted together", got)
	}

	status, msg := postLoad(t, []byte(caddyfileGlobals()+sites("compare")), "text/caddyfile")
	if status == http.StatusOK || !strings.Contains(msg, `cand\" is already used by a comparing target of another mirror handler`) {
		t.Errorf("two comparing targets named cand: POST /load answered %d %s, want a refusal naming cand", status, msg)
	}
	if status, body := do(t, tester, mustRequest(t, http.MethodGet, frontURL+"/z")); status != http.StatusOK || body != "a" {
		t.Errorf("after the refused load the front answered %d %q, want the previous config's a", status, body)
	}
	rec.wait(t, 1)
}

// TestE2E_LogsForOperators: two dead targets each get their own failure
// lines (sampling is per target), each line shows the request as Caddy's
// access log does (uri, client_ip), and the access log tells which
// targets a request was copied to.
func TestE2E_LogsForOperators(t *testing.T) {
	dir := t.TempDir()
	mirrorLog, accessLog := filepath.Join(dir, "mirror.log"), filepath.Join(dir, "access.log")
	primary := newBackend(t, http.StatusOK, "v1")
	rec := recordOutcomes(t)
	globals := caddyfileGlobals(fmt.Sprintf("log mirror {\n\toutput file %s\n\tformat json\n\tinclude http.handlers.mirror\n}", mirrorLog))
	tester := loadConfig(t, []byte(globals+fmt.Sprintf(`
http://:0 {
	bind 127.0.0.1
	log {
		output file %s
		format json
	}
	mirror {
		to http://%s {
			name a
			max_fails -1
		}
		to http://%s {
			name b
			max_fails -1
		}
	}
	reverse_proxy %s
}
`, accessLog, closedAddr(t), closedAddr(t), primary.addr())), "text/caddyfile")
	for i := range 4 {
		do(t, tester, mustRequest(t, http.MethodGet, fmt.Sprintf("%s/orders/%d?page=2", frontURL, i)))
	}
	rec.wait(t, 8)
	unloadMirrors(tester) // flushes nothing, but ends the config's copies

	failedFor := map[string]int{}
	for _, line := range jsonLines(t, mirrorLog) {
		if line["msg"] != "mirror request failed" {
			continue
		}
		target, _ := line["target"].(string)
		failedFor[target]++
		req, _ := line["request"].(map[string]any)
		if uri, _ := req["uri"].(string); !strings.HasPrefix(uri, "/orders/") || !strings.HasSuffix(uri, "?page=2") {
			t.Errorf("a failure line's request.uri = %q, want the copy's /orders/N?page=2", uri)
		}
		if ip, _ := req["client_ip"].(string); ip != "127.0.0.1" {
			t.Errorf("a failure line's request.client_ip = %q, want 127.0.0.1", ip)
		}
		if _, ok := line["uri"]; ok {
			t.Error("a failure line has a top-level uri beside the request's")
		}
	}
	if failedFor["a"] == 0 || failedFor["b"] == 0 {
		t.Errorf("failure lines by target: %v, want each dead target's cause logged", failedFor)
	}

	copied := 0
	for _, line := range jsonLines(t, accessLog) {
		if to, ok := line["mirrored_to"].([]any); ok {
			if len(to) != 2 || to[0] != "a" || to[1] != "b" {
				t.Errorf("access log mirrored_to = %v, want [a b]", to)
			}
			copied++
		}
	}
	if copied != 4 {
		t.Errorf("%d access log lines say where the request was copied, want 4", copied)
	}
}

// TestE2E_CopyWithoutBody: with request_body off, the copy has the
// request's method, URI and headers and no body, is sent at once, and a
// body over max_body_size does not keep it from being copied.
func TestE2E_CopyWithoutBody(t *testing.T) {
	primary := newBackend(t, http.StatusOK, "v1")
	shadow := newBackend(t, http.StatusOK, "shadow")
	rec := recordOutcomes(t)
	tester := loadSites(t, fmt.Sprintf(`
http://:0 {
	bind 127.0.0.1
	mirror %s {
		request_body off
	}
	reverse_proxy %s
}
`, shadow.URL, primary.addr()))
	defer unloadMirrors(tester)
	for _, size := range []int{10, 4 << 20} {
		body := strings.Repeat("x", size)
		req, _ := http.NewRequest(http.MethodPost, frontURL+"/upload?n=1", strings.NewReader(body))
		req.Header.Set("X-Kind", "shape")
		if status, _ := do(t, tester, req); status != http.StatusOK {
			t.Fatalf("client got %d", status)
		}
		if p := receive(t, primary.seen, "the primary's request"); p.body != body {
			t.Errorf("primary got %d bytes, want %d", len(p.body), size)
		}
		s := receive(t, shadow.seen, "the copy")
		if s.method != http.MethodPost || s.requestURI != "/upload?n=1" || s.header.Get("X-Kind") != "shape" || s.body != "" {
			t.Errorf("copy %s %s X-Kind=%q with %d bytes of body, want the POST's shape and no body", s.method, s.requestURI, s.header.Get("X-Kind"), len(s.body))
		}
		if o := rec.wait(t, 1)[0]; o.outcome != mirrored {
			t.Errorf("a %d-byte request: outcome %v, want mirrored", size, o.outcome)
		}
	}
}

// TestE2E_UpstreamPlaceholders: reverse_proxy's idiom header_up Host
// {upstream_hostport} names the copy's own shadow, never an empty value.
func TestE2E_UpstreamPlaceholders(t *testing.T) {
	primary := newBackend(t, http.StatusOK, "v1")
	shadow := newBackend(t, http.StatusOK, "shadow")
	rec := recordOutcomes(t)
	tester := loadSites(t, fmt.Sprintf(`
http://:0 {
	bind 127.0.0.1
	mirror %s {
		header_up Host {upstream_hostport}
		header_up X-Shadow-Port {http.reverse_proxy.upstream.port}
	}
	reverse_proxy %s
}
`, shadow.URL, primary.addr()))
	defer unloadMirrors(tester)
	do(t, tester, mustRequest(t, http.MethodGet, frontURL+"/"))
	rec.wait(t, 1)
	s := receive(t, shadow.seen, "the copy")
	_, port, _ := net.SplitHostPort(shadow.addr())
	if s.host != shadow.addr() || s.header.Get("X-Shadow-Port") != port {
		t.Errorf("copy Host %q, X-Shadow-Port %q; want the shadow's %s and %s", s.host, s.header.Get("X-Shadow-Port"), shadow.addr(), port)
	}
	if p := receive(t, primary.seen, "the primary's request"); p.header.Get("X-Shadow-Port") != "" {
		t.Error("the primary's request got the copy's header edit")
	}
}
