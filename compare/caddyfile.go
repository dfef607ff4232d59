package compare

import (
	"strconv"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/caddy-mirror/mirror/internal/parse"
)

// UnmarshalCaddyfile sets up c from the block of a target's compare
// subdirective, whose token is the dispenser's current one:
//
//	compare {
//	    noise_from    <name>
//	    status        <true|false>
//	    headers       <fields...>
//	    body          auto|json|bytes|off
//	    ignore        <json-pointers...>
//	    max_body_size <size>
//	    threshold     <percentage-points>
//	    samples       <n>
//	    samples_include_query
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
	case "headers", "ignore":
		args := d.RemainingArgs()
		if len(args) == 0 {
			return d.ArgErr()
		}
		for _, a := range args {
			check := checkHeaderName
			if name == "ignore" {
				check = checkPointer
			}
			if err := check(a); err != nil {
				return d.Errf("invalid %s '%s': %v", name, a, err)
			}
		}
		if name == "headers" {
			c.Headers = append(c.Headers, args...)
		} else {
			c.Ignore = append(c.Ignore, args...)
		}
		return nil
	case "samples_include_query":
		c.SamplesIncludeQuery = true
		if d.NextArg() {
			return d.ArgErr()
		}
		return nil
	case "noise_from", "status", "body", "max_body_size", "threshold", "samples":
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
	}
	return nil
}
