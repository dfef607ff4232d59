package mirror

// A real Prometheus server for the fleet test, driven through its HTTP API.

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// promServer is a running Prometheus server.
type promServer struct{ url string }

// startPrometheus runs Prometheus with example/prometheus/prometheus.yml
// and rules.yml, scraping the fleet every second instead of the example's
// hosts every 15 seconds, and waits until it is ready.
func startPrometheus(t *testing.T, bin string, fleet []*caddyProcess) *promServer {
	t.Helper()
	dir := t.TempDir()
	config, err := os.ReadFile("example/prometheus/prometheus.yml")
	if err != nil {
		t.Fatal(err)
	}
	rules, err := os.ReadFile("example/prometheus/rules.yml")
	if err != nil {
		t.Fatal(err)
	}
	var targets []string
	for _, c := range fleet {
		targets = append(targets, c.metrics)
	}
	passwordFile := filepath.Join(dir, "caddy-metrics.password")
	if err := os.WriteFile(passwordFile, []byte(metricsPassword), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := strings.NewReplacer(
		"scrape_interval: 15s", "scrape_interval: 1s",
		"evaluation_interval: 15s", "evaluation_interval: 1s",
		"      username: prometheus\n", "      username: "+metricsUser+"\n",
		"      password_file: caddy-metrics.password\n", "      password_file: "+passwordFile+"\n",
		"          - caddy-1.internal:9180\n", "          - "+targets[0]+"\n",
		"          - caddy-2.internal:9180\n", "          - "+targets[1]+"\n",
		"          - caddy-3.internal:9180\n", "",
	).Replace(string(config))
	if strings.Contains(cfg, "internal:9180\n") || !strings.Contains(cfg, passwordFile) || !strings.Contains(cfg, "evaluation_interval: 1s") {
		t.Fatalf("example/prometheus/prometheus.yml changed shape; update startPrometheus:\n%s", cfg)
	}
	if err := os.WriteFile(filepath.Join(dir, "prometheus.yml"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "rules.yml"), rules, 0o600); err != nil {
		t.Fatal(err)
	}
	// port 0: Prometheus logs the address it got
	cmd := exec.Command(bin, "--config.file="+filepath.Join(dir, "prometheus.yml"),
		"--storage.tsdb.path="+filepath.Join(dir, "data"), "--web.listen-address=127.0.0.1:0", "--log.level=info")
	logs := startProcess(t, cmd, "prometheus")
	addr := waitForLogged(t, logs, "prometheus to listen", regexp.MustCompile(`msg="Listening on" address=(127\.0\.0\.1:\d+)`))
	p := &promServer{url: "http://" + addr}
	poll(t, "prometheus to be ready", func() bool {
		resp, err := http.Get(p.url + "/-/ready")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	return p
}

// promSample is one sample of an instant query's result.
type promSample struct {
	metric map[string]string
	value  float64
}

// query evaluates an instant query through the HTTP API.
func (p *promServer) query(t *testing.T, q string) []promSample {
	t.Helper()
	var body struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			Result []struct {
				Metric map[string]string `json:"metric"`
				Value  [2]any            `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	p.get(t, "/api/v1/query?query="+url.QueryEscape(q), &body)
	if body.Status != "success" {
		t.Fatalf("query %s: %s", q, body.Error)
	}
	var out []promSample
	for _, r := range body.Data.Result {
		var v float64
		if s, ok := r.Value[1].(string); ok {
			_, _ = fmt.Sscan(s, &v)
		}
		out = append(out, promSample{r.Metric, v})
	}
	return out
}

// waitFor evaluates q until done holds for its result.
func (p *promServer) waitFor(t *testing.T, what, q string, done func([]promSample) bool) {
	t.Helper()
	poll(t, what+" in prometheus", func() bool { return done(p.query(t, q)) })
}

// promRules is the body of GET /api/v1/rules.
type promRules struct {
	Data struct {
		Groups []struct {
			Name           string    `json:"name"`
			LastEvaluation time.Time `json:"lastEvaluation"`
			Rules          []struct {
				Name      string `json:"name"`
				Query     string `json:"query"`
				Type      string `json:"type"`
				Health    string `json:"health"`
				LastError string `json:"lastError"`
			} `json:"rules"`
		} `json:"groups"`
	} `json:"data"`
}

// waitForEvaluation waits until every rule group has been evaluated after
// since, so that the recorded series include what was scraped before.
func (p *promServer) waitForEvaluation(t *testing.T, since time.Time) {
	t.Helper()
	poll(t, "prometheus to evaluate every rule group", func() bool {
		var rules promRules
		p.get(t, "/api/v1/rules", &rules)
		for _, g := range rules.Data.Groups {
			if !g.LastEvaluation.After(since) {
				return false
			}
		}
		return len(rules.Data.Groups) > 0
	})
}

// rules checks that every loaded rule is healthy and returns the alerting
// rules' queries by name.
func (p *promServer) rules(t *testing.T) map[string]string {
	t.Helper()
	var rules promRules
	p.get(t, "/api/v1/rules", &rules)
	alerts := map[string]string{}
	n := 0
	for _, g := range rules.Data.Groups {
		for _, r := range g.Rules {
			n++
			if r.Health != "ok" {
				t.Errorf("rule %s in group %s: health %q, %s", r.Name, g.Name, r.Health, r.LastError)
			}
			if r.Type == "alerting" {
				alerts[r.Name] = r.Query
			}
		}
	}
	if n != 20 || len(alerts) != 5 {
		t.Errorf("prometheus loaded %d rules, %d of them alerts; want the 20 and 5 of rules.yml", n, len(alerts))
	}
	return alerts
}

func (p *promServer) get(t *testing.T, path string, into any) {
	t.Helper()
	resp, err := http.Get(p.url + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(resp.Body)
		t.Fatalf("GET %s%s: %d %.300s", p.url, path, resp.StatusCode, body)
	}
	if err := json.NewDecoder(resp.Body).Decode(into); err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
}
