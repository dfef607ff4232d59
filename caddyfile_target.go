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

// caddyfileParser is the state of one mirror directive's parsing: its
// dispenser, and, when it is parsed as part of a site, the lookup of the
// site's named matchers.
type caddyfileParser struct {
	d *caddyfile.Dispenser
	// namedMatcher reads the matcher token after the current one (such as
	// @api) into a matcher set, as httpcaddyfile.Helper.MatcherToken does;
	// nil when the directive is parsed on its own
	namedMatcher func() (caddy.ModuleMap, bool, error)
}

// targetOption parses one option of a target, at the dispenser's current
// token, into t.
type targetOption func(p *caddyfileParser, t *Target) error

// targetOptions are a target's options by subdirective name: the one list
// from which both the parser and its errors know them.
var targetOptions map[string]targetOption

func init() {
	targetOptions = map[string]targetOption{
		"name":          parseName,
		"percent":       parsePercent,
		"match":         parseMatch,
		"sample_by":     parseSampleBy,
		"max_rate":      parseMaxRate,
		"header_up":     parseHeaderUp,
		"timeout":       parseTargetDuration,
		"fail_duration": parseTargetDuration,
		"max_fails":     parseMaxFails,
		"request_body":  parseRequestBody,
		"concurrency":   parseConcurrency,
		"transport":     parseTransport,
		"compare":       parseCompare,
	}
}

// unmarshalTargetOption parses the target option at the dispenser's
// current token into t.
func (p *caddyfileParser) unmarshalTargetOption(t *Target) error {
	parse, ok := targetOptions[p.d.Val()]
	if !ok {
		return p.d.Errf("unrecognized subdirective '%s'", p.d.Val())
	}
	return parse(p, t)
}

// oneArg reads the option's single argument.
func oneArg(d *caddyfile.Dispenser) (string, error) {
	if !d.NextArg() {
		return "", d.ArgErr()
	}
	v := d.Val()
	if d.NextArg() {
		return "", d.ArgErr()
	}
	return v, nil
}

// errAt adds the file and line of tok to err, as a dispenser's errors
// have them, for a fault found after the parser has moved past tok.
func errAt(tok caddyfile.Token, err error) error {
	return fmt.Errorf("%w, at %s:%d", err, tok.File, tok.Line)
}

func parseName(p *caddyfileParser, t *Target) (err error) {
	t.Name, err = oneArg(p.d)
	return err
}

func parsePercent(p *caddyfileParser, t *Target) error {
	v, err := oneArg(p.d)
	if err != nil {
		return err
	}
	pct, err := parseFinite(strings.TrimSuffix(v, "%"))
	if err != nil || pct < 0 || pct > 100 {
		return p.d.Errf("invalid percent '%s': must be a number between 0 and 100", v)
	}
	t.Percent = &pct
	return nil
}

// parseMatch takes a block of matchers, or a named matcher of the site
// (match @api), as a route's match does.
func parseMatch(p *caddyfileParser, t *Target) error {
	if p.namedMatcher != nil {
		if set, ok, err := p.namedMatcher(); err != nil {
			return err
		} else if ok {
			t.MatcherSetsRaw = append(t.MatcherSetsRaw, set)
			if p.d.NextArg() || p.d.NextBlock(p.d.Nesting()) {
				return p.d.Errf("match takes one named matcher, or a block of matchers")
			}
			return nil
		}
	} else if p.d.NextArg() {
		if strings.HasPrefix(p.d.Val(), "@") {
			return p.d.Errf("match %s: named matchers are taken only where the mirror directive is parsed as part of a site; put the matchers in a block: match { ... }", p.d.Val())
		}
		p.d.Prev()
	}
	set, err := caddyhttp.ParseCaddyfileNestedMatcherSet(p.d)
	if err != nil {
		return err // it names its line
	}
	t.MatcherSetsRaw = append(t.MatcherSetsRaw, set)
	return nil // the matcher block has been consumed
}

func parseSampleBy(p *caddyfileParser, t *Target) error {
	v, err := oneArg(p.d)
	if err != nil {
		return err
	}
	if err := checkSampleBy(v); err != nil {
		return p.d.Err(err.Error())
	}
	t.SampleBy = v
	return nil
}

