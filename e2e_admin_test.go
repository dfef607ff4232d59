package mirror

import (
	"io"
	"net/http"
	"strings"
	"testing"
)

// loadDiffyReport loads the Diffy-style setup and sends requests through it until the candidate has compared them all.
func loadDiffyReport(t *testing.T, paths ...string) {
	t.Helper()
	_, rec, tester := startDiffy(t, "")
	for _, p := range paths {
		do(t, tester, mustRequest(t, http.MethodGet, frontURL+p))
	}
	rec.wait(t, 2*len(paths))
}

// getPage fetches an admin endpoint page.
func getPage(t *testing.T, method, path string) (int, string) {
	t.Helper()
	resp, err := adminClient.Do(mustRequest(t, method, adminURL+path))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

func TestAdminReportWithoutComparingTargets(t *testing.T) {
	tester := loadSites(t, "http://:0 {\n\tbind 127.0.0.1\n\tmirror http://127.0.0.1:9\n\trespond ok\n}\n")
	defer unloadMirrors(tester)
	if status, body := getPage(t, http.MethodGet, "/mirror/report"); status != http.StatusOK || body != "{\"targets\":[]}\n" {
		t.Errorf("GET /mirror/report with no comparing target: %d %q, want an empty list", status, body)
	}
	if _, page := getPage(t, http.MethodGet, "/mirror/"); !strings.Contains(page, `id="empty"`) {
		t.Error("the page does not say that no target compares")
	}
}

func TestAdminReportPage(t *testing.T) {
	loadDiffyReport(t, "/reviews/1", "/fail", "/%3Cscript%3Ealert(1)%3C/script%3E")

	status, page := getPage(t, http.MethodGet, "/mirror/")
	if status != http.StatusOK {
		t.Fatalf("GET /mirror/: %d %s", status, page)
	}
	for _, want := range []string{`id="target-candidate"`, "<code>/title</code>", "200 → 500", `class="regression"`, "<rect"} {
		if !strings.Contains(page, want) {
			t.Errorf("the page lacks %q", want)
		}
	}
	if strings.Contains(page, "<script>") {
		t.Error("a request path reached the page unescaped")
	}

	for _, tc := range []struct {
		method, path string
		want         int
	}{
		{http.MethodPost, "/mirror/report", http.StatusMethodNotAllowed},
		{http.MethodDelete, "/mirror/", http.StatusMethodNotAllowed},
		{http.MethodGet, "/mirror/nothing", http.StatusNotFound},
	} {
		if status, body := getPage(t, tc.method, tc.path); status != tc.want {
			t.Errorf("%s %s: %d %s, want %d", tc.method, tc.path, status, body, tc.want)
		}
	}
}
