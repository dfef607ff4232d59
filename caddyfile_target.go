package mirror

import (
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"

	"github.com/dustin/go-humanize"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp/headers"
)

// isTargetOption reports whether name is an option of a single target.
func isTargetOption(name string) bool {
	switch name {
	case "name", "percent", "match", "sample_by", "max_rate", "header_up", "timeout", "max_fails", "fail_duration", "concurrency", "transport", "compare":
		return true
	}
	return false
}

// unmarshalTargetOption parses the target option at the dispenser's
// current token into t.
func unmarshalTargetOption(d *caddyfile.Dispenser, t *Target) error {
	switch name := d.Val(); name {
	case "name":
		if !d.NextArg() {
			return d.ArgErr()
		}
		t.Name = d.Val()

	case "compare":
		if t.Compare != nil {
			return d.Err("compare already specified")
		}
		if d.NextArg() {
			return d.ArgErr()
		}
		t.Compare = new(Compare)
		for nesting := d.Nesting(); d.NextBlock(nesting); {
			if err := unmarshalCompareOption(d, t.Compare); err != nil {
				return err
			}
		}
		return nil

	case "concurrency":
		if t.Concurrency != nil {
			return d.Err("concurrency already specified")
		}
		if d.NextArg() {
			return d.ArgErr()
		}
		t.Concurrency = new(Concurrency)
		for nesting := d.Nesting(); d.NextBlock(nesting); {
			if err := unmarshalConcurrencyOption(d, t.Concurrency); err != nil {
				return err
			}
		}
		return nil

	case "percent":
		if !d.NextArg() {
			return d.ArgErr()
		}
		p, err := parseFinite(strings.TrimSuffix(d.Val(), "%"))
		if err != nil || p < 0 || p > 100 {
			return d.Errf("invalid percent '%s': must be a number between 0 and 100", d.Val())
		}
		t.Percent = &p

	case "match":
		set, err := caddyhttp.ParseCaddyfileNestedMatcherSet(d)
		if err != nil {
			return d.Errf("parsing match: %v", err)
		}
		t.MatcherSetsRaw = append(t.MatcherSetsRaw, set)
		return nil // the matcher block has been consumed

	case "sample_by":
		if !d.NextArg() {
			return d.ArgErr()
		}
		t.SampleBy = d.Val()

	case "max_rate":
		if !d.NextArg() {
			return d.ArgErr()
		}
		r, err := parseFinite(d.Val())
		if err != nil || r < 0 {
			return d.Errf("invalid max_rate '%s': must be a non-negative number of copies per second", d.Val())
		}
		t.MaxRate = r

	case "header_up":
		if t.Headers == nil {
			t.Headers = new(headers.HeaderOps)
		}
		args := d.RemainingArgs()
		var err error
		switch len(args) {
		case 1:
			err = headers.CaddyfileHeaderOp(t.Headers, args[0], "", nil)
		case 2:
			err = headers.CaddyfileHeaderOp(t.Headers, args[0], args[1], nil)
		case 3:
			err = headers.CaddyfileHeaderOp(t.Headers, args[0], args[1], &args[2])
		default:
			return d.ArgErr()
		}
		if err != nil {
			return d.Errf("invalid header_up: %v", err)
		}
		return nil // RemainingArgs consumed the line

	case "timeout", "fail_duration":
		if !d.NextArg() {
			return d.ArgErr()
		}
		dur, err := caddy.ParseDuration(d.Val())
		if err != nil || dur < 0 {
			return d.Errf("invalid %s '%s': must be a non-negative duration", name, d.Val())
		}
		if name == "timeout" {
			t.Timeout = caddy.Duration(dur)
		} else {
			t.FailDuration = caddy.Duration(dur)
		}

	case "max_fails":
		if !d.NextArg() {
			return d.ArgErr()
		}
		n, err := strconv.Atoi(d.Val())
		if err != nil || n < -1 {
			return d.Errf("invalid max_fails '%s': must be -1 (never unhealthy) or a positive integer", d.Val())
		}
		t.MaxFails = n

	case "transport":
		if !d.NextArg() {
			return d.ArgErr()
		}
		if t.TransportRaw != nil {
			return d.Err("transport already specified")
		}
		moduleName := d.Val()
		modID := "http.reverse_proxy.transport." + moduleName
		unm, err := caddyfile.UnmarshalModule(d, modID)
		if err != nil {
			return err
		}
		rt, ok := unm.(http.RoundTripper)
		if !ok {
			return d.Errf("module %s (%T) is not a RoundTripper", modID, unm)
		}
		t.TransportRaw = caddyconfig.JSONModuleObject(rt, "protocol", moduleName, nil)
		return nil // the module's block has been consumed

	default:
		return d.Errf("unrecognized subdirective '%s'", name)
	}

	if d.NextArg() {
		return d.ArgErr()
	}
	return nil
}

// unmarshalCompareOption parses the compare option at the dispenser's
// current token into c.
func unmarshalCompareOption(d *caddyfile.Dispenser, c *Compare) error {
	name := d.Val()
	switch name {
	case "headers", "ignore":
		args := d.RemainingArgs()
		if len(args) == 0 {
			return d.ArgErr()
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
	if !d.NextArg() {
		return d.ArgErr()
	}
	val := d.Val()
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
		c.Body = val
		if err := c.validate(); err != nil {
			return d.Errf("invalid body '%s': must be auto, json, bytes or off", val)
		}
	case "max_body_size":
		size, err := humanize.ParseBytes(val)
		if err != nil || size > 1<<62 {
			return d.Errf("invalid max_body_size '%s': must be a size such as 1MiB", val)
		}
		c.MaxBodySize = int64(size)
	case "threshold":
		th, err := parseFinite(val)
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
	if d.NextArg() {
		return d.ArgErr()
	}
	return nil
}

// parseFinite parses a decimal number as strconv.ParseFloat does, but
// refuses NaN and the infinities, which ParseFloat accepts and which no
// range check catches (every comparison with NaN is false).
func parseFinite(s string) (float64, error) {
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return 0, err
	}
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, fmt.Errorf("%s is not a finite number", s)
	}
	return f, nil
}

// unmarshalConcurrencyOption parses the concurrency option at the
// dispenser's current token into c.
func unmarshalConcurrencyOption(d *caddyfile.Dispenser, c *Concurrency) error {
	switch name := d.Val(); name {
	case "fixed":
		c.Fixed = true
	case "max_wait":
		if !d.NextArg() {
			return d.ArgErr()
		}
		dur, err := caddy.ParseDuration(d.Val())
		if err != nil || dur < 0 {
			return d.Errf("invalid max_wait '%s': must be a non-negative duration (0: never wait)", d.Val())
		}
		c.MaxWait = caddy.Duration(dur)
		if dur == 0 {
			c.MaxWait = -1 // never; absent is the default
		}
	case "floor", "ceiling":
		if !d.NextArg() {
			return d.ArgErr()
		}
		n, err := strconv.Atoi(d.Val())
		if err != nil || n < 1 {
			return d.Errf("invalid %s '%s': must be a positive integer", name, d.Val())
		}
		if name == "floor" {
			c.Floor = n
		} else {
			c.Ceiling = n
		}
	default:
		return d.Errf("unrecognized concurrency option '%s'", name)
	}
	if d.NextArg() {
		return d.ArgErr()
	}
	return nil
}
