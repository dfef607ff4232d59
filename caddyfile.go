package mirror

import (
	"strconv"

	"github.com/dustin/go-humanize"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

func init() {
	httpcaddyfile.RegisterHandlerDirective("mirror", parseCaddyfile)
	// After rewrites, authentication and header edits; before encode,
	// handle, respond, reverse_proxy and file_server.
	httpcaddyfile.RegisterDirectiveOrder("mirror", httpcaddyfile.After, "request_header")
}

func parseCaddyfile(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	m := new(Handler)
	err := m.UnmarshalCaddyfile(h.Dispenser)
	return m, err
}

// UnmarshalCaddyfile sets up the handler from Caddyfile tokens. Syntax:
//
//	mirror [<matcher>] [<upstream>] {
//	    # a target; repeat for several; the options inside apply to it
//	    to <upstream> {
//	        name        <name>
//	        percent     <0-100>
//	        match       { <matchers...> }
//	        sample_by   <placeholder>
//	        max_rate    <per-second>
//	        header_up   [+|-]<field> [<value|regexp> [<replacement>]]
//	        timeout     <duration>
//	        max_fails   <n>
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
//	}
func (h *Handler) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // consume directive name

	var inline *Target
	if d.NextArg() {
		inline = &Target{Upstream: d.Val()}
		h.Targets = append(h.Targets, inline)
	}
	if d.NextArg() {
		return d.ArgErr()
	}

	for d.NextBlock(0) {
		switch d.Val() {
		case "to":
			if !d.NextArg() {
				return d.ArgErr()
			}
			t := &Target{Upstream: d.Val()}
			if d.NextArg() {
				return d.ArgErr()
			}
			for nesting := d.Nesting(); d.NextBlock(nesting); {
				if err := unmarshalTargetOption(d, t); err != nil {
					return err
				}
			}
			h.Targets = append(h.Targets, t)

		case "max_body_size", "stream_window", "max_stream_size", "stream_slack":
			name := d.Val()
			if !d.NextArg() {
				return d.ArgErr()
			}
			size, err := humanize.ParseBytes(d.Val())
			if err != nil {
				return d.Errf("invalid %s '%s': %v", name, d.Val(), err)
			}
			if size > 1<<62 {
				return d.Errf("invalid %s '%s': too large", name, d.Val())
			}
			switch name {
			case "max_body_size":
				h.MaxBodySize = int64(size)
			case "stream_slack":
				h.StreamSlack = int64(size)
				if size == 0 {
					h.StreamSlack = -1 // none; absent is the default
				}
			case "stream_window":
				if size < minStreamWindow || size > maxStreamWindow {
					return d.Errf("invalid stream_window '%s': must be between 4KiB and 1GiB", d.Val())
				}
				h.StreamWindow = int64(size)
			default:
				h.MaxStreamSize = int64(size)
			}
			if d.NextArg() {
				return d.ArgErr()
			}

		case "marker":
			if !d.NextArg() {
				return d.ArgErr()
			}
			h.Marker = d.Val()
			if d.NextArg() {
				return d.ArgErr()
			}

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
			if !d.NextArg() {
				return d.ArgErr()
			}
			n, err := strconv.Atoi(d.Val())
			if err != nil || n < 0 {
				return d.Errf("invalid max_in_flight '%s': must be a non-negative integer", d.Val())
			}
			h.MaxInFlight = n
			if d.NextArg() {
				return d.ArgErr()
			}

		default:
			if inline == nil {
				if isTargetOption(d.Val()) {
					return d.Errf("'%s' applies to a target: put it inside a 'to <upstream> { }' block, or give mirror an inline upstream", d.Val())
				}
				return d.Errf("unrecognized subdirective '%s'", d.Val())
			}
			if err := unmarshalTargetOption(d, inline); err != nil {
				return err
			}
		}
	}
	return nil
}
