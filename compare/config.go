// Package compare compares a shadow's responses with the primary's, field
// by field, off the request path, Diffy style: it captures the responses,
// decodes their bodies, diffs them (JSON structurally, gRPC by status and
// message), tells regressions from the noise that a second copy of the
// primary's version shows, and keeps what it finds in a report per target
// (served by the admin API and the mirror_report handler) and in
// Prometheus series.
//
// The mirror handler meets it through a narrow surface:
//
//   - Config, a target's "compare" config;
//   - Comparer, one target's comparison, made from its config, name and
//     the config's metrics registry;
//   - Exchange, one request whose responses are compared: it wraps the
//     primary's response writer to capture its response, and holds a
//     Response for each copy that is compared or supplies noise;
//   - Comparer.Compare, called once per finished copy.
package compare

import (
	"fmt"
	"net/http"
	"strings"
	"time"

	"golang.org/x/net/http/httpguts"

	"github.com/caddyserver/caddy/v2"
)

// Config configures how a target's responses are compared with the
// primary's. Comparison happens in the mirror's own goroutines once the
// responses it needs have arrived, never on the request path, and its
// results go to metrics, logs and the admin report (GET /mirror/report).
//
// With NoiseFrom, differences that a second copy of the primary's own
// version (the "secondary") also shows, such as timestamps and random ids,
// are learnt as noise and not reported as regressions.
type Config struct {
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

	// Endpoint patterns, in net/http.ServeMux's syntax ("GET
	// /users/{id}", "/static/{file...}"; no host): an exchange whose
	// request matches one is counted under that endpoint, by ServeMux's
	// precedence; a pattern without a method is named with the request's
	// method. Default: none; templates are learnt from the paths.
	Endpoints []string `json:"endpoints,omitempty"`

	// A placeholder that names the request's endpoint, such as
	// {http.request.header.Canonical-Resource}; when it is empty for a
	// request, the patterns and learning apply. Default: none.
	EndpointFrom string `json:"endpoint_from,omitempty"`

	// How many endpoints the target counts; the exchanges of further
	// endpoints are counted under "(other endpoints)". Must be between 1
	// and 1000. Default: 64.
	MaxEndpoints int `json:"max_endpoints,omitempty"`

	// How many distinct literal values a path segment may take under the
	// same prefix before the learnt templates make it a parameter,
	// {param}. Segments that look like ids (numbers, UUIDs, dates, long
	// hex or base64 tokens) are parameters from the start. Must not be
	// negative. Default: 32.
	EndpointCardinality int `json:"endpoint_cardinality,omitempty"`

	// By how many percent an endpoint's median latency must differ from
	// the primary's, and from the noise target's with noise_from, to be a
	// latency regression or improvement. Must not be negative. Default: 10.
	LatencyThreshold *float64 `json:"latency_threshold,omitempty"`

	// By how much an endpoint's median latency must differ, besides
	// latency_threshold, to be a latency regression or improvement. Must
	// not be negative. Default: 5ms.
	LatencyMinDifference caddy.Duration `json:"latency_min_difference,omitempty"`

	// How many exchanges an endpoint needs, on each side, before its
	// latency is judged. Must be at least 5. Default: 20.
	LatencyMinSamples int `json:"latency_min_samples,omitempty"`

	// What kept samples and mismatch log lines must not show: JSON
	// pointers (a "*" segment matches any array index or object key),
	// whose values and everything under them are replaced with
	// "[redacted]", and response header names, whose values are. The
	// fields are still compared. The values of Authorization,
	// Proxy-Authorization, Cookie and Set-Cookie are always redacted.
	// Default: none besides those.
	Redact []string `json:"redact,omitempty"`

	compareStatus bool
	headerNames   []string // canonical
	ignore        []pointerPattern
	threshold     float64
	samples       int
	endpointMux   *http.ServeMux
	latency       latencyThresholds
	redaction     redaction
}

const (
	defaultCompareBodySize = 1 << 20
	defaultThreshold       = 5
	defaultSamples         = 50
	defaultLatencyPercent  = 10
	defaultLatencyMinDiff  = 5 * time.Millisecond
	defaultLatencySamples  = 20
)

// Provision sets c's defaults and parses its patterns.
func (c *Config) Provision() {
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
	c.redaction = newRedaction(c.Redact)
	c.endpointMux, _ = compileEndpoints(c.Endpoints) // Validate reports its error
	if c.MaxEndpoints == 0 {
		c.MaxEndpoints = defaultMaxEndpoints
	}
	if c.EndpointCardinality == 0 {
		c.EndpointCardinality = defaultCardinality
	}
	c.latency = latencyThresholds{percent: defaultLatencyPercent, minDiff: defaultLatencyMinDiff, minSamples: defaultLatencySamples}
	if c.LatencyThreshold != nil {
		c.latency.percent = *c.LatencyThreshold
	}
	if c.LatencyMinDifference != 0 {
		c.latency.minDiff = time.Duration(c.LatencyMinDifference)
	}
	if c.LatencyMinSamples != 0 {
		c.latency.minSamples = c.LatencyMinSamples
	}
}

// Validate checks c's configured values; it changes nothing. Its errors
// name the fields as compare.<field>.
func (c *Config) Validate() error {
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
	for i, v := range c.Redact {
		if err := checkRedact(v); err != nil {
			return fmt.Errorf("compare.redact[%d]: %q %v", i, v, err)
		}
	}
	if _, err := compileEndpoints(c.Endpoints); err != nil {
		return err
	}
	if c.MaxEndpoints < 0 || c.MaxEndpoints > maxMaxEndpoints {
		return fmt.Errorf("compare.max_endpoints must be between 1 and %d, got %d", maxMaxEndpoints, c.MaxEndpoints)
	}
	if c.EndpointCardinality < 0 {
		return fmt.Errorf("compare.endpoint_cardinality must not be negative, got %d", c.EndpointCardinality)
	}
	if c.LatencyThreshold != nil && !(*c.LatencyThreshold >= 0) {
		return fmt.Errorf("compare.latency_threshold must not be negative, got %v", *c.LatencyThreshold)
	}
	if c.LatencyMinDifference < 0 {
		return fmt.Errorf("compare.latency_min_difference must not be negative, got %v", time.Duration(c.LatencyMinDifference))
	}
	if c.LatencyMinSamples != 0 && c.LatencyMinSamples < minLatencySamples {
		return fmt.Errorf("compare.latency_min_samples must be at least %d, got %d", minLatencySamples, c.LatencyMinSamples)
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

// checkRedact checks a value of compare.redact: a JSON pointer, or a
// header field name.
func checkRedact(v string) error {
	if strings.HasPrefix(v, "/") {
		return nil
	}
	if checkHeaderName(v) != nil {
		return fmt.Errorf("is neither a JSON pointer nor a header field name")
	}
	return nil
}

// KeepBody is how many bytes of each response body the comparison needs.
func (c *Config) KeepBody() int64 {
	if c.Body == "off" {
		return 0
	}
	return c.MaxBodySize
}
