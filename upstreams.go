package mirror

import (
	"fmt"
	"net/url"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp/reverseproxy"
)

// A target's upstreams are written as reverse_proxy's are, and read by
// reverse_proxy's own parser: host:port, http://, https://, h2c://,
// unix//path, and port ranges, which make one upstream per port. The
// mirror adds one thing: an http:// or https:// upstream may have a path
// prefix, put in front of every copy's path, the same for every upstream
// of the target. Only placeholders known at load, such as {env.*}, are
// allowed: a copy's destination comes from the config alone.

// parsedUpstreams is what a target's upstream addresses say.
type parsedUpstreams struct {
	dials     []string // reverse_proxy's dial addresses, one per replica
	scheme    string   // http, https or h2c, common to every upstream
	prefix    string   // the decoded path prefix, without a trailing slash
	rawPrefix string   // the same prefix, escaped
}

// parseUpstreams reads addrs, whose placeholders are expanded.
func parseUpstreams(addrs []string) (parsedUpstreams, error) {
	var p parsedUpstreams
	hostOnly := make([]string, len(addrs))
	for i, raw := range addrs {
		addr, prefix, rawPrefix, scheme, err := splitPrefix(raw)
		if err != nil {
			return p, fmt.Errorf("upstream %q: %v", raw, err)
		}
		if i > 0 && (prefix != p.prefix || scheme != p.scheme) {
			return p, fmt.Errorf("upstream %q: every upstream of a target must have the same scheme and path prefix as the first, %q", raw, addrs[0])
		}
		p.prefix, p.rawPrefix, p.scheme, hostOnly[i] = prefix, rawPrefix, scheme, addr
	}
	var rp reverseproxy.Handler
	tokens, err := caddyfile.Tokenize([]byte("reverse_proxy "+quoteAll(hostOnly)), "upstreams")
	if err != nil {
		return p, err
	}
	if err := rp.UnmarshalCaddyfile(caddyfile.NewDispenser(tokens)); err != nil {
		return p, cutLocation(err)
	}
	for _, u := range rp.Upstreams {
		addr, err := caddy.ParseNetworkAddress(u.Dial)
		switch {
		case err != nil:
			return p, fmt.Errorf("upstream %q: %v", u.Dial, err)
		case addr.IsUnixNetwork():
		case addr.Network != "tcp" && addr.Network != "tcp4" && addr.Network != "tcp6":
			return p, fmt.Errorf("upstream %q: not an address to dial (a path prefix needs http:// or https://)", u.Dial)
		}
		p.dials = append(p.dials, u.Dial)
	}
	if len(p.dials) == 0 {
		return p, fmt.Errorf("an upstream is required")
	}
	return p, nil
}

// splitPrefix takes the path prefix off an http:// or https:// upstream
// and checks what reverse_proxy's parser does not: no user info, query or
// fragment, and no placeholder left.
func splitPrefix(raw string) (addr, prefix, rawPrefix, scheme string, err error) {
	if strings.Contains(raw, "{") {
		return "", "", "", "", fmt.Errorf("only placeholders known at load time, such as {env.*}, are allowed")
	}
	scheme, rest, found := strings.Cut(raw, "://")
	if !found {
		if strings.HasPrefix(raw, "unix/") {
			return raw, "", "", "http", nil
		}
		return raw, "", "", "http", nil
	}
	u, err := url.Parse(raw)
	switch {
	case err != nil:
		return "", "", "", "", err
	case scheme != "http" && scheme != "https" && scheme != "h2c":
		return "", "", "", "", fmt.Errorf("scheme must be http, https or h2c")
	case u.Host == "" || u.Hostname() == "":
		return "", "", "", "", fmt.Errorf("a host is required")
	case u.User != nil:
		return "", "", "", "", fmt.Errorf("user info is not allowed; set credentials with headers")
	case u.RawQuery != "" || u.ForceQuery:
		return "", "", "", "", fmt.Errorf("a query is not allowed")
	case u.Fragment != "" || strings.Contains(rest, "#"):
		return "", "", "", "", fmt.Errorf("a fragment is not allowed")
	case scheme == "h2c" && u.Path != "":
		return "", "", "", "", fmt.Errorf("an h2c upstream takes no path prefix")
	}
	return scheme + "://" + u.Host, strings.TrimSuffix(u.Path, "/"), strings.TrimSuffix(u.EscapedPath(), "/"), scheme, nil
}

// quoteAll joins addrs as Caddyfile tokens.
func quoteAll(addrs []string) string {
	quoted := make([]string, len(addrs))
	for i, a := range addrs {
		quoted[i] = `"` + strings.ReplaceAll(a, `"`, `\"`) + `"`
	}
	return strings.Join(quoted, " ")
}

// cutLocation drops the synthetic file and line that reverse_proxy's
// parser adds to its errors; the caller names the real ones.
func cutLocation(err error) error {
	msg := err.Error()
	if i := strings.LastIndex(msg, ", at upstreams:"); i >= 0 {
		msg = msg[:i]
	}
	return fmt.Errorf("%s", strings.TrimPrefix(msg, "parsing upstream "))
}

// expandUpstreams returns the target's upstream addresses, with the
// placeholders known at load expanded: Upstreams, or Upstream alone.
func (t *Target) expandUpstreams() ([]string, error) {
	addrs := t.Upstreams
	if t.Upstream != "" {
		if len(addrs) > 0 {
			return nil, fmt.Errorf("upstream and upstreams are both set; list every upstream in upstreams")
		}
		addrs = []string{t.Upstream}
	}
	if len(addrs) == 0 && t.DynamicUpstreamsRaw == nil {
		return nil, fmt.Errorf("upstream is required")
	}
	repl := caddy.NewReplacer()
	out := make([]string, len(addrs))
	for i, a := range addrs {
		out[i] = repl.ReplaceKnown(a, "")
		if out[i] == "" {
			return nil, fmt.Errorf("upstream %q expanded to \"\" (is the environment variable set?)", a)
		}
	}
	return out, nil
}

// checkCaddyfileUpstreams checks, as the Caddyfile is adapted, upstreams
// that have no placeholder; those with {env.*} are checked when the
// config loads, where their environment is.
func checkCaddyfileUpstreams(addrs []string) error {
	var plain []string
	for _, a := range addrs {
		if !strings.Contains(a, "{") {
			plain = append(plain, a)
		}
	}
	if len(plain) == 0 {
		return nil
	}
	_, err := parseUpstreams(plain)
	return err
}
