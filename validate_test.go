package mirror

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp/reverseproxy"

	"github.com/caddy-mirror/mirror/compare"
)

// loadHandler decodes, provisions and validates cfg as Caddy does when it
// loads a config, returning the first error.
func loadHandler(t *testing.T, cfg string) (*Handler, error) {
	t.Helper()
	h := new(Handler)
	if err := json.Unmarshal([]byte(cfg), h); err != nil {
		return nil, err
	}
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	t.Cleanup(cancel)
	t.Cleanup(func() { _ = h.Cleanup() })
	if err := h.Provision(ctx); err != nil {
		return h, err
	}
	return h, h.Validate()
}

// invalidConfigs is every invalid value of the handler's JSON config, with
// the part of the error that names its field.
var invalidConfigs = []struct {
	name    string
	cfg     string
	wantErr string
}{
	{"no targets", `{}`, "targets: at least one target is required"},
	{"empty targets", `{"targets":[]}`, "targets: at least one target is required"},
	{"null target", `{"targets":[null]}`, "targets[0]"},
	{"upstream missing", `{"targets":[{"percent":5}]}`, "targets[0]: upstream is required"},
	{"upstream scheme", `{"targets":[{"upstream":"ftp://x"}]}`, "upstream \"ftp://x\": scheme must be http, https or h2c"},
	{"upstream and upstreams", `{"targets":[{"upstream":"a:1","upstreams":["b:1"]}]}`, "upstream and upstreams are both set"},
	{"upstreams of two schemes", `{"targets":[{"upstreams":["http://a","https://b"]}]}`, "the same scheme and path prefix"},
	{"unknown lb policy", `{"targets":[{"upstreams":["a:1","b:1"],"selection_policy":{"policy":"fastest"}}]}`, "lb_policy"},
	{"upstream without host", `{"targets":[{"upstream":"http:///path"}]}`, "a host is required"},
	{"upstream with query", `{"targets":[{"upstream":"http://x/?a=1"}]}`, "a query is not allowed"},
	{"upstream with fragment", `{"targets":[{"upstream":"http://x/#frag"}]}`, "a fragment is not allowed"},
	{"upstream with user info", `{"targets":[{"upstream":"http://u:p@x"}]}`, "user info is not allowed"},
	{"upstream with request placeholder", `{"targets":[{"upstream":"http://{http.request.host}"}]}`, "upstream"},
	{"second target bad", `{"targets":[{"upstream":"http://a"},{"upstream":"gopher://b"}]}`, "targets[1]: upstream"},
	{"percent over 100", `{"targets":[{"upstream":"http://a","percent":100.5}]}`, "targets[0]: percent must be between 0 and 100, got 100.5"},
	{"percent negative", `{"targets":[{"upstream":"http://a","percent":-1}]}`, "percent must be between 0 and 100, got -1"},
	{"max_rate negative", `{"targets":[{"upstream":"http://a","max_rate":-1}]}`, "max_rate must not be negative, got -1"},
	{"timeout negative", `{"targets":[{"upstream":"http://a","timeout":"-1s"}]}`, "timeout must not be negative"},
	{"max_body_size negative", `{"targets":[{"upstream":"http://a"}],"max_body_size":-1}`, "max_body_size must not be negative, got -1"},
	{"max_in_flight negative", `{"targets":[{"upstream":"http://a"}],"max_in_flight":-1}`, "max_in_flight must not be negative, got -1"},
	{"large_bodies unknown", `{"targets":[{"upstream":"http://a"}],"large_bodies":"buffer"}`, `large_bodies must be "stream" or "skip", got "buffer"`},
	{"stream_window too small", `{"targets":[{"upstream":"http://a"}],"stream_window":100}`, "stream_window must be between 4KiB (4096) and 1GiB (1073741824), got 100"},
	{"stream_window negative", `{"targets":[{"upstream":"http://a"}],"stream_window":-1}`, "stream_window must be between"},
	{"max_stream_size negative", `{"targets":[{"upstream":"http://a"}],"max_stream_size":-1}`, "max_stream_size must not be negative, got -1"},
	{"unknown matcher", `{"targets":[{"upstream":"http://a","match":[{"colour":"blue"}]}]}`, "loading matchers"},
	{"unknown transport", `{"targets":[{"upstream":"http://a","transport":{"protocol":"pigeon"}}]}`, "loading transport"},
	{"transport without protocol", `{"targets":[{"upstream":"http://a","transport":{}}]}`, "loading transport"},
	{"bad header regexp", `{"targets":[{"upstream":"http://a","headers":{"replace":{"X":[{"search_regexp":"(","replace":""}]}}}]}`, "provisioning headers"},
	{"max_fails", `{"targets":[{"upstream":"http://a","max_fails":-2}]}`, "targets[0]: max_fails must be -1 (never unhealthy) or more, got -2"},
	{"fail_duration", `{"targets":[{"upstream":"http://a","fail_duration":"-1s"}]}`, "targets[0]: fail_duration must not be negative"},
	{"unhealthy_status", `{"targets":[{"upstream":"http://a","unhealthy_status":[42]}]}`, "targets[0]: unhealthy_status must hold status codes (100 to 599) or classes (1 to 5), got 42"},
	{"passive health checks", `{"targets":[{"upstream":"http://a","health_checks":{"passive":{"max_fails":2}}}]}`, "targets[0]: health_checks.passive: the mirror's passive checks are max_fails"},
	{"unhealthy_latency", `{"targets":[{"upstream":"http://a","unhealthy_latency":"-1s"}]}`, "targets[0]: unhealthy_latency must not be negative"},
	{"concurrency floor negative", `{"targets":[{"upstream":"http://a","concurrency":{"floor":-1}}]}`, "targets[0]: concurrency.floor must be at least 1, got -1"},
	{"concurrency ceiling negative", `{"targets":[{"upstream":"http://a","concurrency":{"ceiling":-1}}]}`, "targets[0]: concurrency.ceiling must be at least 1, got -1"},
	{"concurrency ceiling over max_in_flight", `{"targets":[{"upstream":"http://a","concurrency":{"ceiling":65}}],"max_in_flight":64}`, "targets[0]: concurrency.ceiling must not exceed max_in_flight (64), got 65"},
	{"concurrency floor over ceiling", `{"targets":[{"upstream":"http://a"},{"upstream":"http://b","concurrency":{"floor":9,"ceiling":8}}]}`, "targets[1]: concurrency.floor (9) must not exceed concurrency.ceiling (8)"},
	{"duplicate names", `{"targets":[{"name":"x","upstream":"http://a"},{"name":"x","upstream":"http://b"}]}`, "targets[1]: name \"x\" is already used"},
	{"name equal to another's upstream", `{"targets":[{"upstream":"http://a"},{"name":"http://a","upstream":"http://b"}]}`, "targets[1]: name \"http://a\" is already used"},
	{"noise_from unknown", `{"targets":[{"upstream":"http://a","compare":{"noise_from":"nobody"}}]}`, "targets[0]: compare.noise_from: no target is named \"nobody\""},
	{"noise_from itself", `{"targets":[{"name":"c","upstream":"http://a","compare":{"noise_from":"c"}}]}`, "targets[0]: compare.noise_from: a target cannot be its own noise source"},
	{"compare body", `{"targets":[{"upstream":"http://a","compare":{"body":"xml"}}]}`, "targets[0]: compare.body must be auto, json, bytes or off, got \"xml\""},
	{"compare max_body_size", `{"targets":[{"upstream":"http://a","compare":{"max_body_size":-1}}]}`, "compare.max_body_size must not be negative, got -1"},
	{"compare threshold", `{"targets":[{"upstream":"http://a","compare":{"threshold":-0.5}}]}`, "compare.threshold must be between 0 and 100, got -0.5"},
	{"compare samples", `{"targets":[{"upstream":"http://a","compare":{"samples":-2}}]}`, "compare.samples must not be negative, got -2"},
	{"compare ignore", `{"targets":[{"upstream":"http://a","compare":{"ignore":["/ok","meta/id"]}}]}`, "compare.ignore[1]: \"meta/id\" is not a JSON pointer"},
	{"compare headers", `{"targets":[{"upstream":"http://a","compare":{"headers":["Content Type"]}}]}`, "compare.headers[0]: \"Content Type\" is not a header field name"},
	{"compare status type", `{"targets":[{"upstream":"http://a","compare":{"status":"yes"}}]}`, "status"},
}

