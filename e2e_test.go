package mirror

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
)

func TestE2E_VerbatimCopy(t *testing.T) {
	rec := recordOutcomes(t)
	primary := newBackend(t, http.StatusCreated, "from primary")
	shadow := newBackend(t, http.StatusInternalServerError, "from shadow")
	tester := loadSites(t, fmt.Sprintf(`
http://:0 {
	bind 127.0.0.1
	mirror http://%s/shadow
	reverse_proxy %s
}
`, shadow.addr(), primary.addr()))

	body := "name=caddy&value=%E2%9C%93\x00binary\xff"
	req, _ := http.NewRequest(http.MethodPut, frontURL+"/api/items/a%2Fb%20c?q=1&q=2&x=%41+b", strings.NewReader(body))
	req.Host = "reviews.example:9080"
	req.Header.Set("Authorization", "Bearer secret-token")
	req.Header.Set("Cookie", "session=abc")
	req.Header.Add("X-Multi", "one")
	req.Header.Add("X-Multi", "two")
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Connection", "X-Hop")
	req.Header.Set("X-Hop", "dropped")
	status, got := do(t, tester, req)
	if status != http.StatusCreated || got != "from primary" {
		t.Fatalf("client got %d %q, want 201 %q", status, got, "from primary")
	}

	p := receive(t, primary.seen, "the primary's request")
	s := receive(t, shadow.seen, "the copy")
	if o := rec.wait(t, 1)[0]; o.outcome != mirrored {
		t.Errorf("outcome = %v, want mirrored", o.outcome)
	}

	if s.method != http.MethodPut {
		t.Errorf("copy method = %s, want PUT", s.method)
	}
	if want := "/shadow/api/items/a%2Fb%20c?q=1&q=2&x=%41+b"; s.requestURI != want {
		t.Errorf("copy URI = %s, want %s", s.requestURI, want)
	}
	if s.host != "reviews.example:9080" || s.host != p.host {
		t.Errorf("copy Host = %s, want %s as the primary got", s.host, p.host)
	}
	if s.body != body || p.body != body {
		t.Errorf("bodies: copy %q, primary %q, want %q", s.body, p.body, body)
	}
	for _, name := range []string{"Authorization", "Cookie", "X-Multi", "Content-Type", "User-Agent", "Accept-Encoding", "X-Forwarded-For", "X-Forwarded-Proto", "X-Forwarded-Host"} {
		if sv, pv := s.header.Values(name), p.header.Values(name); strings.Join(sv, "|") != strings.Join(pv, "|") {
			t.Errorf("copy %s = %q, want %q as the primary got", name, sv, pv)
		}
	}
	if got := s.header.Values("X-Multi"); strings.Join(got, "|") != "one|two" {
		t.Errorf("copy X-Multi = %q, want [one two]", got)
	}
	if got := s.header.Get("X-Forwarded-For"); got != "127.0.0.1" {
		t.Errorf("copy X-Forwarded-For = %q, want 127.0.0.1", got)
	}
	if got := s.header.Get("Caddy-Mirror"); got != processMarker {
		t.Errorf("copy Caddy-Mirror = %q, want this process's marker %q", got, processMarker)
	}
	if p.header.Get("Caddy-Mirror") != "" {
		t.Error("the primary's request carries Caddy-Mirror; the marker belongs on the copy only")
	}
	if got := s.header.Get("X-Hop"); got != "" {
		t.Errorf("copy X-Hop = %q; headers named by Connection are hop-by-hop", got)
	}
	if got := metricValue(t, "http://"+shadow.addr()+"/shadow", "mirrored"); got != 1 {
		t.Errorf("/metrics mirrored = %v, want 1", got)
	}
}

