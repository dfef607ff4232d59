package compare

import (
	"math"
	"strconv"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/caddy-mirror/mirror/internal/parse"
)

// UnmarshalCaddyfile sets up c from the block of a target's compare
// subdirective, whose token is the dispenser's current one:
//
//	compare {
//	    noise_from             <name>
//	    status                 <true|false>
//	    headers                <fields...>
//	    body                   auto|json|bytes|off
//	    ignore                 <json-pointers...>
//	    max_body_size          <size>
//	    threshold              <percentage-points>
//	    samples                <n>
//	    samples_include_query
//	    redact                 <json-pointers|header-names...>
//	    endpoint               [<method>] <path-pattern>
//	    endpoint_from          <placeholder>
//	    max_endpoints          <n>
//	    endpoint_cardinality   <n>
//	    latency_threshold      <percent>
//	    latency_min_difference <duration>
//	    latency_min_samples    <n>
//	}
//
// Each value is checked as it is read, so that caddy adapt reports it
// with its line.
func (c *Config) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	if d.NextArg() {
		return d.ArgErr()
	}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		if err := c.unmarshalOption(d); err != nil {
			return err
		}
	}
	return nil
}

// unmarshalOption parses the compare option at the dispenser's current
// token into c, and checks it.
func (c *Config) unmarshalOption(d *caddyfile.Dispenser) error {
	name := d.Val()
	switch name {
	case "headers", "ignore", "redact":
		args := d.RemainingArgs()
		if len(args) == 0 {
			return d.ArgErr()
		}
		for _, a := range args {
			check := map[string]func(string) error{"headers": checkHeaderName, "ignore": checkPointer, "redact": checkRedact}[name]
			if err := check(a); err != nil {
				return d.Errf("invalid %s '%s': %v", name, a, err)
			}
		}
		switch name {
		case "headers":
			c.Headers = append(c.Headers, args...)
		case "ignore":
			c.Ignore = append(c.Ignore, args...)
		default:
			c.Redact = append(c.Redact, args...)
		}
		return nil
	case "endpoint":
		args := d.RemainingArgs()
		if len(args) < 1 || len(args) > 2 {
			return d.ArgErr()
		}
		p := strings.Join(args, " ")
		if err := checkEndpoint(p); err != nil {
			return d.Errf("invalid endpoint '%s': %v", p, err)
		}
		c.Endpoints = append(c.Endpoints, p)
		return nil
	case "samples_include_query":
		c.SamplesIncludeQuery = true
		if d.NextArg() {
			return d.ArgErr()
		}
		return nil
	case "noise_from", "status", "body", "max_body_size", "threshold", "samples",
		"endpoint_from", "max_endpoints", "endpoint_cardinality", "latency_threshold", "latency_min_difference", "latency_min_samples":
	default:
		return d.Errf("unrecognized compare option '%s'", name)
	}
	val, err := parse.OneArg(d)
	if err != nil {
		return err
	}
	switch name {
	case "noise_from":
		c.NoiseFrom = val
	case "status":
		b, err := strconv.ParseBool(val)
		if err != nil {
			return d.Errf("invalid status '%s': must be true or false", val)
		}
		c.Status = &b
	case "body":
		if !validCompareBody(val) {
			return d.Errf("invalid body '%s': must be auto, json, bytes or off", val)
		}
		c.Body = val
	case "max_body_size":
		size, err := parse.Size(val)
		if err != nil {
			return d.Errf("invalid max_body_size '%s': %v", val, err)
		}
		c.MaxBodySize = size
	case "threshold":
		th, err := parse.Finite(val)
		if err != nil || th < 0 || th > 100 {
			return d.Errf("invalid threshold '%s': must be a number of percentage points between 0 and 100", val)
		}
		c.Threshold = &th
	case "samples":
		n, err := strconv.Atoi(val)
		if err != nil || n < 0 {
			return d.Errf("invalid samples '%s': must be a non-negative integer", val)
		}
		c.Samples = &n
	case "endpoint_from":
		c.EndpointFrom = val
	case "max_endpoints", "endpoint_cardinality", "latency_min_samples":
		n, err := strconv.Atoi(val)
		lo, hi := 1, maxMaxEndpoints
		switch name {
		case "endpoint_cardinality":
			hi = math.MaxInt
		case "latency_min_samples":
			lo, hi = minLatencySamples, math.MaxInt
		}
		if err != nil || n < lo || n > hi {
			return d.Errf("invalid %s '%s': must be an integer between %d and %d", name, val, lo, hi)
		}
		switch name {
		case "max_endpoints":
			c.MaxEndpoints = n
		case "endpoint_cardinality":
			c.EndpointCardinality = n
		default:
			c.LatencyMinSamples = n
		}
	case "latency_threshold":
		th, err := parse.Finite(val)
		if err != nil || th < 0 {
			return d.Errf("invalid latency_threshold '%s': must be a non-negative percentage", val)
		}
		c.LatencyThreshold = &th
	case "latency_min_difference":
		dur, err := caddy.ParseDuration(val)
		if err != nil || dur < 0 {
			return d.Errf("invalid latency_min_difference '%s': must be a non-negative duration", val)
		}
		c.LatencyMinDifference = caddy.Duration(dur)
	}
	return nil
}
