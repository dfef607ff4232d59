package mirror

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

// TestPathPrefixCannotBeEscaped: with upstream http://shadow/shadow-v2, no
// request path makes a copy leave the prefix. Plain dot segments are
// resolved within it; hidden ones make the copy skipped_unsafe_path.
func TestPathPrefixCannotBeEscaped(t *testing.T) {
	h := provisionHandler(t, `{"targets":[{"upstream":"http://shadow/shadow-v2"},{"upstream":"http://other"}]}`)
	prefixed, bare := h.Targets[0], h.Targets[1]
	for _, tc := range []struct {
		path   string // as the client sent it
		want   string // the copy's, under the prefix; "" when refused
		refuse bool
	}{
		{path: "/a/b?q=1", want: "/shadow-v2/a/b?q=1"},
		{path: "/a/../../admin", want: "/shadow-v2/admin"},
		{path: "/../admin/delete", want: "/shadow-v2/admin/delete"},
		{path: "/a/./b/..", want: "/shadow-v2/a/"},
		{path: "/a%2Fb%20c", want: "/shadow-v2/a%2Fb%20c"},
		{path: "/v1.2/file.tar.gz", want: "/shadow-v2/v1.2/file.tar.gz"},
		{path: "/%2e%2e/admin", refuse: true},
		{path: "/%2E./admin", refuse: true},
		{path: "/..%2fadmin", refuse: true},
		{path: "/a/..%5Cadmin", refuse: true},
		{path: `/..\admin`, refuse: true},
		{path: "/%2e/x", refuse: true},
	} {
		r := httptest.NewRequest(http.MethodGet, "http://front.example"+tc.path, nil)
		r = withCaddyContext(httptest.NewRecorder(), r)
		_, reason, ok := h.admit(prefixed, r)
		if tc.refuse {
			if ok || reason != skippedUnsafePath {
				t.Errorf("%s: admitted (%v, %v), want skipped_unsafe_path", tc.path, ok, reason)
			}
		} else {
			if !ok {
				t.Errorf("%s: refused (%v), want it copied", tc.path, reason)
				continue
			}
			h.releaseInFlight(prefixed)
			if got := prefixed.newCopy(r, prefixed.onlyReplica(t)).URL.RequestURI(); got != tc.want {
				t.Errorf("%s: copied as %s, want %s", tc.path, got, tc.want)
			}
		}
		// without a prefix, the path is the client's, as the primary gets it
		if _, reason, ok := h.admit(bare, r); !ok {
			t.Errorf("%s: refused for a target without a prefix (%v)", tc.path, reason)
		} else {
			h.releaseInFlight(bare)
			if got, want := bare.newCopy(r, bare.onlyReplica(t)).URL.RequestURI(), r.URL.RequestURI(); got != want {
				t.Errorf("%s: copied without a prefix as %s, want %s", tc.path, got, want)
			}
		}
	}
}
