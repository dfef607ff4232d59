package mirror

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/caddy-mirror/mirror/compare"
)

// goJSONService is a stock Go JSON service: /doc/<size> answers with a
// document of about size bytes through json.NewEncoder, so that Go sends
// any body over its 2 KiB buffer chunked, with no Content-Length; with
// ?cl=1 it sets Content-Length instead. The candidate (v2) changes one
// value on paths under /changed/.
func goJSONService(t *testing.T, v2 bool) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		size, _ := strconv.Atoi(r.URL.Path[strings.LastIndexByte(r.URL.Path, '/')+1:])
		type item struct {
			ID    int    `json:"id"`
			Name  string `json:"name"`
			Price string `json:"price"`
		}
		doc := struct {
			Path  string `json:"path"`
			Items []item `json:"items"`
		}{Path: r.URL.Path}
		for i := 0; i*48 < size; i++ {
			doc.Items = append(doc.Items, item{ID: i, Name: fmt.Sprintf("item %08d", i), Price: "1.00"})
		}
		if v2 && strings.HasPrefix(r.URL.Path, "/changed/") {
			doc.Items[0].Price = "1.01"
		}
		w.Header().Set("Content-Type", "application/json")
		if r.URL.Query().Get("cl") == "1" {
			body, _ := json.Marshal(doc)
			body = append(body, '\n')
			w.Header().Set("Content-Length", strconv.Itoa(len(body)))
			_, _ = w.Write(body)
			return
		}
		_ = json.NewEncoder(w).Encode(doc)
	}))
	t.Cleanup(srv.Close)
	return srv
}

// TestE2E_CompareChunkedJSON: responses of unknown length, which
// reverse_proxy flushes, are compared like those with a Content-Length,
// with and without Caddy's encode in front, at 4 KiB and 64 KiB.
func TestE2E_CompareChunkedJSON(t *testing.T) {
	primary, candidate := goJSONService(t, false), goJSONService(t, true)
	rec := recordOutcomes(t)
	site := `
http://:0 {
	bind %s
	%s
	mirror {
		to %s {
			name %s
			compare {
				headers Content-Type
			}
		}
	}
	reverse_proxy %s
}
`
	host := strings.TrimPrefix(primary.URL, "http://")
	tester := loadSites(t, fmt.Sprintf(site, "127.0.0.1", "", candidate.URL, "chunked-plain", host)+
		fmt.Sprintf(site, "127.0.0.2", "encode gzip", candidate.URL, "chunked-gzip", host))
	t.Cleanup(func() { unloadMirrors(tester) })
	resetReport(t)

	var changed []string
	exchanges := 0
	for _, front := range []string{frontURL, siteURL(t, "127.0.0.2")} {
		for _, size := range []int{4 << 10, 64 << 10} {
			for _, query := range []string{"", "?cl=1"} {
				for _, dir := range []string{"/same/", "/changed/"} {
					path := dir + strconv.Itoa(size)
					req := mustRequest(t, http.MethodGet, front+path+query)
					resp, err := tester.Client.Do(req)
					if err != nil {
						t.Fatal(err)
					}
					var doc struct {
						Path  string `json:"path"`
						Items []any  `json:"items"`
					}
					if query == "" && resp.ContentLength != -1 {
						t.Fatalf("GET %s%s: Content-Length %d, want the stock server's chunked answer", front, path, resp.ContentLength)
					}
					// read to the end, as a client that wants the whole
					// response does: one that hangs up before the last
					// chunk may cut the primary's response short
					body, err := io.ReadAll(resp.Body)
					resp.Body.Close()
					if err == nil {
						err = json.Unmarshal(body, &doc)
					}
					if err != nil || doc.Path != path || len(doc.Items) != (size+47)/48 {
						t.Fatalf("GET %s%s: %v, path %q, %d items: not the primary's document", front, path, err, doc.Path, len(doc.Items))
					}
					if front == frontURL && dir == "/changed/" {
						changed = append(changed, path)
					}
					exchanges++
				}
			}
		}
	}
	if got := counts(rec.wait(t, exchanges)); got["mirrored"] != exchanges {
		t.Fatalf("outcomes %v, want %d mirrored", got, exchanges)
	}

	r, raw := getReport(t)
	for _, tr := range r.Targets {
		// every exchange compared, the chunked ones as the Content-Length ones
		want := map[string]int64{"match": int64(exchanges / 4), "mismatch": int64(exchanges / 4)}
		for name, n := range tr.Counts {
			if n != want[name] {
				t.Errorf("%s: count %s = %d, want %d\n%s", tr.Name, name, n, want[name], raw)
			}
		}
		if len(tr.Fields) != 1 || tr.Fields[0].Field != "/items/*/price" || tr.Fields[0].Verdict != compare.VerdictRegression {
			t.Errorf("%s: fields %+v, want only /items/*/price as a regression", tr.Name, tr.Fields)
		}
		var uris []string
		for _, s := range tr.Samples {
			uris = append(uris, s.URI)
		}
		slices.Sort(uris)
		if slices.Sort(changed); !slices.Equal(uris, changed) {
			t.Errorf("%s: mismatching samples %v, want each changed path with and without Content-Length: %v", tr.Name, uris, changed)
		}
	}
	if len(r.Targets) != 2 {
		t.Errorf("report has %d targets, want 2\n%s", len(r.Targets), raw)
	}
}
