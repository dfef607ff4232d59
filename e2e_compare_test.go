package mirror

import (
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddy-mirror/mirror/compare"
)

// reviewsService is one version of a service behind the mirror: every
// response carries a random request_id, a timestamp and a session cookie,
// so two runs of the same version never answer alike byte for byte. v2
// renames the field "title" to "name" and fails on /fail.
type reviewsService struct {
	*httptest.Server
	mu   sync.Mutex
	sent map[string]string // response body by X-Req-Id
}

func newReviewsService(t *testing.T, v2 bool) *reviewsService {
	s := &reviewsService{sent: make(map[string]string)}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if v2 && r.URL.Path == "/fail" {
			http.Error(w, "boom", http.StatusInternalServerError)
			return
		}
		doc := map[string]any{
			"meta":  map[string]any{"request_id": rand.Text(), "timestamp": time.Now().Format(time.RFC3339Nano)},
			"path":  r.URL.Path,
			"items": []any{map[string]any{"id": 1, "stars": 5}, map[string]any{"id": 2, "stars": 4.0}},
		}
		if r.URL.Path != "/health" {
			key := "title"
			if v2 {
				key = "name"
			}
			doc[key] = "Reviews"
		}
		body, _ := json.Marshal(doc)
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Set-Cookie", "session="+rand.Text())
		_, _ = w.Write(body)
		s.mu.Lock()
		s.sent[r.Header.Get("X-Req-Id")] = string(body)
		s.mu.Unlock()
	}))
	t.Cleanup(s.Close)
	return s
}

// getReport fetches GET /mirror/report from the admin endpoint.
func getReport(t *testing.T) (compare.Report, string) {
	t.Helper()
	_, raw := getPage(t, http.MethodGet, "/mirror/report")
	var r compare.Report
	if err := json.Unmarshal([]byte(raw), &r); err != nil {
		t.Fatalf("GET /mirror/report: %v: %s", err, raw)
	}
	return r, raw
}

// resetReport empties the report with DELETE /mirror/report.
func resetReport(t *testing.T) {
	t.Helper()
	if status, body := getPage(t, http.MethodDelete, "/mirror/report"); status != http.StatusNoContent {
		t.Fatalf("DELETE /mirror/report: %d %s", status, body)
	}
}

// startDiffy starts the primary (v1), the secondary (v1) and the candidate
// (v2), loads the Diffy-style setup in front of them, followed by
// extraSites, empties the report, and returns the primary, a recorder of
// the copies' outcomes and the tester.
func startDiffy(t *testing.T, extraSites string) (*reviewsService, outcomeRecorder, *caddyTester) {
	t.Helper()
	primary, secondary, candidate := newReviewsService(t, false), newReviewsService(t, false), newReviewsService(t, true)
	rec := recordOutcomes(t)
	tester := loadSites(t, fmt.Sprintf(diffyCaddyfile, secondary.URL, candidate.URL, strings.TrimPrefix(primary.URL, "http://"))+extraSites)
	t.Cleanup(func() { unloadMirrors(tester) })
	resetReport(t)
	return primary, rec, tester
}

// diffyCaddyfile is the Diffy-style setup of the README: the primary v1
// behind reverse_proxy, a second copy of v1, and the candidate v2.
const diffyCaddyfile = `
http://:0 {
	bind 127.0.0.1
	mirror {
		to %s {
			name secondary
			percent 0
		}
		to %s {
			name candidate
			compare {
				noise_from secondary
				headers Content-Type Set-Cookie
			}
		}
	}
	reverse_proxy %s
}
`

