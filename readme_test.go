package mirror

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/cespare/xxhash/v2"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/caddy-mirror/mirror/compare"
)

// adaptCaddyfile adapts a Caddyfile, wrapping a bare directive in a site;
// a block whose first line opens a site address (or the global options)
// is adapted as it is. The wrapping indents the directive by a tab, so
// that a formatted directive makes a formatted site. Any warning, such as
// Caddy's "Caddyfile input is not formatted", fails the test.
func adaptCaddyfile(t *testing.T, src string) {
	t.Helper()
	trimmed := strings.TrimSpace(src)
	firstLine, _, _ := strings.Cut(trimmed, "\n")
	siteBlock := strings.HasSuffix(firstLine, "{") && strings.ContainsAny(strings.Fields(firstLine)[0], ".:")
	if !strings.HasPrefix(trimmed, ":") && !strings.HasPrefix(trimmed, "{") && !siteBlock {
		var b strings.Builder
		b.WriteString(":8080 {\n")
		for line := range strings.SplitSeq(trimmed, "\n") {
			if line != "" {
				b.WriteString("\t" + line)
			}
			b.WriteString("\n")
		}
		b.WriteString("\treverse_proxy 127.0.0.1:9001\n}\n")
		src = b.String()
	}
	_, warnings, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(src), map[string]any{"filename": "Caddyfile"})
	if err != nil {
		t.Errorf("adapting\n%s\nerror: %v", src, err)
	}
	for _, w := range warnings {
		t.Errorf("adapting\n%s\nwarned: %s", src, w.String())
	}
}

// TestIssueFormsAdapt adapts the directive's documented forms, matcher
// token included, as a user's Caddyfile would hold them.
func TestIssueFormsAdapt(t *testing.T) {
	for _, form := range []string{
		"mirror http://127.0.0.1:9002",
		"mirror http://reviews-v2:9080 {\n\tpercent 25\n}",
		"@testing header_regexp User-Agent .*testing.*\nmirror @testing http://reviews-v2:9080",
		"mirror {\n\tto http://reviews-v2:9080 {\n\t\tpercent 10\n\t}\n\tto https://audit.internal {\n\t\tmatch {\n\t\t\tmethod POST PUT\n\t\t}\n\t\theader_up -Authorization\n\t}\n\tmax_body_size 4MB\n}",
	} {
		adaptCaddyfile(t, form)
	}
}

var fence = regexp.MustCompile("(?sm)^```([a-z]*)\n(.*?)^```")

// readmeBlock is one fenced code block of the README.
type readmeBlock struct {
	lang, body string
	line       int // of the opening fence
}

func readmeBlocks(t *testing.T) []readmeBlock {
	t.Helper()
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	var blocks []readmeBlock
	for _, m := range fence.FindAllSubmatchIndex(readme, -1) {
		blocks = append(blocks, readmeBlock{
			lang: string(readme[m[2]:m[3]]),
			body: string(readme[m[4]:m[5]]),
			line: 1 + bytes.Count(readme[:m[0]], []byte("\n")),
		})
	}
	if len(blocks) < 10 {
		t.Fatalf("found %d code blocks in README.md; the fence pattern no longer finds them", len(blocks))
	}
	return blocks
}

// readmeBlock returns the one block of the given language whose body
// contains marker.
func readmeBlockWith(t *testing.T, lang, marker string) readmeBlock {
	t.Helper()
	var found []readmeBlock
	for _, b := range readmeBlocks(t) {
		if b.lang == lang && strings.Contains(b.body, marker) {
			found = append(found, b)
		}
	}
	if len(found) != 1 {
		t.Fatalf("README.md has %d %s blocks containing %q, want 1", len(found), lang, marker)
	}
	return found[0]
}

