package mirror

import (
	"encoding/json"
	"fmt"
	"math"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
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

// freePort returns a loopback port that was free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// caddyProcess is one Caddy instance of the fleet.
type caddyProcess struct {
	admin, site string // base URLs
}

// startCaddyProcess runs the Diffy-style setup in its own Caddy process
// and waits until its site answers.
func startCaddyProcess(t *testing.T, bin, secondary, candidate, primary string) *caddyProcess {
	t.Helper()
	dir := t.TempDir()
	adminAddr, siteAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t)), fmt.Sprintf("127.0.0.1:%d", freePort(t))
	config := fmt.Sprintf("{\n\tadmin %s\n\tpersist_config off\n\tskip_install_trust\n}\n", adminAddr) +
		strings.Replace(fmt.Sprintf(diffyCaddyfile, secondary, candidate, strings.TrimPrefix(primary, "http://")), ":9080 {", "http://"+siteAddr+" {", 1)
	path := filepath.Join(dir, "Caddyfile")
	if err := os.WriteFile(path, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "run", "--config", path, "--adapter", "caddyfile")
	cmd.Env = append(os.Environ(), "HOME="+dir, "XDG_CONFIG_HOME="+dir, "XDG_DATA_HOME="+dir)
	startProcess(t, cmd, "caddy on "+siteAddr)
	c := &caddyProcess{admin: "http://" + adminAddr, site: "http://" + siteAddr}
	poll(t, "caddy on "+siteAddr+" to start", func() bool {
		resp, err := http.Get(c.admin + "/config/")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	return c
}

// startProcess starts cmd, stops it with an interrupt when the test ends,
// and logs what it wrote if the test failed.
func startProcess(t *testing.T, cmd *exec.Cmd, name string) {
	t.Helper()
	var logs strings.Builder
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("%s logged:\n%s", name, logs.String())
		}
	})
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
func (c *caddyProcess) report(t *testing.T) report {
	t.Helper()
	resp, err := http.Get(c.admin + "/mirror/report")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var r report
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		t.Fatal(err)
	}
	return r
}

// waitFleetReports waits until every instance's candidate has compared n
// exchanges, and returns the candidate's reports.
func waitFleetReports(t *testing.T, fleet []*caddyProcess, n int) []targetReport {
	t.Helper()
	out := make([]targetReport, len(fleet))
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
func sumReports(reports []targetReport) map[string]float64 {
	sum := map[string]float64{}
	for _, r := range reports {
		sum[countKey(map[string]string{"__name__": "caddy_http_mirror_compared_total", "noise": "true"})] += float64(r.WithNoise)
		sum[countKey(map[string]string{"__name__": "caddy_http_mirror_compared_total", "noise": "false"})] += float64(r.Compared - r.WithNoise)
		for result, n := range r.Counts {
			sum[countKey(map[string]string{"__name__": "caddy_http_mirror_compare_total", "result": result})] += float64(n)
		}
		for _, f := range r.Fields {
			sum[countKey(map[string]string{"__name__": "caddy_http_mirror_field_differences_total", "field": f.Field, "source": sourceShadow})] += float64(f.Differences)
			if noise := math.Round(f.NoisePercent * float64(r.WithNoise) / 100); noise > 0 {
				sum[countKey(map[string]string{"__name__": "caddy_http_mirror_field_differences_total", "field": f.Field, "source": sourceNoise})] += noise
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
func verdictFields(reports []targetReport) (regressions, noise []string) {
	for _, r := range reports {
		for _, f := range r.Fields {
			switch {
			case f.Verdict == verdictRegression && !slices.Contains(regressions, f.Field):
				regressions = append(regressions, f.Field)
			case f.Verdict == verdictNoise && !slices.Contains(noise, f.Field):
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
