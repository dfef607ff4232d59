package mirror

import (
	"encoding/json"
	"flag"
	"os"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	_ "github.com/caddyserver/caddy/v2/caddyconfig/caddyfile" // the caddyfile adapter
	_ "github.com/caddyserver/caddy/v2/modules/standard"
)

var update = flag.Bool("update", false, "rewrite the golden JSON files (example/caddy.json, testdata/*.json) from their Caddyfiles")

// TestExampleCaddyfileAdapts is the golden test for the demo: the Caddyfile
// adapts, without warnings, to exactly the JSON in example/caddy.json.
func TestExampleCaddyfileAdapts(t *testing.T) {
	goldenAdapt(t, "example/Caddyfile", "example/caddy.json")
}

// TestPoolCaddyfileAdapts is the golden test for pools: several
// upstreams with a port range, lb_policy with options, h2c and unix
// replicas, upstream placeholders and a dynamic source adapt to exactly
// testdata/pool.json.
func TestPoolCaddyfileAdapts(t *testing.T) {
	goldenAdapt(t, "testdata/pool.Caddyfile", "testdata/pool.json")
}

// goldenAdapt adapts the Caddyfile at path, without warnings, and checks
// that it is exactly the JSON at golden (rewritten first with -update).
func goldenAdapt(t *testing.T, path, golden string) {
	t.Helper()
	adapted := adaptFile(t, path)
	if *update {
		var v any
		_ = json.Unmarshal(adapted, &v)
		out, _ := json.MarshalIndent(v, "", "\t")
		if err := os.WriteFile(golden, append(out, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := normalizeJSON(t, string(adapted)), normalizeJSON(t, string(want)); got != want {
		t.Errorf("%s adapts to\n%s\nwant %s\n%s\n(run go test -run %s -update)", path, got, golden, want, t.Name())
	}
}

// TestExampleJSONValidates loads and provisions example/caddy.json, as
// POST /load would, without starting its servers.
func TestExampleJSONValidates(t *testing.T) {
	raw, err := os.ReadFile("example/caddy.json")
	if err != nil {
		t.Fatal(err)
	}
	var cfg caddy.Config
	if err := json.Unmarshal(raw, &cfg); err != nil {
		t.Fatalf("decoding example/caddy.json: %v", err)
	}
	if err := caddy.Validate(&cfg); err != nil {
		t.Errorf("example/caddy.json does not validate: %v", err)
	}
}

// TestCompareExampleLoads adapts example/compare.Caddyfile without
// warnings and validates the result, as `caddy run` would.
func TestCompareExampleLoads(t *testing.T) {
	adapted := adaptFile(t, "example/compare.Caddyfile")
	var cfg caddy.Config
	if err := json.Unmarshal(adapted, &cfg); err != nil {
		t.Fatal(err)
	}
	if err := caddy.Validate(&cfg); err != nil {
		t.Errorf("example/compare.Caddyfile does not validate: %v", err)
	}
}

// adaptFile adapts the Caddyfile at path, failing the test on an error or
// a warning.
func adaptFile(t *testing.T, path string) []byte {
	t.Helper()
	src, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	adapted, warnings, err := caddyconfig.GetAdapter("caddyfile").Adapt(src, map[string]any{"filename": path})
	if err != nil {
		t.Fatalf("adapting %s: %v", path, err)
	}
	if len(warnings) > 0 {
		t.Errorf("adapting %s warned: %v", path, warnings)
	}
	return adapted
}
