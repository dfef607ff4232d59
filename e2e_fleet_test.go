package mirror

import (
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/caddy-mirror/mirror/compare"
)

// The fleet tests run the shipped example/prometheus/ config and rules and
// the example/grafana/ dashboard's queries in a real Prometheus server
// (Debian's prometheus package, which has promtool). .ci/fleet installs it
// and runs them; without it they are skipped.

// fleetWait bounds each wait for the external processes: Caddy starting,
// Prometheus scraping (every second) and evaluating rules (every second).
const fleetWait = 60 * time.Second

// lookPrometheusTool finds a program of the prometheus package, or skips.
func lookPrometheusTool(t *testing.T, name string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		t.Skipf("%s is not installed (apt-get install prometheus, or run .ci/fleet)", name)
	}
	return path
}

// TestPrometheusExamplesCheck runs promtool on the shipped rules and
// scrape config.
func TestPrometheusExamplesCheck(t *testing.T) {
	promtool := lookPrometheusTool(t, "promtool")
	for _, args := range [][]string{
		{"check", "rules", "example/prometheus/rules.yml"},
		{"check", "config", "example/prometheus/prometheus.yml"},
	} {
		if out, err := exec.Command(promtool, args...).CombinedOutput(); err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}

// TestFleetPrometheus is the Diffy-style comparison of
// TestE2E_CompareDiffyStyle split over two Caddy processes, scraped by a
// real Prometheus that loads example/prometheus/: the shipped rules find
// the same regressions and noise as the report, the counts in Prometheus
// are the sums of the two reports, and every query of the Grafana
// dashboard returns data.
func TestFleetPrometheus(t *testing.T) {
	prometheus := lookPrometheusTool(t, "prometheus")
	if testing.Short() {
		t.Skip("the fleet test builds Caddy and runs three processes; not in -short mode")
	}
	caddyBin := buildCaddy(t)
	primary, secondary, candidate := newReviewsService(t, false), newReviewsService(t, false), newReviewsService(t, true)
	fleet := []*caddyProcess{
		startCaddyProcess(t, caddyBin, secondary.URL, candidate.URL, primary.URL),
		startCaddyProcess(t, caddyBin, secondary.URL, candidate.URL, primary.URL),
	}
	prom := startPrometheus(t, prometheus, fleet)

	paths := []string{"/reviews/1", "/reviews/2", "/fail", "/health"}
	const cycles = 10 // per instance: 2 × 10 × 4 = 80 exchanges, as in TestE2E_CompareDiffyStyle
	send := func(n int) {
		for _, c := range fleet {
			for range n {
				for _, p := range paths {
					resp, err := http.Get(c.site + p)
					if err != nil {
						t.Fatal(err)
					}
					resp.Body.Close()
					if resp.StatusCode != http.StatusOK {
						t.Fatalf("GET %s%s: %d, want the primary's 200", c.site, p, resp.StatusCode)
					}
				}
			}
		}
	}
	// A counter series that first appears with a value has no rate yet, so
	// one cycle creates every series and Prometheus scrapes it before the
	// rest of the traffic.
	send(1)
	waitFleetReports(t, fleet, len(paths))
	prom.waitFor(t, "the first cycle scraped", `sum(caddy_http_mirror_compared_total{target="candidate"})`, func(r []promSample) bool {
		return len(r) == 1 && r[0].value == float64(2*len(paths))
	})
	send(cycles - 1)
	reports := waitFleetReports(t, fleet, cycles*len(paths))

	// the raw counts in Prometheus are the sums of the instances' reports
	want := sumReports(reports)
	var got map[string]float64
	prom.waitFor(t, "the counts of both reports", `sum by (__name__, noise, result, field, source, primary_code, shadow_code) ({__name__=~"caddy_http_mirror_(compared|compare|field_differences|status_pairs)_total", target="candidate"})`, func(r []promSample) bool {
		got = map[string]float64{}
		for _, s := range r {
			got[countKey(s.metric)] = s.value
		}
		return fmt.Sprint(got) == fmt.Sprint(want)
	})
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("Prometheus counts\n%v\nthe sum of the two reports\n%v", got, want)
	}
	prom.waitForEvaluation(t, time.Now())

	// the shipped rules: every one healthy, and the alerts' queries
	alerts := prom.rules(t)
	regressions := fieldsOf(prom.query(t, alerts["MirrorFieldRegression"]))
	noise := fieldsOf(prom.query(t, "target_field:caddy_http_mirror_noise_fields:percent10m"))
	reportRegressions, reportNoise := verdictFields(reports)
	if want := []string{"/name", "/title", "status"}; !slices.Equal(regressions, want) || !slices.Equal(regressions, reportRegressions) {
		t.Errorf("MirrorFieldRegression flags %v; want exactly the rename and the 500, %v, as the reports do: %v", regressions, want, reportRegressions)
	}
	if want := []string{"/meta/request_id", "/meta/timestamp", "header Set-Cookie"}; !slices.Equal(noise, want) || !slices.Equal(noise, reportNoise) {
		t.Errorf("the rules mark %v as noise; want %v, as the reports do: %v", noise, want, reportNoise)
	}
	t.Logf("%d counts equal to the reports' sums; regressions %v, noise %v", len(got), regressions, noise)
	// per endpoint: the rename on /reviews/{id}, the 500 on /fail, as the
	// reports' endpoints say
	var endpointRegressions, reportEndpointRegressions []string
	for _, s := range prom.query(t, alerts["MirrorEndpointFieldRegression"]) {
		endpointRegressions = append(endpointRegressions, s.metric["endpoint"]+" "+s.metric["field"])
	}
	for _, e := range reports[0].Endpoints {
		for _, f := range e.Fields {
			if f.Verdict == compare.VerdictRegression {
				reportEndpointRegressions = append(reportEndpointRegressions, e.Endpoint+" "+f.Field)
			}
		}
	}
	slices.Sort(endpointRegressions)
	slices.Sort(reportEndpointRegressions)
	if want := []string{"GET /fail status", "GET /reviews/{id} /name", "GET /reviews/{id} /title"}; !slices.Equal(endpointRegressions, want) || !slices.Equal(reportEndpointRegressions, want) {
		t.Errorf("MirrorEndpointFieldRegression flags %v, the report %v; want %v", endpointRegressions, reportEndpointRegressions, want)
	}
	for _, name := range []string{"MirrorShadowDown", "MirrorCopiesDropped"} {
		if r := prom.query(t, alerts[name]); len(r) != 0 {
			t.Errorf("%s fires with every copy mirrored: %v", name, r)
		}
	}

	// every query of the dashboard, and every example of the README's
	// metrics table, returns data; the table lists every series
	for _, q := range dashboardQueries(t) {
		if r := prom.query(t, q); len(r) == 0 {
			t.Errorf("the dashboard's query returns no data: %s", q)
		}
	}
	documented := readmeMetricExamples(t)
	for name, q := range documented {
		if r := prom.query(t, q); len(r) == 0 {
			t.Errorf("the README's example for %s returns no data: %s", name, q)
		}
	}
	names := prom.query(t, `group by (__name__) ({__name__=~"caddy_http_mirror_.*"})`)
	t.Logf("%d README examples return data; %d series names scraped", len(documented), len(names))
	for _, s := range names {
		name := strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(s.metric["__name__"], "_bucket"), "_sum"), "_count")
		if _, ok := documented[name]; !ok {
			t.Errorf("the README's metrics table does not list %s", name)
		}
	}
}

