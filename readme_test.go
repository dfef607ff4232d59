package mirror

import (
	"context"
	"encoding/json"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
)

// adaptCaddyfile adapts a Caddyfile, wrapping a bare directive in a site;
// a block whose first line opens a site address is adapted as it is.
func adaptCaddyfile(t *testing.T, src string) {
	t.Helper()
	trimmed := strings.TrimSpace(src)
	firstLine, _, _ := strings.Cut(trimmed, "\n")
	siteBlock := strings.HasSuffix(firstLine, "{") && strings.ContainsAny(strings.Fields(firstLine)[0], ".:")
	if !strings.HasPrefix(trimmed, ":") && !strings.HasPrefix(trimmed, "{") && !siteBlock {
		src = ":8080 {\n" + src + "\n\treverse_proxy 127.0.0.1:9001\n}\n"
	}
	if _, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(src), nil); err != nil {
		t.Errorf("adapting\n%s\nerror: %v", src, err)
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

var fence = regexp.MustCompile("(?s)```([a-z]*)\n(.*?)```")

// TestREADMEConfigsAdapt keeps the README true: every Caddyfile in it
// adapts, and every mirror handler JSON in it provisions and validates.
// The syntax block, with its <placeholders>, is left out.
func TestREADMEConfigsAdapt(t *testing.T) {
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	checked := 0
	for _, m := range fence.FindAllStringSubmatch(string(readme), -1) {
		lang, body := m[1], m[2]
		switch {
		case lang == "json" && strings.Contains(body, `"handler": "mirror"`):
			var h Handler
			if err := json.Unmarshal([]byte(body), &h); err != nil {
				t.Errorf("README JSON does not decode: %v\n%s", err, body)
				continue
			}
			ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
			if err := h.Provision(ctx); err != nil {
				t.Errorf("README JSON does not provision: %v", err)
			} else if err := h.Validate(); err != nil {
				t.Errorf("README JSON does not validate: %v", err)
			}
			_ = h.Cleanup()
			cancel()
			checked++
		case lang == "" && strings.Contains(body, "mirror") && !strings.Contains(body, "<"):
			adaptCaddyfile(t, body)
			checked++
		}
	}
	if checked < 3 {
		t.Errorf("checked %d configs in README.md; the fence pattern no longer finds them", checked)
	}
}