// TestREADMEConfigsAdapt keeps the README true: every code block has a
// language; every Caddyfile in it is tagged caddyfile, is left unchanged
// by Caddy's formatter (what `caddy fmt` runs) and adapts without a
// warning; and every mirror handler JSON in it provisions and validates.
// The syntax block of "## Caddyfile", with its <placeholders>, is a
// caddyfile block too: it is checked by the formatter, but not adapted.
func TestREADMEConfigsAdapt(t *testing.T) {
	checked, syntax := 0, 0
	for _, b := range readmeBlocks(t) {
		switch b.lang {
		case "":
			t.Errorf("README.md:%d: a code block without a language; tag a Caddyfile ```caddyfile", b.line)
		case "json":
			if !strings.Contains(b.body, `"handler": "mirror"`) {
				continue
			}
			var h Handler
			if err := json.Unmarshal([]byte(b.body), &h); err != nil {
				t.Errorf("README.md:%d: JSON does not decode: %v\n%s", b.line, err, b.body)
				continue
			}
			ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
			if err := h.Provision(ctx); err != nil {
				t.Errorf("README.md:%d: JSON does not provision: %v", b.line, err)
			} else if err := h.Validate(); err != nil {
				t.Errorf("README.md:%d: JSON does not validate: %v", b.line, err)
			}
			_ = h.Cleanup()
			cancel()
			checked++
		case "caddyfile":
			if formatted := string(caddyfile.Format([]byte(b.body))); formatted != b.body {
				t.Errorf("README.md:%d: the Caddyfile is not as caddy fmt writes it:\n%s\nformatted:\n%s", b.line, b.body, formatted)
			}
			if strings.Contains(b.body, "<") {
				syntax++ // the syntax reference: formatted, not adaptable
				continue
			}
			adaptCaddyfile(t, b.body)
			checked++
		}
	}
	if checked < 8 || syntax != 1 {
		t.Errorf("checked %d configs and %d syntax blocks in README.md, want at least 8 and 1", checked, syntax)
	}
}

// TestExampleCaddyfilesFormatted checks that the example Caddyfiles are as
// caddy fmt writes them (adapting them, without a warning, is
// example_test.go's).
func TestExampleCaddyfilesFormatted(t *testing.T) {
	for _, path := range []string{"example/Caddyfile", "example/compare.Caddyfile"} {
		src, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if formatted := caddyfile.Format(src); !bytes.Equal(formatted, src) {
			t.Errorf("%s is not as caddy fmt writes it; formatted:\n%s", path, formatted)
		}
	}
}

// TestREADMESyntaxComplete checks that the syntax block of "## Caddyfile"
// names every subdirective that the parsers (caddyfile.go,
// caddyfile_target.go, compare/caddyfile.go) accept, each at the start of a line.
func TestREADMESyntaxComplete(t *testing.T) {
	syntax := readmeBlockWith(t, "caddyfile", "mirror [<matcher>] [<upstreams...>] {")
	documented := map[string]bool{}
	for line := range strings.SplitSeq(syntax.body, "\n") {
		if f := strings.Fields(line); len(f) > 0 {
			documented[f[0]] = true
		}
	}
	// a subdirective is a case of a parser's switch, or a key of the
	// target option table
	caseLine := regexp.MustCompile(`(?m)^\s*case (".*"):$|^\t\t("[a-z_]+"):\s+parse\w+,$`)
	quoted := regexp.MustCompile(`"([a-z_]+)"`)
	n := 0
	for _, file := range []string{"caddyfile.go", "caddyfile_target.go", "compare/caddyfile.go"} {
		src, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range caseLine.FindAllStringSubmatch(string(src), -1) {
			c[1] += c[2]
			for _, q := range quoted.FindAllStringSubmatch(c[1], -1) {
				n++
				if !documented[q[1]] {
					t.Errorf("%s parses the subdirective %q; README.md:%d's syntax block does not list it", file, q[1], syntax.line)
				}
			}
		}
	}
	if n < 30 {
		t.Errorf("found %d subdirectives in the parser; the pattern no longer finds them", n)
	}
}

// TestREADMEJSONTableComplete checks that the JSON section's table has a
// row for every JSON field of the handler, its targets, their concurrency
// and compare, and none for a field that does not exist.
func TestREADMEJSONTableComplete(t *testing.T) {
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, _ := strings.Cut(string(readme), "\n## JSON\n")
	section, _, _ = strings.Cut(section, "\n## ")
	rows := map[string]bool{}
	for _, m := range regexp.MustCompile("(?m)^\\| `([a-z_.\\[\\]]+)` \\|").FindAllStringSubmatch(section, -1) {
		rows[m[1]] = true
	}
	want := []string{"handler"}
	for _, s := range []struct {
		prefix string
		v      any
	}{
		{"", Handler{}},
		{"targets[].", Target{}},
		{"targets[].concurrency.", Concurrency{}},
		{"targets[].compare.", compare.Config{}},
	} {
		typ := reflect.TypeOf(s.v)
		for i := range typ.NumField() {
			name, _, _ := strings.Cut(typ.Field(i).Tag.Get("json"), ",")
			if name != "" && name != "-" {
				want = append(want, s.prefix+name)
			}
		}
	}
	for _, f := range want {
		if !rows[f] {
			t.Errorf("the JSON table has no row for %s", f)
		}
		delete(rows, f)
	}
	for f := range rows {
		t.Errorf("the JSON table has a row for %s, which is no field", f)
	}
}