// readmeMetricExamples returns the example PromQL of each series in the
// README's metrics table, by series name.
func readmeMetricExamples(t *testing.T) map[string]string {
	t.Helper()
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	row := regexp.MustCompile("(?m)^\\| `(caddy_http_mirror_[a-z_]+)` \\|.*\\| `([^`]+)`[^|]* \\|$")
	examples := map[string]string{}
	for _, m := range row.FindAllStringSubmatch(string(readme), -1) {
		examples[m[1]] = m[2]
	}
	if len(examples) < 9 {
		t.Errorf("found examples for %d series in the README's metrics table: %v", len(examples), examples)
	}
	return examples
}

// buildCaddy builds ./cmd/caddy, the plugin included.
func buildCaddy(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "caddy")
	if out, err := exec.Command("go", "build", "-o", bin, "./cmd/caddy").CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/caddy: %v\n%s", err, out)
	}
	return bin
}

// caddyProcess is one Caddy instance of the fleet.
type caddyProcess struct {
	admin   *http.Client // the admin API, on a unix socket
	site    string       // the front's base URL
	metrics string       // host:port of the metrics site, behind basic_auth
}

// metricsUser and metricsPassword are the credentials of the fleet's
// metrics sites, as example/prometheus/prometheus.yml has Prometheus send
// them.
const (
	metricsUser     = "prometheus"
	metricsPassword = "scrape-secret"
)

