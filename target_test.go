package mirror

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

func TestCopyURL(t *testing.T) {
	for _, tc := range []struct {
		upstream, request, want string
	}{
		{"http://s", "/a?q=1", "http://s:80/a?q=1"},
		{"s:9001", "/a", "http://s:9001/a"},
		{"http://s/shadow", "/a?q=1", "http://s:80/shadow/a?q=1"},
		{"http://s/shadow/", "/a", "http://s:80/shadow/a"},
		{"https://s:8443/v2", "/", "https://s:8443/v2/"},
		{"h2c://s:9002", "/a", "http://s:9002/a"},
		{"http://s/shadow", "/a%2Fb%20c?x=%41+b&x=2", "http://s:80/shadow/a%2Fb%20c?x=%41+b&x=2"},
		{"http://s/sp%20ace", "/a", "http://s:80/sp%20ace/a"},
		{"http://s", "/a?", "http://s:80/a?"},
		{"http://s", "/caf%C3%A9", "http://s:80/caf%C3%A9"},
	} {
		h := provisionHandler(t, `{"targets":[{"upstream":"`+tc.upstream+`"}]}`)
		tg := h.Targets[0]
		src, err := url.ParseRequestURI(tc.request)
		if err != nil {
			t.Fatal(err)
		}
		if got := tg.copyURL(src, tg.onlyReplica(t)).String(); got != tc.want {
			t.Errorf("copyURL(%s, %s) = %s, want %s", tc.upstream, tc.request, got, tc.want)
		}
	}
}

func TestForwardedHeaders(t *testing.T) {
	for _, tc := range []struct {
		name      string
		trusted   bool
		remote    string
		prior     map[string]string
		wantFor   string
		wantProto string
		wantHost  string
	}{
		{"untrusted client", false, "203.0.113.9:5555", map[string]string{"X-Forwarded-For": "1.2.3.4", "X-Forwarded-Proto": "https", "X-Forwarded-Host": "evil"}, "203.0.113.9", "http", "front.example"},
		{"trusted proxy", true, "10.0.0.2:5555", map[string]string{"X-Forwarded-For": "1.2.3.4", "X-Forwarded-Proto": "https", "X-Forwarded-Host": "orig.example"}, "1.2.3.4, 10.0.0.2", "https", "orig.example"},
		{"ipv6 zone", false, "[fe80::1%eth0]:5555", nil, "fe80::1", "http", "front.example"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodGet, "http://front.example/", nil)
			r.RemoteAddr = tc.remote
			for k, v := range tc.prior {
				r.Header.Set(k, v)
			}
			r = withCaddyContext(httptest.NewRecorder(), r)
			caddyhttp.SetVar(r.Context(), caddyhttp.TrustedProxyVarKey, tc.trusted)
			hdr := r.Header.Clone()
			setForwardedHeaders(hdr, r)
			if got := hdr.Get("X-Forwarded-For"); got != tc.wantFor {
				t.Errorf("X-Forwarded-For = %q, want %q", got, tc.wantFor)
			}
			if got := hdr.Get("X-Forwarded-Proto"); got != tc.wantProto {
				t.Errorf("X-Forwarded-Proto = %q, want %q", got, tc.wantProto)
			}
			if got := hdr.Get("X-Forwarded-Host"); got != tc.wantHost {
				t.Errorf("X-Forwarded-Host = %q, want %q", got, tc.wantHost)
			}
		})
	}
}

func TestNewCopyLeavesTheRequestAlone(t *testing.T) {
	h := provisionHandler(t, `{"targets":[{"upstream":"http://shadow:9080","headers":{
		"set":{"Host":["shadow.internal"],"X-Env":["shadow {http.request.method}"]},
		"delete":["Authorization","Caddy-Mirror"]}}]}`)
	r := httptest.NewRequest(http.MethodPatch, "http://front.example/x", nil)
	r.Header.Set("Authorization", "Bearer t")
	r.Header.Set("Connection", "close")
	r = withCaddyContext(httptest.NewRecorder(), r)
	before := r.Header.Clone()

	cp := h.Targets[0].newCopy(r, h.Targets[0].onlyReplica(t))
	if cp.Host != "shadow.internal" {
		t.Errorf("copy Host = %q, want shadow.internal from headers", cp.Host)
	}
	if got := cp.Header.Get("X-Env"); got != "shadow PATCH" {
		t.Errorf("copy X-Env = %q, want the placeholder resolved on the request path", got)
	}
	if cp.Header.Get("Authorization") != "" || cp.Header.Get("Connection") != "" {
		t.Errorf("copy kept Authorization %q or Connection %q", cp.Header.Get("Authorization"), cp.Header.Get("Connection"))
	}
	if got := cp.Header.Get("Caddy-Mirror"); got != processMarker {
		t.Errorf("copy Caddy-Mirror = %q: header edits removed or changed the loop marker", got)
	}
	if r.Host != "front.example" || r.Header.Get("Authorization") != "Bearer t" || len(r.Header) != len(before) {
		t.Errorf("the original request changed: Host %q, headers %v, was %v", r.Host, r.Header, before)
	}
}

func TestUnsupported(t *testing.T) {
	for _, tc := range []struct {
		name   string
		method string
		header map[string]string
		want   outcome
		skip   bool
	}{
		{"plain GET", http.MethodGet, nil, 0, false},
		{"loop marker", http.MethodGet, map[string]string{"Caddy-Mirror": processMarker}, skippedLoop, true},
		{"websocket", http.MethodGet, map[string]string{"Connection": "Upgrade", "Upgrade": "websocket"}, skippedUnsupported, true},
		{"h2c upgrade", http.MethodGet, map[string]string{"Upgrade": "h2c"}, skippedUnsupported, true},
		{"CONNECT", http.MethodConnect, nil, skippedUnsupported, true},
	} {
		r := httptest.NewRequest(tc.method, "/", nil)
		for k, v := range tc.header {
			r.Header.Set(k, v)
		}
		got, skip := unsupported(r)
		if skip != tc.skip || (skip && got != tc.want) {
			t.Errorf("unsupported(%s) = %v, %v, want %v, %v", tc.name, got, skip, tc.want, tc.skip)
		}
	}
}

// TestCodeLabel: a shadow cycling through made-up statuses makes at most
// the registered codes, five classes and "other" as code label values.
func TestCodeLabel(t *testing.T) {
	seen := map[string]bool{}
	for status := range 1000 {
		seen[codeLabel(status)] = true
	}
	if len(seen) > 70 {
		t.Errorf("%d code label values for statuses 0 to 999, want at most 70", len(seen))
	}
	for status, want := range map[int]string{200: "200", 503: "503", 299: "2xx", 599: "5xx", 777: "other", 0: "other", 99: "other"} {
		if got := codeLabel(status); got != want {
			t.Errorf("codeLabel(%d) = %q, want %q", status, got, want)
		}
	}
}
