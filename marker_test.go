package mirror

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestMarker: a marker of this process makes a request a copy; any other
// Caddy-Mirror is removed before the primary or a shadow sees it; a
// configured marker is recognised while its handler is loaded, and never
// logged.
func TestMarker(t *testing.T) {
	request := func(marker ...string) *http.Request {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		for _, m := range marker {
			r.Header.Add(markerHeader, m)
		}
		return r
	}
	if r := request(processMarker); !screenMarker(r) || r.Header.Get(markerHeader) != processMarker {
		t.Error("the process's marker did not make the request a copy")
	}
	for _, forged := range [][]string{{"1"}, {""}, {"1", processMarker}, {strings.ToLower(processMarker)}} {
		r := request(forged...)
		if screenMarker(r) {
			t.Errorf("Caddy-Mirror %q made a client's request a copy", forged)
		}
		if _, ok := r.Header[markerHeader]; ok {
			t.Errorf("Caddy-Mirror %q was left on the request", forged)
		}
	}
	if r := request(); screenMarker(r) {
		t.Error("a request without a marker is a copy")
	}

	t.Setenv("MIRROR_TEST_MARKER", "fleet-marker-77")
	h := provisionHandler(t, `{"targets":[{"upstream":"http://shadow"}],"marker":"{env.MIRROR_TEST_MARKER}"}`)
	if !screenMarker(request("fleet-marker-77")) {
		t.Error("the configured marker is not recognised while its handler is loaded")
	}
	r := withCaddyContext(httptest.NewRecorder(), request())
	cp := h.Targets[0].newCopy(r, h.Targets[0].onlyReplica(t))
	if got := cp.Header.Get(markerHeader); got != "fleet-marker-77" {
		t.Errorf("copy's marker = %q, want the configured one", got)
	}
	if shown := h.Targets[0].withoutInjectedHeaders(cp.Header); shown.Get(markerHeader) != "" {
		t.Error("the marker would be logged")
	}
	_ = h.Cleanup()
	if screenMarker(request("fleet-marker-77")) {
		t.Error("the configured marker is still recognised after its handler was cleaned up")
	}
	if !screenMarker(request(processMarker)) {
		t.Error("the process's marker is forgotten after a handler was cleaned up")
	}
}

func TestMarkerErrors(t *testing.T) {
	t.Setenv("MIRROR_TEST_EMPTY", "")
	for cfg, want := range map[string]string{
		`{"targets":[{"upstream":"http://s"}],"marker":"{env.MIRROR_TEST_EMPTY}"}`:   "empty once its placeholders are expanded",
		`{"targets":[{"upstream":"http://s"}],"marker":"{http.request.host}"}`:       "only placeholders known at load time",
		"{\"targets\":[{\"upstream\":\"http://s\"}],\"marker\":\"bad\\u0000value\"}": "not a valid header value",
	} {
		if _, err := loadHandler(t, cfg); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: error %v, want one containing %q", cfg, err, want)
		}
	}
}