// metricsSite serves an instance's metrics, the mirror's included, on a
// site of its own behind basic_auth, as example/prometheus/ suggests,
// bound to port 0 of 127.0.0.2. Its %s is the password's bcrypt hash.
const metricsSite = `
http://:0 {
	bind 127.0.0.2
	basic_auth {
		` + metricsUser + ` %s
	}
	metrics
}
`

// startCaddyProcess runs the Diffy-style setup in its own Caddy process,
// with its admin API on a unix socket and its front and metrics sites on
// port 0, and reads their addresses back from its log.
func startCaddyProcess(t *testing.T, bin, secondary, candidate, primary string) *caddyProcess {
	t.Helper()
	dir := t.TempDir()
	socket := filepath.Join(dir, "admin.sock")
	hash, err := bcrypt.GenerateFromPassword([]byte(metricsPassword), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	config := fmt.Sprintf("{\n\tadmin unix/%s\n\tpersist_config off\n\tskip_install_trust\n}\n", socket) +
		fmt.Sprintf(diffyCaddyfile, secondary, candidate, strings.TrimPrefix(primary, "http://")) +
		fmt.Sprintf(metricsSite, hash)
	path := filepath.Join(dir, "Caddyfile")
	if err := os.WriteFile(path, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "run", "--config", path, "--adapter", "caddyfile")
	cmd.Env = append(os.Environ(), "HOME="+dir, "XDG_CONFIG_HOME="+dir, "XDG_DATA_HOME="+dir)
	logs := startProcess(t, cmd, "caddy in "+dir)
	c := &caddyProcess{admin: unixClient(socket)}
	c.site = "http://" + waitForLogged(t, logs, "caddy's front to listen", regexp.MustCompile(fmt.Sprintf(caddyPortZero, regexp.QuoteMeta("127.0.0.1"))))
	c.metrics = waitForLogged(t, logs, "caddy's metrics site to listen", regexp.MustCompile(fmt.Sprintf(caddyPortZero, regexp.QuoteMeta("127.0.0.2"))))
	poll(t, "caddy's admin API to answer", func() bool {
		resp, err := c.admin.Get("http://caddy-admin/config/")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	return c
}

// poll checks done until it holds, failing the test after fleetWait.
// The processes it waits on have no way to notify the test.
func poll(t *testing.T, what string, done func() bool) {
	t.Helper()
	deadline := time.Now().Add(fleetWait)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for !done() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		<-tick.C
	}
}

// fleetReport fetches an instance's GET /mirror/report.
func (c *caddyProcess) report(t *testing.T) compare.Report {
	t.Helper()
	resp, err := c.admin.Get("http://caddy-admin/mirror/report")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /mirror/report of %s: %d", c.site, resp.StatusCode)
	}
	var r compare.Report
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		t.Fatal(err)
	}
	return r
}

