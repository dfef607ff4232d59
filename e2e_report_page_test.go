package mirror

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig"
	"golang.org/x/crypto/bcrypt"

	"github.com/caddy-mirror/mirror/compare"
)

const (
	reportUser     = "ops"
	reportPassword = "report-secret"
)

// reportSiteAddress is where the report site listens: port 0 of its own
// loopback address.
const reportSiteAddress = "127.0.0.2"

// loadReportHandlerSite loads the Diffy-style setup with the report served
// by mirror_report on a site behind basic_auth, as the README shows it
// (handle /mirror-ui*, so that /mirror-ui reaches the handler too; under
// /strict-ui/* it does not),
// and sends paths through the mirror until the candidate has compared
// them all. It returns the URL of the report.
func loadReportHandlerSite(t *testing.T, paths ...string) (reportSiteURL string) {
	t.Helper()
	hash, err := bcrypt.GenerateFromPassword([]byte(reportPassword), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	_, rec, tester := startDiffy(t, fmt.Sprintf(`
http://:0 {
	bind 127.0.0.2
	basic_auth {
		%s %s
	}
	handle /mirror-ui* {
		mirror_report
	}
	handle /strict-ui/* {
		mirror_report
	}
	respond 404
}
`, reportUser, hash))
	for _, p := range paths {
		do(t, tester, mustRequest(t, http.MethodGet, frontURL+p))
	}
	rec.wait(t, 2*len(paths))
	return siteURL(t, reportSiteAddress) + "/mirror-ui/"
}

// getSite requests a path of the report site, with the credentials when
// auth is set.
func getSite(t *testing.T, method, url string, auth bool) (int, string) {
	t.Helper()
	req := mustRequest(t, method, url)
	if auth {
		req.SetBasicAuth(reportUser, reportPassword)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(body)
}

func TestReportHandlerBehindBasicAuth(t *testing.T) {
	reportSiteURL := loadReportHandlerSite(t, "/reviews/1", "/fail", "/health")

	if status, body := getSite(t, http.MethodGet, reportSiteURL, false); status != http.StatusUnauthorized || strings.Contains(body, "candidate") {
		t.Errorf("GET %s without credentials: %d %q, want 401 without the report", reportSiteURL, status, body)
	}
	status, page := getSite(t, http.MethodGet, reportSiteURL, true)
	if status != http.StatusOK {
		t.Fatalf("GET %s: %d %s", reportSiteURL, status, page)
	}
	for _, want := range []string{`id="target-candidate"`, "<code>/title</code>", "200 → 500", `<a href="report">`} {
		if !strings.Contains(page, want) {
			t.Errorf("the page lacks %q", want)
		}
	}

	status, raw := getSite(t, http.MethodGet, reportSiteURL+"report", true)
	var fromSite compare.Report
	if err := json.Unmarshal([]byte(raw), &fromSite); status != http.StatusOK || err != nil {
		t.Fatalf("GET %sreport: %d %v %s", reportSiteURL, status, err, raw)
	}
	fromAdmin, _ := getReport(t)
	site, _ := json.Marshal(fromSite.Targets[0].Counts)
	admin, _ := json.Marshal(fromAdmin.Targets[0].Counts)
	if string(site) != string(admin) || fromSite.Targets[0].Compared != 3 {
		t.Errorf("the site's JSON counts %s, the admin API's %s; want the same 3 exchanges", site, admin)
	}

	for _, tc := range []struct {
		method, path string
		want         int
	}{
		{http.MethodDelete, "report", http.StatusMethodNotAllowed},
		{http.MethodPost, "", http.StatusMethodNotAllowed},
		{http.MethodGet, "favicon.ico", http.StatusNotFound},
		{http.MethodGet, "index.html", http.StatusOK},
	} {
		if status, body := getSite(t, tc.method, reportSiteURL+tc.path, true); status != tc.want {
			t.Errorf("%s %s%s: %d %s, want %d", tc.method, reportSiteURL, tc.path, status, body, tc.want)
		}
	}
	// the mount path without its slash: 308 to the page, the query kept,
	// as file_server redirects a directory; only behind the credentials
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	base := strings.TrimSuffix(reportSiteURL, "/mirror-ui/")
	for _, tc := range []struct {
		method, path string
		auth         bool
		want         int
		location     string
	}{
		{http.MethodGet, "/mirror-ui", true, http.StatusPermanentRedirect, "/mirror-ui/"},
		{http.MethodHead, "/mirror-ui", true, http.StatusPermanentRedirect, "/mirror-ui/"},
		{http.MethodGet, "/mirror-ui?target=candidate&x=%2F", true, http.StatusPermanentRedirect, "/mirror-ui/?target=candidate&x=%2F"},
		{http.MethodGet, "/mirror-ui", false, http.StatusUnauthorized, ""},
		{http.MethodPost, "/mirror-ui", true, http.StatusMethodNotAllowed, ""},
		{http.MethodGet, "/mirror-ui/nothing.txt", true, http.StatusNotFound, ""},
		// under handle /strict-ui/*, the unslashed path never reaches
		// mirror_report: the site's respond 404 answers it
		{http.MethodGet, "/strict-ui", true, http.StatusNotFound, ""},
		{http.MethodGet, "/strict-ui/", true, http.StatusOK, ""},
	} {
		req := mustRequest(t, tc.method, base+tc.path)
		if tc.auth {
			req.SetBasicAuth(reportUser, reportPassword)
		}
		resp, err := noRedirect.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.want || resp.Header.Get("Location") != tc.location {
			t.Errorf("%s %s (credentials %v): %d Location %q, want %d %q",
				tc.method, tc.path, tc.auth, resp.StatusCode, resp.Header.Get("Location"), tc.want, tc.location)
		}
	}
	// a client that follows the redirect, as a browser does, gets the page
	if status, page := getSite(t, http.MethodGet, base+"/mirror-ui", true); status != http.StatusOK || !strings.Contains(page, `id="target-candidate"`) {
		t.Errorf("GET /mirror-ui, redirect followed: %d, want 200 and the page", status)
	}

	if r, _ := getReport(t); r.Targets[0].Compared != 3 {
		t.Errorf("after DELETE on the site: %d compared, want the report untouched", r.Targets[0].Compared)
	}
}

// TestReportHandlerInChromium opens the page that mirror_report serves
// behind basic_auth in headless Chromium (Debian's chromium package),
// without and with the credentials. It is skipped where Chromium is not
// installed.
func TestReportHandlerInChromium(t *testing.T) {
	browser, err := exec.LookPath("chromium")
	if err != nil {
		t.Skip("chromium is not installed (apt-get install chromium)")
	}
	reportSiteURL := loadReportHandlerSite(t, "/reviews/1", "/reviews/2", "/fail", "/health")

	dump := func(url string) string {
		ctx, cancel := context.WithTimeout(context.Background(), 3*waitLimit)
		defer cancel()
		out, err := exec.CommandContext(ctx, browser, "--headless", "--no-sandbox", "--disable-gpu",
			"--user-data-dir="+t.TempDir(), "--dump-dom", url).Output()
		if err != nil {
			t.Fatalf("chromium: %v", err)
		}
		return string(out)
	}
	if dom := dump(reportSiteURL); strings.Contains(dom, "target-candidate") {
		t.Errorf("without credentials, Chromium rendered the report:\n%s", dom)
	}
	dom := dump(strings.Replace(reportSiteURL, "://", "://"+reportUser+":"+reportPassword+"@", 1))
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
}

// TestReportHandlerCaddyfileErrors checks that mirror_report refuses
// arguments and blocks with a subdirective, naming the line.
func TestReportHandlerCaddyfileErrors(t *testing.T) {
	for _, src := range []string{
		":8080 {\n\tmirror_report /mirror-ui/* extra\n}\n",
		":8080 {\n\tmirror_report {\n\t}\n\tmirror_report {\n\t\tprefix /x\n\t}\n}\n",
	} {
		_, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(src), map[string]any{"filename": "Caddyfile"})
		if err == nil || !strings.Contains(err.Error(), "mirror_report") || !strings.Contains(err.Error(), "Caddyfile:") {
			t.Errorf("adapting\n%s\nerror %v, want one naming mirror_report and its line", src, err)
		}
	}
	// without a route, the directive order puts it after respond and
	// metrics, and the site adapts
	adaptCaddyfile(t, ":8080 {\n\tmirror_report /mirror-ui/*\n\treverse_proxy 127.0.0.1:9001\n}\n")
}
