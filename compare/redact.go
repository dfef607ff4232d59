package compare

import (
	"net/http"
	"strings"
)

// redacted replaces a value that samples and logs must not hold.
const redacted = "[redacted]"

// redaction is a config's redact list, parsed: JSON pointers, whose
// values and everything under them are replaced, and header names.
// Credential headers and cookies (secretHeaders) are always redacted.
type redaction struct {
	pointers []pointerPattern
	headers  []string // "header <Canonical-Name>", as difference.Field
}

func newRedaction(list []string) redaction {
	var r redaction
	for _, v := range list {
		if strings.HasPrefix(v, "/") {
			r.pointers = append(r.pointers, parsePointerPattern(v))
		} else {
			r.headers = append(r.headers, "header "+http.CanonicalHeaderKey(v))
		}
	}
	return r
}

// apply replaces, in place, the values of the differences that r names,
// before they are kept in a sample or logged.
func (r redaction) apply(diffs []difference) {
	if len(r.pointers) == 0 && len(r.headers) == 0 {
		return
	}
	for i := range diffs {
		d := &diffs[i]
		if r.names(d) {
			d.Primary, d.Shadow = redacted, redacted
		}
	}
}

// names reports whether r redacts d.
func (r redaction) names(d *difference) bool {
	for _, h := range r.headers {
		if d.Field == h {
			return true
		}
	}
	if d.Pointer == "" && !strings.HasPrefix(d.Field, "/") {
		return false
	}
	ptr := d.Pointer
	if ptr == "" {
		ptr = d.Field
	}
	segs := parsePointerPattern(ptr)
	for _, p := range r.pointers {
		if covers(p, segs) {
			return true
		}
	}
	return false
}

// covers reports whether pattern p names path or a parent of it.
func covers(p, path pointerPattern) bool {
	if len(p) > len(path) {
		return false
	}
	for i, seg := range p {
		if seg != "*" && seg != path[i] {
			return false
		}
	}
	return true
}