func TestE2E_CompareDiffyStyle(t *testing.T) {
	primary, rec, tester := startDiffy(t, "")

	const perPath = 10
	paths := []string{"/reviews/1", "/reviews/2", "/fail", "/health"}
	for i := range perPath * len(paths) {
		id := fmt.Sprint(i)
		req := mustRequest(t, http.MethodGet, frontURL+paths[i%len(paths)]+"?token=query-secret")
		req.Header.Set("X-Req-Id", id)
		req.Header.Set("Authorization", "Bearer auth-secret")
		req.Header.Set("Accept-Encoding", "identity")
		status, body := do(t, tester, req)
		primary.mu.Lock()
		sent := primary.sent[id]
		primary.mu.Unlock()
		if status != http.StatusOK || body != sent {
			t.Fatalf("client got %d %q, want the primary's 200 %q", status, body, sent)
		}
	}
	// the candidate's outcome is counted after its comparison
	if got := counts(rec.wait(t, 2*perPath*len(paths))); got["mirrored"] != 2*perPath*len(paths) {
		t.Fatalf("outcomes %v: want every request copied to both the candidate and the secondary (percent 0)", got)
	}

	r, raw := getReport(t)
	if len(r.Targets) != 1 || r.Targets[0].Name != "candidate" {
		t.Fatalf("report targets %+v, want only the candidate", r.Targets)
	}
	c := r.Targets[0]
	var regressions, noise []string
	for _, f := range c.Fields {
		switch f.Verdict {
		case compare.VerdictRegression:
			regressions = append(regressions, f.Field)
		case compare.VerdictNoise:
			noise = append(noise, f.Field)
		}
	}
	slices.Sort(regressions)
	slices.Sort(noise)
	if want := []string{"/name", "/title", "status"}; !slices.Equal(regressions, want) {
		t.Errorf("regressions %v, want exactly the rename and the status: %v\n%s", regressions, want, raw)
	}
	if want := []string{"/meta/request_id", "/meta/timestamp", "header Set-Cookie"}; !slices.Equal(noise, want) {
		t.Errorf("noise %v, want %v\n%s", noise, want, raw)
	}
	total := int64(perPath * len(paths))
	wantCounts := map[string]int64{"mismatch": 3 * perPath, "noise": perPath}
	for name, n := range c.Counts {
		if n != wantCounts[name] {
			t.Errorf("count %s = %d, want %d", name, n, wantCounts[name])
		}
	}
	if c.Compared != total || c.WithNoise != total {
		t.Errorf("compared %d (with noise %d), want %d", c.Compared, c.WithNoise, total)
	}
	if i := slices.IndexFunc(c.StatusPairs, func(p compare.StatusPairReport) bool { return p.Primary == 200 && p.Shadow == 500 }); i < 0 || c.StatusPairs[i].Percent != 25 {
		t.Errorf("status pairs %+v, want 200→500 at 25%%", c.StatusPairs)
	}
	if c.LatencyMS.Window != int(total) || c.LatencyMS.Primary.P50 <= 0 || c.LatencyMS.Shadow.P50 <= 0 {
		t.Errorf("latency %+v, want percentiles over %d exchanges", c.LatencyMS, total)
	}
	if len(c.Samples) != 3*perPath || c.Samples[0].URI == "" || strings.Contains(c.Samples[0].URI, "?") {
		t.Errorf("samples: %d, first %+v; want %d, URIs without their query", len(c.Samples), c.Samples[0], 3*perPath)
	}
	for _, secret := range []string{"query-secret", "auth-secret", "session="} {
		if strings.Contains(raw, secret) {
			t.Errorf("the report holds %q:\n%s", secret, raw)
		}
	}
	if got := scrape(t, "caddy_http_mirror_compare_total", map[string]string{"target": "candidate", "result": "mismatch"}); got != float64(3*perPath) {
		t.Errorf("caddy_http_mirror_compare_total{result=mismatch} = %v, want %d", got, 3*perPath)
	}
	latencyRatios := 0.0
	for _, e := range []string{"GET /reviews/{id}", "GET /fail", "GET /health"} {
		latencyRatios += scrape(t, "caddy_http_mirror_latency_ratio", map[string]string{"target": "candidate", "endpoint": e})
	}
	if got := latencyRatios; got != float64(total) {
		t.Errorf("caddy_http_mirror_latency_ratio has %v observations, want %d", got, total)
	}

	resetReport(t)
	if r, _ := getReport(t); r.Targets[0].Compared != 0 || len(r.Targets[0].Samples) != 0 {
		t.Errorf("after DELETE: %+v, want an empty report", r.Targets[0])
	}
}
