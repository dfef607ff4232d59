package mirror

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// seenWithTrailers is a request as a backend saw it, trailers included.
type seenWithTrailers struct {
	header, trailer http.Header
	body            string
}

// trailerBackend reports every request it receives, with its trailers.
func trailerBackend(t *testing.T) (*httptest.Server, chan seenWithTrailers) {
	seen := make(chan seenWithTrailers, 16)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body) // trailers arrive with the body's end
		seen <- seenWithTrailers{r.Header.Clone(), r.Trailer.Clone(), string(body)}
		_, _ = io.WriteString(w, "ok")
	}))
	t.Cleanup(srv.Close)
	return srv, seen
}

// TestE2E_CopyCarriesWhatReverseProxyAdds: the copy keeps TE: trailers,
// carries the request's trailers, and gets the Via header that
// reverse_proxy adds, so that the shadow sees what the primary sees.
func TestE2E_CopyCarriesWhatReverseProxyAdds(t *testing.T) {
	primary, primarySeen := trailerBackend(t)
	shadow, shadowSeen := trailerBackend(t)
	rec := recordOutcomes(t)
	tester := loadSites(t, fmt.Sprintf(`
http://:0 {
	bind 127.0.0.1
	mirror %s
	reverse_proxy %s
}
`, shadow.URL, strings.TrimPrefix(primary.URL, "http://")))

	const body = "a body of unknown length, sent chunked"
	req := mustRequest(t, http.MethodPost, frontURL+"/upload")
	req.Body = io.NopCloser(strings.NewReader(body))
	req.ContentLength = -1
	req.Header.Set("TE", "trailers, deflate")
	req.Header.Set("Via", "1.1 edge")
	req.Trailer = http.Header{"X-Checksum": {"sha256=abc"}}
	if status, got := do(t, tester, req); status != http.StatusOK || got != "ok" {
		t.Fatalf("client got %d %q", status, got)
	}
	p := receive(t, primarySeen, "the primary's request")
	s := receive(t, shadowSeen, "the copy")
	if o := rec.wait(t, 1)[0]; o.outcome != mirrored {
		t.Errorf("outcome = %v, want mirrored", o.outcome)
	}
	if s.body != body || p.body != body {
		t.Errorf("bodies: copy %q, primary %q, want %q", s.body, p.body, body)
	}
	for _, name := range []string{"Te", "Via", "X-Forwarded-For", "X-Forwarded-Proto", "X-Forwarded-Host"} {
		if sv, pv := s.header.Values(name), p.header.Values(name); strings.Join(sv, "|") != strings.Join(pv, "|") || len(pv) == 0 {
			t.Errorf("copy %s = %q, want %q as the primary got", name, sv, pv)
		}
	}
	if got := s.header.Get("Te"); got != "trailers" {
		t.Errorf("copy TE = %q, want trailers", got)
	}
	if got, want := s.trailer.Get("X-Checksum"), p.trailer.Get("X-Checksum"); got != "sha256=abc" || got != want {
		t.Errorf("copy trailer X-Checksum = %q, want %q as the primary got", got, want)
	}
}
