package mirror

import (
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp/headers"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp/reverseproxy"

	"github.com/caddy-mirror/mirror/compare"
	"github.com/caddy-mirror/mirror/internal/parse"
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
		"lb_policy":     parseLBPolicy,
		"dynamic":       parseDynamic,
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

// errAt adds the file and line of tok to err, as a dispenser's errors
// have them, for a fault found after the parser has moved past tok.
func errAt(tok caddyfile.Token, err error) error {
	return fmt.Errorf("%w, at %s:%d", err, tok.File, tok.Line)
}

func parseName(p *caddyfileParser, t *Target) (err error) {
	t.Name, err = parse.OneArg(p.d)
	return err
}

func parsePercent(p *caddyfileParser, t *Target) error {
	v, err := parse.OneArg(p.d)
	if err != nil {
		return err
	}
	pct, err := parse.Finite(strings.TrimSuffix(v, "%"))
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
	v, err := parse.OneArg(p.d)
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
	v, err := parse.OneArg(p.d)
	if err != nil {
		return err
	}
	r, err := parse.Finite(v)
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
	v, err := parse.OneArg(p.d)
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
	v, err := parse.OneArg(p.d)
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
	v, err := parse.OneArg(p.d)
	if err != nil {
		return err
	}
	on, ok := map[string]bool{"on": true, "off": false}[v]
	if !ok {
		return p.d.Errf("invalid request_body '%s': must be on or off", v)
	}
	if !on {
		t.RequestBody = &on
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

// parseLBPolicy takes reverse_proxy's lb_policy, with the same syntax.
func parseLBPolicy(p *caddyfileParser, t *Target) error {
	return parseProxyModule[reverseproxy.Selector](p.d, &t.SelectionPolicyRaw, "lb_policy", "selection_policies", "policy", "a selection policy")
}

// parseDynamic takes reverse_proxy's dynamic, with the same syntax.
func parseDynamic(p *caddyfileParser, t *Target) error {
	return parseProxyModule[reverseproxy.UpstreamSource](p.d, &t.DynamicUpstreamsRaw, "dynamic upstreams", "upstreams", "source", "a dynamic upstream source")
}

// parseProxyModule reads a reverse_proxy module of the namespace
// http.reverse_proxy.<namespace>, which must be a Kind, into raw with its
// name under inlineKey, as reverse_proxy's own Caddyfile does; what names
// it in errors.
func parseProxyModule[Kind any](d *caddyfile.Dispenser, raw *json.RawMessage, what, namespace, inlineKey, kind string) error {
	if !d.NextArg() {
		return d.ArgErr()
	}
	if *raw != nil {
		return d.Errf("%s already specified", what)
	}
	name := d.Val()
	modID := "http.reverse_proxy." + namespace + "." + name
	unm, err := caddyfile.UnmarshalModule(d, modID)
	if err != nil {
		return err
	}
	if _, ok := unm.(Kind); !ok {
		return d.Errf("module %s (%T) is not %s", modID, unm, kind)
	}
	*raw = caddyconfig.JSONModuleObject(unm, inlineKey, name, nil)
	return nil
}

func parseCompare(p *caddyfileParser, t *Target) error {
	d := p.d
	if t.Compare != nil {
		return d.Err("compare already specified")
	}
	t.Compare = new(compare.Config)
	return t.Compare.UnmarshalCaddyfile(d)
}

// unmarshalConcurrencyOption parses the concurrency option at the
// dispenser's current token into c.
func unmarshalConcurrencyOption(d *caddyfile.Dispenser, c *Concurrency) error {
	switch name := d.Val(); name {
	case "fixed":
		c.Fixed = true
	case "max_wait":
		v, err := parse.OneArg(d)
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
		v, err := parse.OneArg(d)
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