func TestE2E_HeaderMatchAndSeveralTargets(t *testing.T) {
	rec := recordOutcomes(t)
	primary := newBackend(t, http.StatusOK, "v1")
	testing_ := newBackend(t, http.StatusOK, "v2-testing")
	all := newBackend(t, http.StatusOK, "audit")
	posts := newBackend(t, http.StatusOK, "posts")
	tester := loadSites(t, fmt.Sprintf(`
http://:0 {
	bind 127.0.0.1
	mirror {
		to http://%s {
			match {
				header_regexp User-Agent .*testing.*
			}
			header_up X-Env shadow
			header_up -Authorization
		}
		to http://%s
		to http://%s {
			match {
				method POST
			}
		}
	}
	reverse_proxy %s
}
`, testing_.addr(), all.addr(), posts.addr(), primary.addr()))

	send := func(method, ua string) {
		req, _ := http.NewRequest(method, frontURL+"/reviews", strings.NewReader("x"))
		req.Header.Set("User-Agent", ua)
		req.Header.Set("Authorization", "Basic dXNlcjpwYXNz")
		if status, body := do(t, tester, req); status != 200 || body != "v1" {
			t.Fatalf("client got %d %q, want 200 v1", status, body)
		}
	}
	send(http.MethodGet, "curl/8")
	send(http.MethodGet, "my-testing-agent")
	send(http.MethodPost, "curl/8")
	got := counts(rec.wait(t, 4))
	if got["mirrored"] != 4 {
		t.Errorf("outcomes = %v, want 4 mirrored", got)
	}
	unloadMirrors(tester)

	c := receive(t, testing_.seen, "the testing copy")
	if c.header.Get("User-Agent") != "my-testing-agent" {
		t.Errorf("testing target got User-Agent %q", c.header.Get("User-Agent"))
	}
	if c.header.Get("X-Env") != "shadow" || c.header.Get("Authorization") != "" {
		t.Errorf("testing copy headers X-Env=%q Authorization=%q, want shadow and none", c.header.Get("X-Env"), c.header.Get("Authorization"))
	}
	testing_.assertNothingSeen(t, "the testing target")
	for range 3 {
		receive(t, all.seen, "a copy to the catch-all target")
	}
	all.assertNothingSeen(t, "the catch-all target")
	if r := receive(t, posts.seen, "the POST copy"); r.method != http.MethodPost {
		t.Errorf("POST target got %s", r.method)
	}
	posts.assertNothingSeen(t, "the POST target")
	for range 3 {
		r := receive(t, primary.seen, "a primary request")
		if r.header.Get("X-Env") != "" || r.header.Get("Authorization") == "" {
			t.Errorf("primary request headers changed: X-Env=%q Authorization=%q", r.header.Get("X-Env"), r.header.Get("Authorization"))
		}
	}
}