// waitFleetReports waits until every instance's candidate has compared n
// exchanges, and returns the candidate's reports.
func waitFleetReports(t *testing.T, fleet []*caddyProcess, n int) []compare.TargetReport {
	t.Helper()
	out := make([]compare.TargetReport, len(fleet))
	for i, c := range fleet {
		poll(t, fmt.Sprintf("%s to compare %d exchanges", c.site, n), func() bool {
			r := c.report(t)
			if len(r.Targets) != 1 {
				return false
			}
			out[i] = r.Targets[0]
			return out[i].Compared == int64(n)
		})
	}
	return out
}

// sumReports adds up the reports' counts, keyed as countKey keys the
// samples of the Prometheus series.
func sumReports(reports []compare.TargetReport) map[string]float64 {
	sum := map[string]float64{}
	for _, r := range reports {
		sum[countKey(map[string]string{"__name__": "caddy_http_mirror_compared_total", "noise": "true"})] += float64(r.WithNoise)
		if n := r.Compared - r.WithNoise; n > 0 { // a series per endpoint, made when first counted
			sum[countKey(map[string]string{"__name__": "caddy_http_mirror_compared_total", "noise": "false"})] += float64(n)
		}
		for result, n := range r.Counts {
			sum[countKey(map[string]string{"__name__": "caddy_http_mirror_compare_total", "result": result})] += float64(n)
		}
		for _, f := range r.Fields {
			sum[countKey(map[string]string{"__name__": "caddy_http_mirror_field_differences_total", "field": f.Field, "source": "shadow"})] += float64(f.Differences)
			if noise := math.Round(f.NoisePercent * float64(r.WithNoise) / 100); noise > 0 {
				sum[countKey(map[string]string{"__name__": "caddy_http_mirror_field_differences_total", "field": f.Field, "source": "noise"})] += noise
			}
		}
		for _, p := range r.StatusPairs {
			sum[countKey(map[string]string{"__name__": "caddy_http_mirror_status_pairs_total", "primary_code": fmt.Sprint(p.Primary), "shadow_code": fmt.Sprint(p.Shadow)})] += float64(p.Count)
		}
	}
	return sum
}

// countKey names a count by its series name and labels.
func countKey(labels map[string]string) string {
	var parts []string
	for _, k := range []string{"noise", "result", "field", "source", "primary_code", "shadow_code"} {
		if v, ok := labels[k]; ok {
			parts = append(parts, k+"="+v)
		}
	}
	return labels["__name__"] + "{" + strings.Join(parts, ",") + "}"
}

// verdictFields returns the fields that any report judges a regression,
// and those it judges noise, sorted.
func verdictFields(reports []compare.TargetReport) (regressions, noise []string) {
	for _, r := range reports {
		for _, f := range r.Fields {
			switch {
			case f.Verdict == compare.VerdictRegression && !slices.Contains(regressions, f.Field):
				regressions = append(regressions, f.Field)
			case f.Verdict == compare.VerdictNoise && !slices.Contains(noise, f.Field):
				noise = append(noise, f.Field)
			}
		}
	}
	slices.Sort(regressions)
	slices.Sort(noise)
	return regressions, noise
}

// fieldsOf returns the field labels of a query's samples, sorted.
func fieldsOf(samples []promSample) []string {
	var fields []string
	for _, s := range samples {
		fields = append(fields, s.metric["field"])
	}
	slices.Sort(fields)
	return fields
}

// dashboardQueries returns every query of example/grafana/mirror.json.
func dashboardQueries(t *testing.T) []string {
	t.Helper()
	raw, err := os.ReadFile("example/grafana/mirror.json")
	if err != nil {
		t.Fatal(err)
	}
	var dashboard struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(raw, &dashboard); err != nil {
		t.Fatalf("example/grafana/mirror.json: %v", err)
	}
	var queries []string
	for _, p := range dashboard.Panels {
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, q := range p.Targets {
			queries = append(queries, q.Expr)
		}
	}
	return queries
}
