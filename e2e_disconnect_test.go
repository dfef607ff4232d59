package mirror

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestE2E_ClientDisconnectIsNotADifference: a client that goes away before
// the primary answers (reverse_proxy writes a 499), or part-way through the
// body, leaves the primary's response unfinished. Those exchanges are
// counted primary_incomplete, never compared, and never a regression.
func TestE2E_ClientDisconnectIsNotADifference(t *testing.T) {
	arrived := make(chan string, 4)
	primary := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		switch r.URL.Path {
		case "/before":
			arrived <- r.URL.Path
			<-r.Context().Done() // reverse_proxy cancels when its client goes
		case "/mid-body":
			_, _ = io.WriteString(w, `{"items":[`+strings.Repeat(`"x",`, 4096))
			w.(http.Flusher).Flush()
			arrived <- r.URL.Path
			<-r.Context().Done()
		default:
			_, _ = io.WriteString(w, `{"ok":true}`)
		}
	}))
	t.Cleanup(primary.Close)
	candidate := jsonServer(t, "", `{"ok":true}`)
	rec := recordOutcomes(t)
	tester := loadSites(t, fmt.Sprintf(`
http://:0 {
	bind 127.0.0.1
	mirror {
		to %s {
			name disconnects
			compare {
				headers Content-Type
			}
		}
	}
	reverse_proxy %s
}
`, candidate.URL, strings.TrimPrefix(primary.URL, "http://")))
	t.Cleanup(func() { unloadMirrors(tester) })
	resetReport(t)

	// before the answer: the client gives up while the primary works
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		resp, err := tester.Client.Do(mustRequest(t, http.MethodGet, frontURL+"/before").WithContext(ctx))
		if err == nil {
			resp.Body.Close()
		}
		done <- err
	}()
	receive(t, arrived, "the primary's request")
	cancel()
	if err := receive(t, done, "the client's give-up"); !errors.Is(err, context.Canceled) {
		t.Fatalf("client: %v, want context.Canceled", err)
	}
	rec.wait(t, 1)

	// part-way through the body: the client reads some and hangs up
	resp, err := tester.Client.Do(mustRequest(t, http.MethodGet, frontURL+"/mid-body"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(resp.Body, make([]byte, 1024)); err != nil {
		t.Fatal(err)
	}
	receive(t, arrived, "the primary's request")
	resp.Body.Close() // unread: net/http closes the connection
	rec.wait(t, 1)

	// and one that ends, for contrast
	if status, body := do(t, tester, mustRequest(t, http.MethodGet, frontURL+"/whole")); status != 200 || body != `{"ok":true}` {
		t.Fatalf("client got %d %q", status, body)
	}
	rec.wait(t, 1)

	r, raw := getReport(t)
	if len(r.Targets) != 1 {
		t.Fatalf("report: %s", raw)
	}
	want := map[string]int64{"primary_incomplete": 2, "match": 1}
	for name, n := range r.Targets[0].Counts {
		if n != want[name] {
			t.Errorf("count %s = %d, want %d\n%s", name, n, want[name], raw)
		}
	}
	if len(r.Targets[0].Fields) != 0 || len(r.Targets[0].StatusPairs) != 1 {
		t.Errorf("fields %+v, status pairs %+v: want no difference and only 200 → 200", r.Targets[0].Fields, r.Targets[0].StatusPairs)
	}
	if got := scrape(t, "caddy_http_mirror_compare_total", map[string]string{"target": "disconnects", "result": "primary_incomplete"}); got != 2 {
		t.Errorf("caddy_http_mirror_compare_total{result=primary_incomplete} = %v, want 2", got)
	}
}