func TestE2E_JSONLoadAndPatchPercent(t *testing.T) {
	rec := recordOutcomes(t)
	primary := newBackend(t, http.StatusOK, "v1")
	candidate := newBackend(t, http.StatusOK, "v2")
	sentinel := newBackend(t, http.StatusOK, "sentinel")
	tester := loadConfig(t, fmt.Appendf(nil, `{
	"admin": {"listen": "unix/%s", "config": {"persist": false}},
	"apps": {"http": {"grace_period": 1, "servers": {"front": {
		"listen": ["127.0.0.1:0"],
		"routes": [{"handle": [
			{"handler": "mirror", "targets": [
				{"upstream": "http://%s", "percent": 0},
				{"upstream": "http://%s"}
			], "max_body_size": 1024, "max_in_flight": 16},
			{"handler": "reverse_proxy", "upstreams": [{"dial": "%s"}]}
		]}]
	}}}}
}`, adminSocket, candidate.addr(), sentinel.addr(), primary.addr()), "application/json")

	get := func() {
		req, _ := http.NewRequest(http.MethodGet, frontURL+"/", nil)
		if status, body := do(t, tester, req); status != 200 || body != "v1" {
			t.Fatalf("client got %d %q, want 200 v1", status, body)
		}
	}
	get()
	if o := rec.wait(t, 1)[0]; o.target != "http://"+sentinel.addr() {
		t.Errorf("with percent 0, outcome for %s, want only the sentinel's", o.target)
	}

	path := adminURL + "/config/apps/http/servers/front/routes/0/handle/0/targets/0/percent"
	req, _ := http.NewRequest(http.MethodPatch, path, strings.NewReader("100"))
	req.Header.Set("Content-Type", "application/json")
	resp, err := adminClient.Do(req)
	if err != nil {
		t.Fatalf("PATCH percent: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("PATCH percent: status %d", resp.StatusCode)
	}
	awaitHandover(t)
	candidate.assertNothingSeen(t, "the percent 0 target") // the old config is unloaded

	get()
	got := rec.wait(t, 2)
	targets := map[string]bool{got[0].target: true, got[1].target: true}
	if !targets["http://"+candidate.addr()] || !targets["http://"+sentinel.addr()] {
		t.Errorf("after PATCH percent 100, outcomes for %v, want both targets", targets)
	}
	receive(t, candidate.seen, "a copy after PATCH")

	// the admin API round-trips the config names exactly
	resp, err = adminClient.Get(adminURL + "/config/apps/http/servers/front/routes/0/handle/0")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	cfg, _ := io.ReadAll(resp.Body)
	for _, want := range []string{`"percent":100`, `"max_body_size":1024`, `"max_in_flight":16`, `"upstream":"http://` + candidate.addr() + `"`} {
		if !bytes.Contains(cfg, []byte(want)) {
			t.Errorf("GET config = %s, want it to contain %s", cfg, want)
		}
	}
}

func TestE2E_SkipsAndLimits(t *testing.T) {
	rec := recordOutcomes(t)
	primary := newBackend(t, http.StatusOK, "v1")
	shadow := newBackend(t, http.StatusOK, "shadow")
	tester := loadSites(t, fmt.Sprintf(`
http://:0 {
	bind 127.0.0.1
	mirror http://%s {
		max_body_size 10
		max_stream_size 15
	}
	reverse_proxy %s
}
`, shadow.addr(), primary.addr()))
	target := "http://" + shadow.addr()

	for _, tc := range []struct {
		name   string
		body   string
		header map[string]string
		want   outcome
	}{
		{"body at the limit", "0123456789", nil, mirrored},
		{"body streamed", "0123456789ABCDE", nil, mirrored},
		{"body over max_stream_size", "0123456789ABCDEF", nil, skippedBodyTooLarge},
		{"a copy arriving again", "", map[string]string{"Caddy-Mirror": processMarker}, skippedLoop},
		{"a client's own marker", "", map[string]string{"Caddy-Mirror": "1"}, mirrored},
		{"websocket upgrade", "", map[string]string{"Connection": "Upgrade", "Upgrade": "websocket"}, skippedUnsupported},
	} {
		req, _ := http.NewRequest(http.MethodPost, frontURL+"/", strings.NewReader(tc.body))
		for k, v := range tc.header {
			req.Header.Set(k, v)
		}
		status, _ := do(t, tester, req)
		if tc.want != skippedUnsupported && status != http.StatusOK {
			t.Errorf("%s: client got %d, want 200", tc.name, status)
		}
		if o := rec.wait(t, 1)[0]; o.outcome != tc.want {
			t.Errorf("%s: outcome = %v, want %v", tc.name, o.outcome, tc.want)
		}
		p := receive(t, primary.seen, "the primary's request")
		if p.body != tc.body {
			t.Errorf("%s: primary got body %q, want %q", tc.name, p.body, tc.body)
		}
		if v := tc.header["Caddy-Mirror"]; v != "" && v != processMarker && p.header.Get("Caddy-Mirror") != "" {
			t.Errorf("%s: the primary got the client's Caddy-Mirror %q, want it removed", tc.name, p.header.Get("Caddy-Mirror"))
		}
	}
	for o, want := range map[outcome]float64{mirrored: 3, skippedBodyTooLarge: 1, skippedLoop: 1, skippedUnsupported: 1} {
		if got := metricValue(t, target, o.String()); got != want {
			t.Errorf("/metrics %s = %v, want %v", o, got, want)
		}
	}
	unloadMirrors(tester)
	for _, want := range []string{"0123456789", "0123456789ABCDE", ""} {
		s := receive(t, shadow.seen, "the copy")
		if s.body != want {
			t.Errorf("copy body = %q, want %q", s.body, want)
		}
		if got := s.header.Get("Caddy-Mirror"); got != processMarker {
			t.Errorf("copy Caddy-Mirror = %q, want this process's marker, whatever the client sent", got)
		}
	}
	shadow.assertNothingSeen(t, "the shadow")
}
