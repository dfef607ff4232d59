package mirror

import (
	"fmt"
	"net/http"
	"strings"

	"golang.org/x/net/http/httpguts"
)

// Compare configures how a target's responses are compared with the
// primary's. Comparison happens in the mirror's own goroutines once the
// responses it needs have arrived, never on the request path, and its
// results go to metrics, logs and the admin report (GET /mirror/report).
//
// With NoiseFrom, differences that a second copy of the primary's own
// version (the "secondary") also shows, such as timestamps and random ids,
// are learnt as noise and not reported as regressions.
type Compare struct {
	// The name of another target of the same handler that runs the same
	// version as the primary. Every request copied to this target is also
	// copied to that one, whatever its own matchers and sampling say, and
	// how often it differs from the primary, field by field, is that
	// field's noise rate. Default: none; every difference counts.
	NoiseFrom string `json:"noise_from,omitempty"`

	// Whether to compare the status codes, and for gRPC responses
	// (application/grpc) the grpc-status trailer. When they differ, only
	// the status is reported for that exchange: headers and bodies of
	// different statuses are not compared. Default: true.
	Status *bool `json:"status,omitempty"`

	// The response header fields to compare, by name. Default: none.
	Headers []string `json:"headers,omitempty"`

	// How to compare the bodies, after decoding any gzip, br or zstd
	// Content-Encoding (a body in any other encoding is compared as its
	// encoded bytes, with a body in the same encoding only): "json" compares structurally (key order and number
	// formatting do not matter), "bytes" compares bytes, "auto" uses json
	// when the primary's Content-Type says JSON and bytes otherwise, and
	// "off" does not compare bodies. Default: auto.
	Body string `json:"body,omitempty"`

	// JSON pointers (RFC 6901) to fields that are never compared; a
	// segment "*" matches any array index or object key, as in
	// /items/*/updated_at. Default: none.
	Ignore []string `json:"ignore,omitempty"`

	// The most bytes of each response body, after decoding, that are kept
	// for comparison. An exchange with a larger body is compared by status
	// and headers only, and counted body_truncated. Must not be negative.
	// Default: 1048576 (1 MiB).
	MaxBodySize int64 `json:"max_body_size,omitempty"`

	// How many percentage points a field's difference rate must exceed its
	// noise rate by to be reported as a regression. Only used with
	// noise_from. Must be between 0 and 100. Default: 5.
	Threshold *float64 `json:"threshold,omitempty"`

	// How many of the latest mismatching exchanges to keep for inspection
	// in the report; 0 keeps none. Must not be negative. Default: 50.
	Samples *int `json:"samples,omitempty"`

	// Whether kept samples include the request's query string; they never
	// include request or response credentials. Default: false.
	SamplesIncludeQuery bool `json:"samples_include_query,omitempty"`

	compareStatus bool
	headerNames   []string // canonical
	ignore        []pointerPattern
	threshold     float64
	samples       int
	noise         *Target
}

const (
	defaultCompareBodySize = 1 << 20
	defaultThreshold       = 5
	defaultSamples         = 50
)

// provision sets c's defaults and parses its patterns.
func (c *Compare) provision() {
	c.compareStatus = c.Status == nil || *c.Status
	c.headerNames = c.headerNames[:0]
	for _, name := range c.Headers {
		c.headerNames = append(c.headerNames, http.CanonicalHeaderKey(name))
	}
	if c.Body == "" {
		c.Body = "auto"
	}
	if c.MaxBodySize == 0 {
		c.MaxBodySize = defaultCompareBodySize
	}
	c.threshold = defaultThreshold
	if c.Threshold != nil {
		c.threshold = *c.Threshold
	}
	c.samples = defaultSamples
	if c.Samples != nil {
		c.samples = *c.Samples
	}
	c.ignore = c.ignore[:0]
	for _, p := range c.Ignore {
		c.ignore = append(c.ignore, parsePointerPattern(p))
	}
}

// validate checks c's configured values; it changes nothing.
func (c *Compare) validate() error {
	if c.Body != "" && !validCompareBody(c.Body) {
		return fmt.Errorf("compare.body must be auto, json, bytes or off, got %q", c.Body)
	}
	if c.MaxBodySize < 0 {
		return fmt.Errorf("compare.max_body_size must not be negative, got %d", c.MaxBodySize)
	}
	if c.Threshold != nil && !(*c.Threshold >= 0 && *c.Threshold <= 100) {
		return fmt.Errorf("compare.threshold must be between 0 and 100, got %v", *c.Threshold)
	}
	if c.Samples != nil && *c.Samples < 0 {
		return fmt.Errorf("compare.samples must not be negative, got %d", *c.Samples)
	}
	for i, p := range c.Ignore {
		if err := checkPointer(p); err != nil {
			return fmt.Errorf("compare.ignore[%d]: %q %v", i, p, err)
		}
	}
	for i, name := range c.Headers {
		if err := checkHeaderName(name); err != nil {
			return fmt.Errorf("compare.headers[%d]: %q %v", i, name, err)
		}
	}
	return nil
}

// validCompareBody reports whether v is a value of compare.body.
func validCompareBody(v string) bool {
	switch v {
	case "auto", "json", "bytes", "off":
		return true
	}
	return false
}

// checkPointer checks a JSON pointer of compare.ignore.
func checkPointer(p string) error {
	if p != "" && !strings.HasPrefix(p, "/") {
		return fmt.Errorf("is not a JSON pointer: it must start with /")
	}
	return nil
}

// checkHeaderName checks a header field name of compare.headers.
func checkHeaderName(name string) error {
	if !httpguts.ValidHeaderFieldName(name) {
		return fmt.Errorf("is not a header field name")
	}
	return nil
}

// linkTargets resolves every target's compare.noise_from to the target it
// names, and sizes how much of each target's responses must be kept.
func linkTargets(targets []*Target) error {
	byName := make(map[string]*Target, len(targets))
	for i, t := range targets {
		if other, dup := byName[t.label]; dup && other != t {
			return fmt.Errorf("targets[%d]: name %q is already used by another target; give each target a unique name", i, t.label)
		}
		byName[t.label] = t
	}
	for i, t := range targets {
		if t.Compare == nil {
			continue
		}
		keep := t.Compare.MaxBodySize
		if t.Compare.Body == "off" {
			keep = 0
		}
		t.captures, t.keepBody = true, max(t.keepBody, keep)
		if t.Compare.NoiseFrom == "" {
			continue
		}
		noise, ok := byName[t.Compare.NoiseFrom]
		switch {
		case !ok:
			return fmt.Errorf("targets[%d]: compare.noise_from: no target is named %q", i, t.Compare.NoiseFrom)
		case noise == t:
			return fmt.Errorf("targets[%d]: compare.noise_from: a target cannot be its own noise source", i)
		}
		t.Compare.noise = noise
		noise.captures, noise.keepBody = true, max(noise.keepBody, keep)
	}
	return nil
}
