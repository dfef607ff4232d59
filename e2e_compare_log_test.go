package mirror

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/caddy-mirror/mirror/compare"
)

// TestMismatchLogLine checks the structured line that a mismatch writes,
// as a log pipeline (Loki, Elasticsearch) receives it from Caddy's JSON
// logs: self-contained, with the target, method, path, both statuses and
// the differences with their verdicts; no query and no credential.
func TestMismatchLogLine(t *testing.T) {
	logFile := filepath.Join(t.TempDir(), "mirror.log")
	globals := caddyfileGlobals(fmt.Sprintf("log mirror {\n\toutput file %s\n\tformat json\n\tinclude http.handlers.mirror\n}", logFile))
	primary, secondary, candidate := newReviewsService(t, false), newReviewsService(t, false), newReviewsService(t, true)
	rec := recordOutcomes(t)
	tester := loadConfig(t, []byte(globals+fmt.Sprintf(diffyCaddyfile, secondary.URL, candidate.URL, strings.TrimPrefix(primary.URL, "http://"))), "text/caddyfile")
	defer unloadMirrors(tester)

	req := mustRequest(t, http.MethodGet, frontURL+"/fail?token=query-secret")
	req.Header.Set("Authorization", "Bearer auth-secret")
	do(t, tester, req)
	rec.wait(t, 2)

	f, err := os.Open(logFile)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var line string
	for sc := bufio.NewScanner(f); sc.Scan(); {
		if strings.Contains(sc.Text(), `"msg":"mirror response differs"`) {
			line = sc.Text()
		}
	}
	var entry struct {
		Logger        string `json:"logger"`
		Target        string `json:"target"`
		Method        string `json:"method"`
		URI           string `json:"uri"`
		PrimaryStatus int    `json:"primary_status"`
		ShadowStatus  int    `json:"shadow_status"`
		Differences   []struct {
			Field   string `json:"field"`
			Pointer string `json:"pointer"`
			Primary string `json:"primary"`
			Shadow  string `json:"shadow"`
			Verdict string `json:"verdict"`
		} `json:"differences"`
	}
	if err := json.Unmarshal([]byte(line), &entry); err != nil {
		t.Fatalf("no mismatch line in the log (%v): %q", err, line)
	}
	if entry.Logger != "http.handlers.mirror" || entry.Target != "candidate" || entry.Method != http.MethodGet ||
		entry.URI != "/fail" || entry.PrimaryStatus != 200 || entry.ShadowStatus != 500 {
		t.Errorf("mismatch line %+v, want the candidate's GET /fail, 200 → 500, without the query", entry)
	}
	if len(entry.Differences) != 1 || entry.Differences[0].Field != "status" || entry.Differences[0].Verdict != compare.VerdictRegression {
		t.Errorf("differences %+v, want the status, a regression", entry.Differences)
	}
	for _, secret := range []string{"query-secret", "auth-secret"} {
		if strings.Contains(line, secret) {
			t.Errorf("the mismatch line holds %q: %s", secret, line)
		}
	}
}