// TestREADMEJSONExampleMirrors loads the JSON section's example as the
// mirror handler of a real site, with its upstream pointed at a test
// shadow and nothing else changed, and checks that it mirrors: a request
// its match and sample_by select reaches the shadow, with the header
// edits applied, and is counted mirrored; one that does not match, and
// one whose user is outside the sample, are not copied.
func TestREADMEJSONExampleMirrors(t *testing.T) {
	example := readmeBlockWith(t, "json", `"sample_by"`)
	var handler map[string]any
	if err := json.Unmarshal([]byte(example.body), &handler); err != nil {
		t.Fatal(err)
	}
	targets, _ := handler["targets"].([]any)
	if len(targets) != 1 {
		t.Fatalf("the example has %d targets; this test is written for one", len(targets))
	}
	target := targets[0].(map[string]any)
	transport, _ := target["transport"].(map[string]any)
	if _, tls := transport["tls"]; tls && strings.HasPrefix(target["upstream"].(string), "http://") {
		t.Errorf("the example sets tls on an http:// upstream: every copy would fail")
	}

	rec := recordOutcomes(t)
	primary := newBackend(t, http.StatusOK, "v1")
	shadow := newBackend(t, http.StatusOK, "v2")
	target["upstream"] = shadow.URL
	cfg, _ := json.Marshal(map[string]any{
		"admin": adminJSON(),
		"apps": map[string]any{"http": map[string]any{"servers": map[string]any{"front": map[string]any{
			"listen": []string{frontAddress + ":0"},
			"routes": []any{map[string]any{"handle": []any{
				handler,
				map[string]any{"handler": "reverse_proxy", "upstreams": []any{map[string]any{"dial": primary.addr()}}},
			}}},
		}}}},
	})
	tester := loadConfig(t, cfg, "application/json")
	t.Cleanup(func() { unloadMirrors(tester) })

	// users in and out of the sample, by the documented rule: xxHash64 of
	// the sample_by value below percent of 2^64
	if target["sample_by"] != "{http.request.header.X-User-Id}" {
		t.Fatalf("sample_by is %v; this test sets X-User-Id", target["sample_by"])
	}
	threshold := uint64(target["percent"].(float64) / 100 * math.Exp2(64))
	var in, out string
	for i := 0; in == "" || out == ""; i++ {
		switch id := fmt.Sprint("user-", i); {
		case xxhash.Sum64String(id) < threshold:
			in = cmp.Or(in, id)
		default:
			out = cmp.Or(out, id)
		}
	}
	send := func(path, userAgent, user string) {
		t.Helper()
		req := mustRequest(t, http.MethodGet, frontURL+path)
		req.Header.Set("User-Agent", userAgent)
		req.Header.Set("X-User-Id", user)
		req.Header.Set("Authorization", "Bearer secret")
		if status, body := do(t, tester, req); status != http.StatusOK || body != "v1" {
			t.Fatalf("GET %s: %d %q, want the primary's 200 v1", path, status, body)
		}
	}
	send("/no-match", "Mozilla/5.0", in)
	send("/not-sampled", "Mozilla/5.0 (testing)", out)
	send("/copied", "Mozilla/5.0 (testing)", in)

	if got := receive(t, shadow.seen, "the copy"); got.requestURI != "/copied" || got.header.Get("X-Env") != "shadow" || got.header.Get("Authorization") != "" {
		t.Errorf("the shadow got %s with X-Env %q and Authorization %q, want /copied, shadow and none",
			got.requestURI, got.header.Get("X-Env"), got.header.Get("Authorization"))
	}
	if o := rec.wait(t, 1); o[0].outcome.String() != "mirrored" {
		t.Errorf("outcome %v, want mirrored", o[0].outcome)
	}
	name := target["name"].(string)
	if got := metricValue(t, name, "mirrored"); got != 1 {
		t.Errorf(`caddy_http_mirror_requests_total{target=%q,outcome="mirrored"} = %v, want 1`, name, got)
	}
	unloadMirrors(tester)
	shadow.assertNothingSeen(t, "the shadow, after the copy")
}

