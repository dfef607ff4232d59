package mirror

import (
	"context"
	"io"
	"net/http"
	"os/exec"
	"strings"
	"testing"
)

// loadDiffyReport loads the Diffy-style setup and the report page's site,
// and sends requests through it until the candidate has compared them all.
func loadDiffyReport(t *testing.T, paths ...string) {
	t.Helper()
	_, rec, tester := startDiffy(t, reportSite)
	for _, p := range paths {
		do(t, tester, mustRequest(t, http.MethodGet, frontURL+p))
	}
	rec.wait(t, 2*len(paths))
}

// reportSite is example/compare.Caddyfile's recipe for looking at the
// report page in a browser: Caddy's admin endpoint refuses browser requests, so a site on
// a local port proxies GET /mirror/* to it, without the browser's headers.
const reportSite = `
http://:9081 {
	bind 127.0.0.1
	@report {
		method GET
		path /mirror/*
	}
	handle @report {
		reverse_proxy localhost:2999 {
			header_up Host localhost:2999
			header_up -Origin
			header_up -Referer
			header_up -Sec-Fetch-Mode
		}
	}
	respond 404
}
`

// getPage fetches an admin endpoint page.
func getPage(t *testing.T, method, path string) (int, string) {
	t.Helper()
	resp, err := http.DefaultClient.Do(mustRequest(t, method, adminURL+path))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

func TestAdminReportWithoutComparingTargets(t *testing.T) {
	tester := loadSites(t, ":9080 {\n\tmirror http://127.0.0.1:9\n\trespond ok\n}\n")
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

// TestAdminReportPageInChromium renders the page in headless Chromium
// (Debian's chromium package) and checks the rendered document. It is
// skipped where Chromium is not installed.
func TestAdminReportPageInChromium(t *testing.T) {
	browser, err := exec.LookPath("chromium")
	if err != nil {
		t.Skip("chromium is not installed (apt-get install chromium)")
	}
	loadDiffyReport(t, "/reviews/1", "/reviews/2", "/fail", "/health")

	ctx, cancel := context.WithTimeout(context.Background(), 3*waitLimit)
	defer cancel()
	out, err := exec.CommandContext(ctx, browser, "--headless", "--no-sandbox", "--disable-gpu",
		"--user-data-dir="+t.TempDir(), "--dump-dom", "http://127.0.0.1:9081/mirror/").Output()
	if err != nil {
		t.Fatalf("chromium: %v", err)
	}
	dom := string(out)
	for _, want := range []string{
		`<section class="target" id="target-candidate">`,
		"<code>/name</code>", "<code>/meta/request_id</code>",
		`<td class="regression">regression</td>`, `<td class="noise">noise</td>`,
		"GET /fail", "200 → 500",
		`<svg class="latency"`,
	} {
		if !strings.Contains(dom, want) {
			t.Errorf("the rendered page lacks %q", want)
		}
	}
	if n := strings.Count(dom, "<rect "); n != 6 {
		t.Errorf("the latency chart has %d bars, want 6", n)
	}
}
