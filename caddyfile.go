package mirror

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/caddy-mirror/mirror/internal/parse"
)

func init() {
	httpcaddyfile.RegisterHandlerDirective("mirror", parseCaddyfile)
	// After rewrites, authentication and header edits; before encode,
	// handle, respond, reverse_proxy and file_server.
	httpcaddyfile.RegisterDirectiveOrder("mirror", httpcaddyfile.After, "request_header")
}

func parseCaddyfile(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	m := new(Handler)
	p := &caddyfileParser{d: h.Dispenser, namedMatcher: h.MatcherToken}
	err := m.unmarshal(p)
	return m, err
}

// UnmarshalCaddyfile sets up the handler from Caddyfile tokens. Syntax:
//
//	mirror [<matcher>] [<upstreams...>] {
//	    # a target; repeat for several; the options inside apply to it
//	    to <upstreams...> {
//	        lb_policy   <name> [<options...>]
//	        dynamic     <source> [...]
//	        name        <name>
//	        percent     <0-100>
//	        match       { <matchers...> }
//	        sample_by   <placeholder>
//	        max_rate    <per-second>
//	        header_up   [+|-]<field> [<value|regexp> [<replacement>]]
//	        timeout     <duration>
//	        max_fails   <n>
//	        request_body on|off
//	        fail_duration <duration>
//	        # the target's adaptive limit on copies in flight
//	        concurrency {
//	            floor    <n>
//	            ceiling  <n>
//	            max_wait <duration>
//	            fixed
//	        }
//	        transport   <module> { ... }
//	        # compare this target's responses with the primary's
//	        compare {
//	            noise_from    <name>
//	            status        <true|false>
//	            headers       <fields...>
//	            body          auto|json|bytes|off
//	            ignore        <json-pointers...>
//	            max_body_size <size>
//	            threshold     <percentage-points>
//	            samples       <n>
//	            samples_include_query
//	        }
//	    }
//	    # with an inline <upstream>, that one target's options go directly in this block
//	    max_body_size <size>
//	    large_bodies  stream|skip
//	    stream_window <size>
//	    stream_slack  <size>
//	    max_stream_size <size>
//	    max_in_flight <n>
//	    marker        <value>
//	    wait_for_primary <duration>
//	}
//
// Every value that can be checked without loading the config is checked
// here, so that caddy adapt reports it with its line.
func (h *Handler) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	return h.unmarshal(&caddyfileParser{d: d})
}

// unmarshal is UnmarshalCaddyfile with the parser's state.
func (h *Handler) unmarshal(p *caddyfileParser) error {
	d := p.d
	d.Next() // consume directive name
	directive := d.Token()

	var inline *Target
	if ups := d.RemainingArgs(); len(ups) > 0 {
		if err := checkCaddyfileUpstreams(ups); err != nil {
			return errAt(directive, err)
		}
		inline = newCaddyfileTarget(ups)
		h.Targets = append(h.Targets, inline)
	}

	for d.NextBlock(0) {
		switch d.Val() {
		case "to":
			tok := d.Token()
			ups := d.RemainingArgs()
			if err := checkCaddyfileUpstreams(ups); err != nil {
				return errAt(tok, err)
			}
			t := newCaddyfileTarget(ups)
			for nesting := d.Nesting(); d.NextBlock(nesting); {
				if err := p.unmarshalTargetOption(t); err != nil {
					return err
				}
			}
			h.Targets = append(h.Targets, t)

		case "max_body_size", "stream_window", "max_stream_size", "stream_slack":
			name := d.Val()
			v, err := parse.OneArg(d)
			if err != nil {
				return err
			}
			size, err := parse.Size(v)
			if err != nil {
				return d.Errf("invalid %s '%s': %v", name, v, err)
			}
			switch name {
			case "max_body_size":
				h.MaxBodySize = size
			case "stream_slack":
				h.StreamSlack = size
				if size == 0 {
					h.StreamSlack = -1 // none; absent is the default
				}
			case "stream_window":
				if err := checkStreamWindow(size); err != nil {
					return d.Errf("invalid stream_window '%s': %v", v, err)
				}
				h.StreamWindow = size
			default:
				h.MaxStreamSize = size
			}

		case "wait_for_primary":
			v, err := parse.OneArg(d)
			if err != nil {
				return err
			}
			dur, err := caddy.ParseDuration(v)
			if err != nil || dur < 0 {
				return d.Errf("invalid wait_for_primary '%s': must be a duration such as 100ms, or 0 to send each copy at once", v)
			}
			h.WaitForPrimary = caddy.Duration(dur)

		case "marker":
			v, err := parse.OneArg(d)
			if err != nil {
				return err
			}
			h.Marker = v

		case "large_bodies":
			if !d.NextArg() {
				return d.ArgErr()
			}
			if v := d.Val(); v != largeBodiesStream && v != largeBodiesSkip {
				return d.Errf("invalid large_bodies '%s': must be stream or skip", v)
			}
			h.LargeBodies = d.Val()
			if d.NextArg() {
				return d.ArgErr()
			}

		case "max_in_flight":
			v, err := parse.OneArg(d)
			if err != nil {
				return err
			}
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 {
				return d.Errf("invalid max_in_flight '%s': must be a positive integer", v)
			}
			h.MaxInFlight = n

		default:
			if inline == nil {
				if _, ok := targetOptions[d.Val()]; ok {
					return d.Errf("'%s' applies to a target: put it inside a 'to <upstream> { }' block, or give mirror an inline upstream", d.Val())
				}
				return d.Errf("unrecognized subdirective '%s'", d.Val())
			}
			if err := p.unmarshalTargetOption(inline); err != nil {
				return err
			}
		}
	}
	if len(h.Targets) == 0 {
		return errAt(directive, fmt.Errorf("mirror needs a shadow: mirror <upstreams...>, or a 'to <upstreams...>' block inside mirror { }"))
	}
	for _, t := range h.Targets {
		if t.Upstream == "" && len(t.Upstreams) == 0 && t.DynamicUpstreamsRaw == nil {
			return errAt(directive, fmt.Errorf("a 'to' block needs upstreams, or a dynamic subdirective"))
		}
		if err := t.checkHealthChecks(); err != nil {
			return errAt(directive, err)
		}
	}
	for _, t := range h.Targets {
		if t.Compare != nil && t.Compare.NoiseFrom != "" && !hasTargetNamed(h.Targets, t.Compare.NoiseFrom) {
			return errAt(directive, fmt.Errorf("compare noise_from %q: no target of this mirror is named so", t.Compare.NoiseFrom))
		}
	}
	return nil
}

// newCaddyfileTarget is a target of the upstreams of a mirror or to line:
// one is its upstream, several its pool; none is a target whose dynamic
// subdirective must name its replicas.
func newCaddyfileTarget(ups []string) *Target {
	if len(ups) == 1 {
		return &Target{Upstream: ups[0]}
	}
	return &Target{Upstreams: ups}
}

// hasTargetNamed reports whether a target is named name, or, having no
// name, has it as its upstream.
func hasTargetNamed(targets []*Target, name string) bool {
	for _, t := range targets {
		if t.Name == name || t.Name == "" && (t.Upstream == name || strings.Join(t.Upstreams, " ") == name) {
			return true
		}
	}
	return false
}