func TestValidate_Error(t *testing.T) {
	for _, tc := range invalidConfigs {
		t.Run(tc.name, func(t *testing.T) {
			_, err := loadHandler(t, tc.cfg)
			if err == nil {
				t.Fatalf("load(%s) = nil error, want one containing %q", tc.cfg, tc.wantErr)
			}
			if !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("load(%s) error = %q, want it to contain %q", tc.cfg, err, tc.wantErr)
			}
		})
	}
}

func TestProvisionDefaults(t *testing.T) {
	t.Setenv("MIRROR_TEST_SHADOW", "shadow.internal:9080")
	h, err := loadHandler(t, `{"targets":[{"upstream":"https://{env.MIRROR_TEST_SHADOW}/v2/"}]}`)
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	if h.MaxBodySize != 1<<20 {
		t.Errorf("MaxBodySize = %d, want 1 MiB", h.MaxBodySize)
	}
	if h.MaxInFlight != 1024 {
		t.Errorf("MaxInFlight = %d, want 1024", h.MaxInFlight)
	}
	tg := h.Targets[0]
	if got := tg.onlyReplica(t).url.String(); got != "https://shadow.internal:9080" {
		t.Errorf("upstream URL = %s, want https://shadow.internal:9080", got)
	}
	if tg.pathPrefix != "/v2" {
		t.Errorf("path prefix = %q, want /v2", tg.pathPrefix)
	}
	if tg.timeout.String() != "10s" {
		t.Errorf("timeout = %v, want 10s", tg.timeout)
	}
	if !tg.sampler.all {
		t.Error("a target without percent should copy every candidate")
	}
	// the defaults reach the transport that sends the copies
	rt := tg.Transport.(*reverseproxy.HTTPTransport).Transport
	if rt.MaxIdleConnsPerHost != 1024 || !rt.DisableCompression || rt.TLSClientConfig == nil {
		t.Errorf("loaded transport: %d idle conns per host, compression disabled %v, TLS config %v; want 1024, true, set",
			rt.MaxIdleConnsPerHost, rt.DisableCompression, rt.TLSClientConfig != nil)
	}
}

