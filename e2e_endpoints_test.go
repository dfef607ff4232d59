package mirror

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/caddy-mirror/mirror/compare"
)

// newShopService is one version of a test API with three endpoints,
// /users/{id}, /products/{id} and /slow/{id}. renamed serves users'
// /name as /full_name, and slowBy delays /slow.
func newShopService(t *testing.T, renamed bool, slowBy time.Duration) *httptest.Server {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /users/{id}", func(w http.ResponseWriter, r *http.Request) {
		key := "name"
		if renamed {
			key = "full_name"
		}
		writeJSON(w, map[string]any{"id": r.PathValue("id"), key: "Ada " + r.PathValue("id")})
	})
	mux.HandleFunc("GET /products/{id}", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, map[string]any{"id": r.PathValue("id"), "name": "Widget " + r.PathValue("id")})
	})
	mux.HandleFunc("GET /slow/{id}", func(w http.ResponseWriter, r *http.Request) {
		if slowBy > 0 {
			timer := time.NewTimer(slowBy) // the latency under test, not synchronisation
			select {
			case <-timer.C:
			case <-r.Context().Done():
				timer.Stop()
				return
			}
		}
		writeJSON(w, map[string]any{"id": r.PathValue("id")})
	})
	s := httptest.NewServer(mux)
	t.Cleanup(s.Close)
	return s
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

// shopCaddyfile mirrors the primary to a secondary equal to it and a
// candidate that compares, with fixed limits so that no copy is dropped.
const shopCaddyfile = `
http://:0 {
	bind 127.0.0.1
	mirror {
		to %s {
			name shop-secondary
			percent 0
			concurrency {
				ceiling 512
				fixed
			}
		}
		to %s {
			name shop-candidate
			concurrency {
				ceiling 512
				fixed
			}
			compare {
				noise_from shop-secondary
			}
		}
	}
	reverse_proxy %s
}
`