func parseMaxRate(p *caddyfileParser, t *Target) error {
	v, err := oneArg(p.d)
	if err != nil {
		return err
	}
	r, err := parseFinite(v)
	if err != nil || r < 0 {
		return p.d.Errf("invalid max_rate '%s': must be a non-negative number of copies per second", v)
	}
	t.MaxRate = r
	return nil
}

func parseHeaderUp(p *caddyfileParser, t *Target) error {
	d := p.d
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
	for _, a := range args {
		if err := checkCopyPlaceholders(a); err != nil {
			return d.Errf("invalid header_up: %v", err)
		}
	}
	return nil // RemainingArgs consumed the line
}

func parseTargetDuration(p *caddyfileParser, t *Target) error {
	name := p.d.Val()
	v, err := oneArg(p.d)
	if err != nil {
		return err
	}
	dur, err := caddy.ParseDuration(v)
	if err != nil || dur < 0 {
		return p.d.Errf("invalid %s '%s': must be a non-negative duration", name, v)
	}
	if name == "timeout" {
		t.Timeout = caddy.Duration(dur)
	} else {
		t.FailDuration = caddy.Duration(dur)
	}
	return nil
}

func parseMaxFails(p *caddyfileParser, t *Target) error {
	v, err := oneArg(p.d)
	if err != nil {
		return err
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < -1 || n == 0 {
		return p.d.Errf("invalid max_fails '%s': must be -1 (never unhealthy) or at least 1", v)
	}
	t.MaxFails = n
	return nil
}

func parseRequestBody(p *caddyfileParser, t *Target) error {
	v, err := oneArg(p.d)
	if err != nil {
		return err
	}
	switch v {
	case "on":
	case "off":
		off := false
		t.RequestBody = &off
	default:
		return p.d.Errf("invalid request_body '%s': must be on or off", v)
	}
	return nil
}

func parseConcurrency(p *caddyfileParser, t *Target) error {
	d := p.d
	if t.Concurrency != nil {
		return d.Err("concurrency already specified")
	}
	if d.NextArg() {
		return d.ArgErr()
	}
	tok := d.Token()
	t.Concurrency = new(Concurrency)
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		if err := unmarshalConcurrencyOption(d, t.Concurrency); err != nil {
			return err
		}
	}
	// what can be checked without the handler's max_in_flight
	if err := t.Concurrency.validate(math.MaxInt); err != nil {
		return errAt(tok, err)
	}
	return nil
}

func parseTransport(p *caddyfileParser, t *Target) error {
	d := p.d
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
}

func parseCompare(p *caddyfileParser, t *Target) error {
	d := p.d
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
}

// unmarshalCompareOption parses the compare option at the dispenser's
// current token into c, and checks it.
func unmarshalCompareOption(d *caddyfile.Dispenser, c *Compare) error {
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
	val, err := oneArg(d)
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
		size, err := parseSize(val)
		if err != nil {
			return d.Errf("invalid max_body_size '%s': %v", val, err)
		}
		c.MaxBodySize = size
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
	return nil
}

// parseSize parses a size as request_body does (4MB is 4,000,000 bytes,
// 4MiB is 4,194,304).
func parseSize(s string) (int64, error) {
	size, err := humanize.ParseBytes(s)
	if err != nil || size > 1<<62 {
		return 0, fmt.Errorf("must be a size such as 1MiB")
	}
	return int64(size), nil
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
		v, err := oneArg(d)
		if err != nil {
			return err
		}
		dur, err := caddy.ParseDuration(v)
		if err != nil || dur < 0 {
			return d.Errf("invalid max_wait '%s': must be a non-negative duration (0: never wait)", v)
		}
		c.MaxWait = caddy.Duration(dur)
		if dur == 0 {
			c.MaxWait = -1 // never; absent is the default
		}
		return nil
	case "floor", "ceiling":
		v, err := oneArg(d)
		if err != nil {
			return err
		}
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return d.Errf("invalid %s '%s': must be a positive integer", name, v)
		}
		if name == "floor" {
			c.Floor = n
		} else {
			c.Ceiling = n
		}
		return nil
	default:
		return d.Errf("unrecognized concurrency option '%s'", name)
	}
	if d.NextArg() {
		return d.ArgErr()
	}
	return nil
}