func TestTLSTransportUpgradesHTTPUpstream(t *testing.T) {
	h, err := loadHandler(t, `{"targets":[{"upstream":"http://reviews-v2:9080","transport":{"protocol":"http","tls":{}}}]}`)
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	if got := h.Targets[0].onlyReplica(t).url.Scheme; got != "https" {
		t.Errorf("scheme with a TLS transport = %s, want https", got)
	}
}

func TestTransportWithDefaults(t *testing.T) {
	for _, tc := range []struct {
		name    string
		raw     string
		https   bool
		want    string
		timeout time.Duration // the target's; 10s when zero
	}{
		{"default http", ``, false,
			`{"protocol":"http","compression":false,"dial_timeout":"3s","max_response_header_size":65536,"keep_alive":{"idle_timeout":"1s","max_idle_conns_per_host":256}}`, 0},
		{"default https gets tls and a handshake timeout", ``, true,
			`{"protocol":"http","tls":{"handshake_timeout":"5s"},"compression":false,"dial_timeout":"3s","max_response_header_size":65536,"keep_alive":{"idle_timeout":"1s","max_idle_conns_per_host":256}}`, 0},
		{"user settings are kept", `{"protocol":"http","compression":true,"dial_timeout":"1s","max_response_header_size":1024,"tls":{"handshake_timeout":"20s"},"keep_alive":{"max_idle_conns_per_host":8,"idle_timeout":"1m"}}`, false,
			`{"protocol":"http","compression":true,"dial_timeout":"1s","max_response_header_size":1024,"tls":{"handshake_timeout":"20s"},"keep_alive":{"max_idle_conns_per_host":8,"idle_timeout":"1m"}}`, 0},
		{"other keep_alive and tls settings are kept", `{"protocol":"http","keep_alive":{"idle_timeout":"1m"},"tls":{"insecure_skip_verify":true}}`, false,
			`{"protocol":"http","compression":false,"dial_timeout":"3s","max_response_header_size":65536,"tls":{"insecure_skip_verify":true,"handshake_timeout":"5s"},"keep_alive":{"idle_timeout":"1m","max_idle_conns_per_host":256}}`, 0},
		{"other transports untouched", `{"protocol":"fastcgi","root":"/srv"}`, false,
			`{"protocol":"fastcgi","root":"/srv"}`, 0},
		{"a short timeout shortens the dial and the handshake", `{"protocol":"http","tls":{}}`, false,
			`{"protocol":"http","compression":false,"dial_timeout":"1.5s","max_response_header_size":65536,"tls":{"handshake_timeout":"1.5s"},"keep_alive":{"idle_timeout":"1s","max_idle_conns_per_host":256}}`, 1500 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var raw json.RawMessage
			if tc.raw != "" {
				raw = json.RawMessage(tc.raw)
			}
			timeout := cmp.Or(tc.timeout, 10*time.Second)
			scheme := "http"
			if tc.https {
				scheme = "https"
			}
			got, err := transportWithDefaults(raw, scheme, 256, timeout)
			if err != nil {
				t.Fatalf("transportWithDefaults(%s) error: %v", tc.raw, err)
			}
			if g, w := normalizeJSON(t, string(got)), normalizeJSON(t, tc.want); g != w {
				t.Errorf("transportWithDefaults(%s) = %s, want %s", tc.raw, g, w)
			}
		})
	}
}