// TestE2E_Endpoints is issue 22's target: a candidate that renames /name
// in users only and answers /slow 40 ms later is a field regression of
// /users/{id}, a latency regression of /slow/{id}, and nothing on
// /products/{id}, in the JSON report, the page and Prometheus alike; the
// candidate equal to the primary is no regression anywhere.
func TestE2E_Endpoints(t *testing.T) {
	const ids = 40
	for _, tc := range []struct {
		name          string
		renamed       bool
		slowBy        time.Duration
		wantField     map[string]string // endpoint's worst field verdict
		wantLatency   map[string]string
		wantPromSlow  float64
		wantUsersDiff bool
	}{
		{
			name: "candidate", renamed: true, slowBy: 40 * time.Millisecond,
			wantField:    map[string]string{"GET /users/{id}": compare.VerdictRegression, "GET /products/{id}": "", "GET /slow/{id}": ""},
			wantLatency:  map[string]string{"GET /users/{id}": compare.LatencySame, "GET /products/{id}": compare.LatencySame, "GET /slow/{id}": compare.LatencyRegression},
			wantPromSlow: 1, wantUsersDiff: true,
		},
		{
			name:        "candidate equal to the primary",
			wantField:   map[string]string{"GET /users/{id}": "", "GET /products/{id}": "", "GET /slow/{id}": ""},
			wantLatency: map[string]string{"GET /users/{id}": compare.LatencySame, "GET /products/{id}": compare.LatencySame, "GET /slow/{id}": compare.LatencySame},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			primary, secondary := newShopService(t, false, 0), newShopService(t, false, 0)
			candidate := newShopService(t, tc.renamed, tc.slowBy)
			rec := recordOutcomes(t)
			tester := loadSites(t, fmt.Sprintf(shopCaddyfile, secondary.URL, candidate.URL, strings.TrimPrefix(primary.URL, "http://")))
			t.Cleanup(func() { unloadMirrors(tester) })
			resetReport(t)
			for i := range ids {
				for _, p := range []string{"/users/", "/products/", "/slow/"} {
					if status, body := do(t, tester, mustRequest(t, http.MethodGet, frontURL+p+fmt.Sprint(1000+i))); status != http.StatusOK {
						t.Fatalf("GET %s%d: %d %s", p, 1000+i, status, body)
					}
				}
			}
			if got := counts(rec.wait(t, 2*3*ids)); got["mirrored"] != 2*3*ids {
				t.Fatalf("outcomes %v, want every copy mirrored", got)
			}

			r, raw := getReport(t)
			c := r.Targets[0]
			if len(c.Endpoints) != 3 {
				t.Fatalf("endpoints %d, want 3:\n%s", len(c.Endpoints), raw)
			}
			for _, e := range c.Endpoints {
				want, ok := tc.wantField[e.Endpoint]
				if !ok || e.Compared != ids {
					t.Errorf("endpoint %s with %d exchanges, want one of %v with %d", e.Endpoint, e.Compared, tc.wantField, ids)
					continue
				}
				if e.Verdict != want {
					t.Errorf("%s: field verdict %q, want %q: %+v", e.Endpoint, e.Verdict, want, e.Fields)
				}
				if e.Latency.Verdict != tc.wantLatency[e.Endpoint] {
					t.Errorf("%s: latency %s (primary p50 %.1f ms, shadow %.1f, vs primary %+v, vs noise %+v), want %s",
						e.Endpoint, e.Latency.Verdict, e.Latency.Primary.P50, e.Latency.Shadow.P50, e.Latency.VsPrimary, e.Latency.VsNoise, tc.wantLatency[e.Endpoint])
				}
				t.Logf("%s: %d exchanges, %d mismatches, fields %q, latency p50 %.1f → %.1f ms (noise %.1f), %s",
					e.Endpoint, e.Compared, e.Mismatches, e.Verdict, e.Latency.Primary.P50, e.Latency.Shadow.P50, e.Latency.Noise.P50, e.Latency.Verdict)
			}
			if tc.wantUsersDiff {
				var users compare.EndpointReport
				for _, e := range c.Endpoints {
					if e.Endpoint == "GET /users/{id}" {
						users = e
					}
				}
				i := slices.IndexFunc(users.Fields, func(f compare.FieldReport) bool { return f.Field == "/name" })
				if i < 0 || users.Fields[i].Verdict != compare.VerdictRegression || len(users.Samples) == 0 {
					t.Errorf("GET /users/{id}: fields %+v, %d samples; want /name a regression, and samples", users.Fields, len(users.Samples))
				}
			}

			_, page := getPage(t, http.MethodGet, "/mirror/")
			for e, v := range tc.wantLatency {
				row := fmt.Sprintf(`<tr class="endpoint" data-endpoint="%s" data-verdict="%s" data-latency="%s">`, e, tc.wantField[e], v)
				if !strings.Contains(page, row) {
					t.Errorf("the page has no row %s", row)
				}
			}

			verdict := scrape(t, "caddy_http_mirror_latency_verdict", map[string]string{"target": "shop-candidate", "endpoint": "GET /slow/{id}"})
			if verdict != tc.wantPromSlow {
				t.Errorf("caddy_http_mirror_latency_verdict{endpoint=GET /slow/{id}} = %v, want %v", verdict, tc.wantPromSlow)
			}
			for _, e := range []string{"GET /products/{id}", "GET /users/{id}"} {
				if v := scrape(t, "caddy_http_mirror_latency_verdict", map[string]string{"target": "shop-candidate", "endpoint": e}); v != 0 {
					t.Errorf("caddy_http_mirror_latency_verdict{endpoint=%s} = %v, want 0", e, v)
				}
			}
			if tc.wantUsersDiff {
				got := scrape(t, "caddy_http_mirror_field_differences_total", map[string]string{"target": "shop-candidate", "endpoint": "GET /users/{id}", "field": "/name", "source": "shadow"})
				if got != ids {
					t.Errorf("field_differences_total{endpoint=GET /users/{id}, field=/name} = %v, want %d", got, ids)
				}
			}
		})
	}
}