// TestREADMERequestBodyLimit checks what the README says of request_body's
// max_size in front of the mirror: a body over it with a Content-Length is
// refused (413) before the mirror runs, so nothing is copied or counted; a
// chunked one is cut off at the limit while the primary reads it, the 413
// passes through, and the copy is counted skipped_body_incomplete. Each is
// followed by a request that is copied, and each outcome is awaited
// before the next request, so that an outcome too many shows.
func TestREADMERequestBodyLimit(t *testing.T) {
	rec := recordOutcomes(t)
	primary := newBackend(t, http.StatusOK, "v1")
	shadow := newBackend(t, http.StatusOK, "shadow")
	tester := loadSites(t, fmt.Sprintf(`
http://:0 {
	bind 127.0.0.1
	request_body {
		max_size 10
	}
	mirror http://%s
	reverse_proxy %s
}
`, shadow.addr(), primary.addr()))
	t.Cleanup(func() { unloadMirrors(tester) })
	body := strings.Repeat("x", 100)
	post := func(path string, known bool) {
		t.Helper()
		var r io.Reader = strings.NewReader(body)
		if !known {
			r = struct{ io.Reader }{r} // no length: sent chunked
		}
		req, _ := http.NewRequest(http.MethodPost, frontURL+path, r)
		if status, _ := do(t, tester, req); status != http.StatusRequestEntityTooLarge {
			t.Errorf("POST %s: %d, want 413", path, status)
		}
	}
	get := func(path string) {
		t.Helper()
		if status, _ := do(t, tester, mustRequest(t, http.MethodGet, frontURL+path)); status != http.StatusOK {
			t.Errorf("GET %s: %d, want 200", path, status)
		}
		if got := receive(t, shadow.seen, "the copy of "+path); got.requestURI != path {
			t.Errorf("the shadow got %s, want %s", got.requestURI, path)
		}
	}
	var got []string
	next := func() { // the outcome of the request just sent
		got = append(got, rec.wait(t, 1)[0].outcome.String())
	}
	post("/with-length", true)
	get("/after-length")
	next()
	post("/chunked", false)
	next()
	get("/after-chunked")
	next()
	if want := []string{"mirrored", "skipped_body_incomplete", "mirrored"}; !slices.Equal(got, want) {
		t.Errorf("outcomes %v, want %v: nothing for the body refused by its Content-Length", got, want)
	}
	target := "http://" + shadow.addr()
	if n := metricValue(t, target, "skipped_body_incomplete"); n != 1 {
		t.Errorf("skipped_body_incomplete = %v, want 1 (the chunked body alone)", n)
	}
	if n := metricValue(t, target, "mirrored"); n != 2 {
		t.Errorf("mirrored = %v, want 2 (the GETs alone)", n)
	}
	unloadMirrors(tester)
	shadow.assertNothingSeen(t, "the shadow, besides the two GETs")
}

// TestREADMEEnvoyHostSuffix loads the Istio section's Caddyfile that gives
// copies Envoy's -shadow Host suffix, and checks the Host the shadow gets.
func TestREADMEEnvoyHostSuffix(t *testing.T) {
	block := readmeBlockWith(t, "caddyfile", "-shadow")
	rec := recordOutcomes(t)
	primary := newBackend(t, http.StatusOK, "v1")
	shadow := newBackend(t, http.StatusOK, "shadow")
	upstream := regexp.MustCompile(`http://reviews-v2:9080`)
	if !upstream.MatchString(block.body) {
		t.Fatalf("README.md:%d: the block does not mirror to http://reviews-v2:9080", block.line)
	}
	directive := upstream.ReplaceAllString(block.body, shadow.URL)
	tester := loadSites(t, "http://:0 {\n\tbind 127.0.0.1\n\t"+strings.ReplaceAll(strings.TrimSpace(directive), "\n", "\n\t")+
		"\n\treverse_proxy "+primary.addr()+"\n}\n")
	t.Cleanup(func() { unloadMirrors(tester) })
	for _, tc := range []struct{ host, want string }{
		{"reviews.default.svc.cluster.local", "reviews.default.svc.cluster.local-shadow"},
		{"reviews:9080", "reviews-shadow"}, // the port is dropped; Envoy keeps it after the suffix
	} {
		req := mustRequest(t, http.MethodGet, frontURL+"/")
		req.Host = tc.host
		if status, _ := do(t, tester, req); status != http.StatusOK {
			t.Fatalf("GET with Host %s: %d", tc.host, status)
		}
		if got := receive(t, shadow.seen, "the copy"); got.host != tc.want {
			t.Errorf("Host %s: the shadow got Host %q, want %q", tc.host, got.host, tc.want)
		}
		rec.wait(t, 1)
	}
}