// TestValidate_NonFinite sets NaN and the infinities on every float field,
// as a Go caller or a module that builds the config could (JSON cannot
// carry them), and expects Validate to name the field.
func TestValidate_NonFinite(t *testing.T) {
	for _, v := range []float64{math.NaN(), math.Inf(1), math.Inf(-1)} {
		for _, tc := range []struct {
			field string
			set   func(*Target)
		}{
			{"percent", func(tg *Target) { tg.Percent = &v }},
			{"max_rate", func(tg *Target) { tg.MaxRate = v }},
			{"compare.threshold", func(tg *Target) { tg.Compare = &compare.Config{Threshold: &v} }},
		} {
			t.Run(fmt.Sprintf("%s %v", tc.field, v), func(t *testing.T) {
				tg := &Target{Upstream: "http://a"}
				tc.set(tg)
				err := tg.validate()
				if err == nil {
					t.Fatalf("validate() with %s = %v: nil error", tc.field, v)
				}
				if !strings.HasPrefix(err.Error(), tc.field+" must") {
					t.Errorf("validate() with %s = %v: error %q does not name the field", tc.field, v, err)
				}
			})
		}
	}
}

// TestUpstreamFromAnUnsetVariable: an upstream whose {env.*} expands to
// nothing says so, rather than only that its scheme is wrong.
func TestUpstreamFromAnUnsetVariable(t *testing.T) {
	t.Setenv("MIRROR_TEST_UNSET", "")
	_, err := loadHandler(t, `{"targets":[{"upstream":"{env.MIRROR_TEST_UNSET}"}]}`)
	if err == nil || !strings.Contains(err.Error(), `expanded to "" (is the environment variable set?)`) {
		t.Errorf("error %v, want one saying the variable expanded to nothing", err)
	}
	_, err = loadHandler(t, `{"targets":[{"upstream":"http://shadow","sample_by":"user"}]}`)
	if err == nil || !strings.Contains(err.Error(), `sample_by "user" is not a placeholder`) {
		t.Errorf("sample_by user: error %v, want one saying it is not a placeholder", err)
	}
}
