package mirror

import (
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

func ptr[T any](v T) *T { return &v }

// sampleRequest returns a request prepared as Caddy's server prepares one,
// with the header X-User-Id set to user when it is not empty.
func sampleRequest(user string) *http.Request {
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	if user != "" {
		r.Header.Set("X-User-Id", user)
	}
	return caddyhttp.PrepareRequest(r, caddy.NewReplacer(), httptest.NewRecorder(), nil)
}

// withinBinomial reports whether k successes out of n trials are within
// six standard deviations of n*p: a false alarm has odds below 1e-8.
func withinBinomial(k, n int, p float64) bool {
	mean := float64(n) * p
	sd := math.Sqrt(float64(n) * p * (1 - p))
	return math.Abs(float64(k)-mean) <= 6*sd+1
}

func TestSamplerPercent(t *testing.T) {
	const n = 400_000
	r := sampleRequest("")
	for _, tc := range []struct {
		name    string
		percent *float64
	}{
		{"absent means all", nil},
		{"100", ptr(100.0)},
		{"0", ptr(0.0)},
		{"50", ptr(50.0)},
		{"25", ptr(25.0)},
		{"1", ptr(1.0)},
		{"0.01", ptr(0.01)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newSampler(tc.percent, "", 0, now)
			k := 0
			for range n {
				if s.sampled(r) {
					k++
				}
			}
			p := 1.0
			if tc.percent != nil {
				p = *tc.percent / 100
			}
			switch p {
			case 0, 1:
				if want := int(p * n); k != want {
					t.Errorf("sampled(%d requests) = %d, want exactly %d", n, k, want)
				}
			default:
				if !withinBinomial(k, n, p) {
					t.Errorf("sampled(%d requests) = %d, want about %.0f", n, k, p*n)
				}
			}
		})
	}
}

func TestSamplerOff(t *testing.T) {
	if !newSampler(ptr(0.0), "", 0, now).off() {
		t.Error("off() with percent 0 = false, want true")
	}
	if newSampler(ptr(0.01), "", 0, now).off() {
		t.Error("off() with percent 0.01 = true, want false")
	}
}

func TestSamplerStickyByKey(t *testing.T) {
	const users = 100_000
	key := "{http.request.header.X-User-Id}"
	s := newSampler(ptr(25.0), key, 0, now)
	other := newSampler(ptr(25.0), key, 0, now) // another Caddy instance
	wider := newSampler(ptr(50.0), key, 0, now)

	in := 0
	for i := range users {
		user := fmt.Sprintf("user-%d", i)
		first := s.sampled(sampleRequest(user))
		for range 3 {
			if got := s.sampled(sampleRequest(user)); got != first {
				t.Fatalf("sampled(%s) = %v, then %v: not sticky", user, first, got)
			}
		}
		if got := other.sampled(sampleRequest(user)); got != first {
			t.Fatalf("sampled(%s) on another instance = %v, want %v", user, got, first)
		}
		if first && !wider.sampled(sampleRequest(user)) {
			t.Fatalf("sampled(%s) at 25%% but not at 50%%: raising percent must only add users", user)
		}
		if first {
			in++
		}
	}
	if !withinBinomial(in, users, 0.25) {
		t.Errorf("sampled %d of %d distinct users, want about %d", in, users, users/4)
	}
}

func TestSamplerEmptyKeyFallsBackToRandom(t *testing.T) {
	const n = 100_000
	s := newSampler(ptr(50.0), "{http.request.header.X-User-Id}", 0, now)
	r := sampleRequest("") // the placeholder is empty
	k := 0
	for range n {
		if s.sampled(r) {
			k++
		}
	}
	if !withinBinomial(k, n, 0.5) {
		t.Errorf("sampled(%d requests with no key) = %d, want about %d", n, k, n/2)
	}
}

func TestSamplerMaxRate(t *testing.T) {
	clock := time.Unix(1_700_000_000, 0)
	setClock(func() time.Time { return clock })
	t.Cleanup(func() { setClock(time.Now) })

	s := newSampler(nil, "", 200, now)
	allowed := func(tries int) int {
		n := 0
		for range tries {
			if s.allow() {
				n++
			}
		}
		return n
	}
	if got := allowed(1000); got != 200 {
		t.Errorf("allow() in the first instant = %d of 1000, want the burst of 200", got)
	}
	clock = clock.Add(500 * time.Millisecond)
	if got := allowed(1000); got != 100 {
		t.Errorf("allow() after 500ms = %d, want 100", got)
	}
	clock = clock.Add(10 * time.Second)
	if got := allowed(1000); got != 200 {
		t.Errorf("allow() after 10s idle = %d, want the burst of 200", got)
	}

	uncapped := newSampler(nil, "", 0, now)
	for i := range 10_000 {
		if !uncapped.allow() {
			t.Fatalf("allow() with no cap = false at try %d", i)
		}
	}

	slow := newSampler(nil, "", 0.5, now) // one copy every 2s
	if !slow.allow() || slow.allow() {
		t.Error("max_rate 0.5 should allow one copy, then none")
	}
	clock = clock.Add(2 * time.Second)
	if !slow.allow() {
		t.Error("max_rate 0.5 should allow a copy after 2s")
	}
}
