package mirror

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
)

// TestE2E_TwoHopLoop runs a front that mirrors to a shadow whose own Caddy
// mirrors back to the front: the marker stops the loop at the second hop.
func TestE2E_TwoHopLoop(t *testing.T) {
	rec := recordOutcomes(t)
	primary := newBackend(t, http.StatusOK, "v1")
	// the two sites first, so that each knows the other's port
	loadSites(t, "http://:0 {\n\tbind 127.0.0.1\n\trespond front\n}\nhttp://:0 {\n\tbind 127.0.0.2\n\trespond shadow\n}\n")
	frontAddr, shadowAddr := siteURL(t, "127.0.0.1"), siteURL(t, "127.0.0.2")
	tester := loadSites(t, fmt.Sprintf(`
http://:0 {
	bind 127.0.0.1
	mirror %s
	reverse_proxy %s
}
http://:0 {
	bind 127.0.0.2
	mirror %s
	respond "shadow"
}
`, shadowAddr, primary.addr(), frontAddr))
	if siteURL(t, "127.0.0.1") != frontAddr || siteURL(t, "127.0.0.2") != shadowAddr {
		t.Fatal("the sites changed ports on reload")
	}

	req, _ := http.NewRequest(http.MethodGet, frontURL+"/loop", nil)
	if status, body := do(t, tester, req); status != 200 || body != "v1" {
		t.Fatalf("client got %d %q, want 200 v1", status, body)
	}
	got := map[string]outcome{}
	for _, o := range rec.wait(t, 2) {
		got[o.target] = o.outcome
	}
	if got[shadowAddr] != mirrored || got[frontAddr] != skippedLoop {
		t.Errorf("outcomes = %v, want the front's copy mirrored and the shadow's copy back skipped_loop", got)
	}
	unloadMirrors(tester)
	receive(t, primary.seen, "the primary's request")
	primary.assertNothingSeen(t, "the primary (a looped copy reached it)")
}

// TestE2E_RejectedConfigKeepsServing loads a bad config over a good one:
// the error names the field, and the good config keeps mirroring.
func TestE2E_RejectedConfigKeepsServing(t *testing.T) {
	rec := recordOutcomes(t)
	primary := newBackend(t, http.StatusOK, "v1")
	shadow := newBackend(t, http.StatusOK, "shadow")
	good := fmt.Sprintf(`http://:0 {
	bind 127.0.0.1
	mirror http://%s {
		percent 100
	}
	reverse_proxy %s
}
`, shadow.addr(), primary.addr())
	tester := loadSites(t, good)

	for _, tc := range []struct{ bad, wantErr string }{
		{`{"percent": 150}`, "percent must be between 0 and 100, got 150"},
		{`{"max_rate": -1}`, "max_rate must not be negative"},
		{`{"upstream": "ftp://nope"}`, "scheme must be http, https or h2c"},
		{`{"transport": {"protocol": "pigeon"}}`, "loading transport"},
	} {
		path := adminURL + "/config/apps/http/servers/srv0/routes/0/handle/0/targets/0"
		cur, err := adminClient.Get(path)
		if err != nil {
			t.Fatal(err)
		}
		target, _ := io.ReadAll(cur.Body)
		cur.Body.Close()
		patched := strings.TrimSuffix(strings.TrimSpace(string(target)), "}") + "," + strings.TrimPrefix(tc.bad, "{")
		req, _ := http.NewRequest(http.MethodPatch, path, strings.NewReader(patched))
		req.Header.Set("Content-Type", "application/json")
		resp, err := adminClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		msg, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK || !strings.Contains(string(msg), tc.wantErr) {
			t.Errorf("PATCH %s: status %d, body %s; want a rejection containing %q", tc.bad, resp.StatusCode, msg, tc.wantErr)
		}

		get, _ := http.NewRequest(http.MethodGet, frontURL+"/still", nil)
		if status, body := do(t, tester, get); status != 200 || body != "v1" {
			t.Fatalf("after a rejected load, client got %d %q, want 200 v1", status, body)
		}
		if o := rec.wait(t, 1)[0]; o.outcome != mirrored {
			t.Errorf("after a rejected load, outcome = %v, want mirrored by the previous config", o.outcome)
		}
	}
}

// TestE2E_EveryInvalidConfigIsRejected loads each invalid mirror config
// through POST /load over a good one: each is refused with an error that
// names its field, and the good config keeps serving and mirroring.
func TestE2E_EveryInvalidConfigIsRejected(t *testing.T) {
	rec := recordOutcomes(t)
	primary := newBackend(t, http.StatusOK, "v1")
	shadow := newBackend(t, http.StatusOK, "shadow")
	tester := loadSites(t, fmt.Sprintf("http://:0 {\n\tbind 127.0.0.1\n\tmirror http://%s\n\treverse_proxy %s\n}\n", shadow.addr(), primary.addr()))
	defer unloadMirrors(tester)
	proxy := map[string]any{"handler": "reverse_proxy", "upstreams": []any{map[string]any{"dial": primary.addr()}}}

	for _, tc := range invalidConfigs {
		var handler map[string]any
		if err := json.Unmarshal([]byte(tc.cfg), &handler); err != nil {
			t.Fatal(err)
		}
		handler["handler"] = "mirror"
		req, _ := http.NewRequest(http.MethodPost, adminURL+"/load", bytes.NewReader(reloadConfig(handler, proxy)))
		req.Header.Set("Content-Type", "application/json")
		resp, err := adminClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var msg struct{ Error string }
		_ = json.NewDecoder(resp.Body).Decode(&msg)
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK || !strings.Contains(msg.Error, tc.wantErr) {
			t.Errorf("%s: POST /load answered %d %q; want a rejection containing %q", tc.name, resp.StatusCode, msg.Error, tc.wantErr)
		}

		get, _ := http.NewRequest(http.MethodGet, frontURL+"/still", nil)
		if status, body := do(t, tester, get); status != 200 || body != "v1" {
			t.Fatalf("%s: after the rejected load, client got %d %q, want 200 v1", tc.name, status, body)
		}
		if o := rec.wait(t, 1)[0]; o.outcome != mirrored {
			t.Errorf("%s: after the rejected load, outcome = %v, want mirrored by the previous config", tc.name, o.outcome)
		}
	}
}
