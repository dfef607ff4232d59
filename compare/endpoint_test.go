package compare

import (
	"fmt"
	"net/http"
	"testing"

	"go.uber.org/zap"
)

// newTestComparer returns the comparison of a target named name under
// cfg, with a report of its own.
func newTestComparer(t *testing.T, name string, cfg *Config) *Comparer {
	t.Helper()
	c, err := NewComparer(cfg, name, "http://"+name, nil, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// exchangeOf is a compared exchange of method and path.
func exchangeOf(method, path string) *Exchange {
	return &Exchange{method: method, path: path}
}

func TestEndpointOf(t *testing.T) {
	cfg := &Config{Endpoints: []string{"GET /users/{id}", "/files/{path...}", "POST /users/{id}/avatar"}}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	cfg.Provision()
	for _, tc := range []struct {
		name, method, path, hint string
		grpc                     bool
		want                     string
	}{
		{"pattern", "GET", "/users/7", "", false, "GET /users/{id}"},
		{"pattern matches HEAD for GET", "HEAD", "/users/7", "", false, "GET /users/{id}"},
		{"pattern without method", "PUT", "/files/a/b.txt", "", false, "PUT /files/{path...}"},
		{"escaped path", "GET", "/users/a%2Fb", "", false, "GET /users/{id}"},
		{"no pattern: learnt", "DELETE", "/users/7", "", false, ""},
		{"hint first", "GET", "/users/7", "user", false, "GET user"},
		{"grpc method", "POST", "/reviews.Reviews/Get", "", true, "POST /reviews.Reviews/Get"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := cfg.namedEndpoint(tc.method, tc.path, tc.hint, tc.grpc); got != tc.want {
				t.Errorf("namedEndpoint(%s %s) = %q, want %q", tc.method, tc.path, got, tc.want)
			}
		})
	}
}

func TestEndpoints_Validate(t *testing.T) {
	for _, p := range []string{"users/{id}", "GET example.com/users", "GET /users/{id", "GET /a/{x}/{x}"} {
		if err := (&Config{Endpoints: []string{p}}).Validate(); err == nil {
			t.Errorf("Validate(endpoints %q) = nil, want an error", p)
		}
	}
	if err := (&Config{Endpoints: []string{"GET /a/{x}", "GET /a/{y}"}}).Validate(); err == nil {
		t.Error("Validate(two patterns that conflict) = nil, want an error")
	}
}

// TestEndpoints_Verdicts is the case in the package: a candidate
// renames /name in users only. Over the target, /name differs in a third
// of the exchanges, diluted; on /users/{id}, in all of them.
func TestEndpoints_Verdicts(t *testing.T) {
	c := newTestComparer(t, "endpoints-verdicts", &Config{NoiseFrom: "secondary", Threshold: ptr(50.0)})
	for i := range 120 {
		kind := []string{"users", "products", "slow"}[i%3]
		doc := func(key string) *Response {
			return capturedJSON(fmt.Appendf(nil, `{"id":%d,%q:"x"}`, i, key))
		}
		shadow := doc("name")
		if kind == "users" {
			shadow = doc("full_name")
		}
		c.judge(exchangeOf(http.MethodGet, fmt.Sprintf("/%s/%d", kind, i)), doc("name"), shadow, doc("name"))
	}
	rep := c.report.snapshot("endpoints-verdicts")
	if len(rep.Endpoints) != 3 {
		t.Fatalf("%d endpoints, want 3: %+v", len(rep.Endpoints), rep.Endpoints)
	}
	users := rep.Endpoints[0]
	if users.Endpoint != "GET /users/{id}" || users.Verdict != VerdictRegression || users.Mismatches != 40 {
		t.Errorf("first endpoint %s: verdict %q, %d mismatches, want GET /users/{id}, a regression in all 40", users.Endpoint, users.Verdict, users.Mismatches)
	}
	for _, e := range rep.Endpoints[1:] {
		if e.Verdict != "" || e.Mismatches != 0 || e.Compared != 40 {
			t.Errorf("%s: verdict %q, %d mismatches of %d, want none of 40", e.Endpoint, e.Verdict, e.Mismatches, e.Compared)
		}
	}
	// pooled, /name differs in 33% of exchanges, under the 50-point
	// threshold; the target's verdict is still its endpoint's
	for _, f := range rep.Fields {
		if f.Field == "/name" && f.Verdict != VerdictRegression {
			t.Errorf("target field /name: %s at %.0f%%, want a regression, as on /users/{id}", f.Verdict, f.RawPercent)
		}
	}
	if len(users.Samples) == 0 || users.Samples[0].Endpoint != users.Endpoint {
		t.Errorf("users samples %+v, want the endpoint's", users.Samples)
	}
}

// TestEndpoints_Bound sends more endpoints than max_endpoints: the rest
// are counted as one.
func TestEndpoints_Bound(t *testing.T) {
	c := newTestComparer(t, "endpoints-bound", &Config{MaxEndpoints: 4, Endpoints: []string{"/{x}"}, EndpointFrom: "unused"})
	same := capturedJSON([]byte(`{}`))
	for i := range 10 {
		ex := exchangeOf(http.MethodGet, "/x")
		shadow := capturedJSON([]byte(`{}`))
		shadow.endpointHint = fmt.Sprintf("resource-%d", i)
		c.judge(ex, same, shadow, nil)
	}
	rep := c.report.snapshot("endpoints-bound")
	if len(rep.Endpoints) != 5 {
		t.Fatalf("%d endpoints, want 4 and %s", len(rep.Endpoints), otherEndpoints)
	}
	if other := rep.Endpoints[0]; other.Endpoint != otherEndpoints || other.Compared != 6 {
		t.Errorf("largest endpoint %s with %d, want %s with 6", other.Endpoint, other.Compared, otherEndpoints)
	}
}

func ptr[T any](v T) *T { return &v }
