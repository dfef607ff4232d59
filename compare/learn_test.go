package compare

import (
	"fmt"
	weakrand "math/rand/v2"
	"runtime"
	"strings"
	"testing"
)

func TestPathTemplate(t *testing.T) {
	for _, tc := range []struct {
		name, path, want string
	}{
		{"root", "/", "/"},
		{"literal", "/health", "/health"},
		{"number", "/users/42", "/users/{id}"},
		{"nested", "/users/42/orders/1001", "/users/{id}/orders/{id}"},
		{"uuid", "/orders/3f2504e0-4f89-11d3-9a0c-0305e82c3301/items", "/orders/{uuid}/items"},
		{"date", "/reports/2026-01-31", "/reports/{date}"},
		{"datetime", "/events/2026-01-31T10:00:00Z", "/events/{date}"},
		{"hex token", "/blobs/9f86d081884c7d659a2feaa0c55ad015", "/blobs/{token}"},
		{"base64 token", "/share/aGVsbG8gd29ybGQhIQ2Xy_Zk", "/share/{token}"},
		{"slug stays", "/blog/my-first-post", "/blog/my-first-post"},
		{"file extension", "/invoices/1234.pdf", "/invoices/{id}.pdf"},
		{"static file", "/static/app.js", "/static/app.js"},
		{"v1 prefix kept", "/v1/products/17", "/v1/products/{id}"},
		{"v2beta prefix kept", "/v2beta/users/7/avatar.png", "/v2beta/users/{id}/avatar.png"},
		{"year", "/archive/2024/05", "/archive/{id}/{id}"},
		{"trailing slash", "/users/", "/users/"},
		{"short hex word", "/cafe/beef", "/cafe/beef"},
		{"long word", "/documentation", "/documentation"},
		{"deep", "/a/b/c/d/e/f/g/h/i/j/k/l/m/n/o/p/q/r", "/a/b/c/d/e/f/g/h/i/j/k/l/m/n/o/p/{rest...}"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, _, ok := newPathLearner(defaultCardinality).learn("GET", tc.path)
			if !ok || got != tc.want {
				t.Errorf("learn(%q) = %q, %v, want %q", tc.path, got, ok, tc.want)
			}
		})
	}
}

func TestPathTemplate_Cardinality(t *testing.T) {
	l := newPathLearner(3)
	var got []string
	for _, slug := range []string{"red", "green", "blue", "cyan"} {
		tmpl, _, _ := l.learn("GET", "/colors/"+slug+"/swatch.png")
		got = append(got, tmpl)
	}
	want := []string{"/colors/red/swatch.png", "/colors/green/swatch.png", "/colors/blue/swatch.png", "/colors/{param}/swatch.png"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("learnt %q, want %q", got, want)
	}
	if c := l.canonical("GET", "/colors/red/swatch.png"); c != "/colors/{param}/swatch.png" {
		t.Errorf("canonical(/colors/red/swatch.png) = %q, want /colors/{param}/swatch.png", c)
	}
	if c := l.canonical("GET", "/colors"); c != "/colors" {
		t.Errorf("canonical(/colors) = %q, want /colors", c)
	}
}

// TestPathTemplate_ThreeEndpoints learns 10,000 distinct paths of three
// endpoints, one of them with slugs that only cardinality tells apart,
// into three templates.
func TestPathTemplate_ThreeEndpoints(t *testing.T) {
	r := new(comparisonReport)
	r.configure("", provisioned(&Config{}))
	for i := range 10000 {
		var path string
		switch i % 3 {
		case 0:
			path = fmt.Sprintf("/v1/users/%d", i)
		case 1:
			path = fmt.Sprintf("/v1/orders/%d/items/%x", i, weakrand.Uint64()|1<<63|0xf)
		default:
			path = fmt.Sprintf("/v1/articles/article-%s-%d", []string{"red", "green", "blue"}[i%7%3], i)
		}
		r.record(&observation{method: "GET", path: path})
	}
	var got []string
	for name := range r.endpoints {
		got = append(got, name)
	}
	want := map[string]bool{"GET /v1/users/{id}": true, "GET /v1/orders/{id}/items/{token}": true, "GET /v1/articles/{param}": true}
	if len(got) != len(want) {
		t.Fatalf("endpoints %q, want %d: %v", got, len(want), want)
	}
	for _, name := range got {
		if !want[name] {
			t.Errorf("endpoint %q, want one of %v", name, want)
		}
	}
	if n := r.endpoints["GET /v1/articles/{param}"].compared; n != 3333 {
		t.Errorf("GET /v1/articles/{param} has %d exchanges, want 3333: the merged slugs' counts", n)
	}
}

// learnerMemoryBound is the memory a target's learnt templates may take,
// as the README states.
const learnerMemoryBound = 1 << 20

// TestPathTemplate_Bound learns 100,000 distinct random paths, and
// 100,000 whose every position takes just fewer values than make it a
// parameter, and stays within maxLearnedNodes nodes and
// learnerMemoryBound bytes of heap.
func TestPathTemplate_Bound(t *testing.T) {
	const letters = "abcdefghijklmnopqrstuvwxyz-_"
	random := func(int) string {
		b := make([]byte, 1+weakrand.IntN(12))
		for i := range b {
			b[i] = letters[weakrand.IntN(len(letters))]
		}
		return string(b)
	}
	underCardinality := func(depth int) string {
		// 31 values of 64 bytes at each position, one under the default
		return fmt.Sprintf("%s-%02d", strings.Repeat(letters[depth:depth+1], maxLiteralSegment-3), weakrand.IntN(defaultCardinality-1))
	}
	for name, segment := range map[string]func(int) string{"random": random, "under cardinality": underCardinality} {
		t.Run(name, func(t *testing.T) {
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			l := newPathLearner(defaultCardinality)
			learnt := 0
			for range 100000 {
				path := ""
				for depth := range 1 + weakrand.IntN(6) {
					path += "/" + segment(depth)
				}
				if _, _, ok := l.learn([]string{"GET", "POST"}[weakrand.IntN(2)], path); ok {
					learnt++
				}
			}
			runtime.GC()
			runtime.ReadMemStats(&after)
			runtime.KeepAlive(l)
			if l.nodes > maxLearnedNodes {
				t.Errorf("%d nodes, want at most %d", l.nodes, maxLearnedNodes)
			}
			grew := int64(after.HeapAlloc) - int64(before.HeapAlloc)
			if grew > learnerMemoryBound {
				t.Errorf("heap grew by %d bytes, want at most %d", grew, learnerMemoryBound)
			}
			t.Logf("%d nodes, %d of 100000 paths learnt, heap %+d bytes", l.nodes, learnt, grew)
		})
	}
}

// provisioned returns c provisioned.
func provisioned(c *Config) *Config {
	c.Provision()
	return c
}
