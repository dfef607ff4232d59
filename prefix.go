package mirror

import (
	"strings"
)

// A target's path prefix (upstream http://shadow/v2) is put in front of
// the path of every copy, and a client must not be able to make a copy
// leave it: /v2/../admin is /admin to a shadow, or to a gateway before it,
// that resolves dot segments. So, for a target with a prefix:
//   - plain dot segments ("." and "..") are resolved first, as RFC 3986
//     resolves them and never above the root: /a/../../admin is copied as
//     /v2/admin;
//   - a path whose dot segments are hidden, encoded (%2e) or behind an
//     encoded slash or backslash (%2f, %5c) or a raw backslash, is not
//     copied (outcome skipped_unsafe_path): whether they are dot segments
//     depends on how the shadow decodes them.
//
// A target without a prefix gets the path as the client sent it, as the
// primary does.

// safeUnderPrefix reports whether an escaped request path can be copied
// under a prefix: none of its segments hides a dot segment.
func safeUnderPrefix(escaped string) bool {
	if !strings.ContainsAny(escaped, "%.\\") {
		return true // the common case: nothing to look at
	}
	for seg := range strings.SplitSeq(escaped, "/") {
		if seg == "." || seg == ".." {
			continue // plain: resolved by removeDotSegments
		}
		decoded := hiddenSeparators.Replace(seg)
		for piece := range strings.FieldsFuncSeq(decoded, func(r rune) bool { return r == '/' || r == '\\' }) {
			if piece == "." || piece == ".." {
				return false
			}
		}
	}
	return true
}

// hiddenSeparators decodes what may turn a segment into dot segments.
var hiddenSeparators = strings.NewReplacer(
	"%2e", ".", "%2E", ".",
	"%2f", "/", "%2F", "/",
	"%5c", `\`, "%5C", `\`,
)

// removeDotSegments resolves the plain dot segments of an escaped path
// that starts with "/", as RFC 3986's remove_dot_segments does, never
// climbing above the root. Other paths are returned as they are.
func removeDotSegments(escaped string) string {
	if !strings.HasPrefix(escaped, "/") || !strings.Contains(escaped, ".") {
		return escaped
	}
	segs := strings.Split(escaped[1:], "/")
	out := make([]string, 0, len(segs))
	for i, seg := range segs {
		last := i == len(segs)-1
		switch seg {
		case ".":
		case "..":
			if len(out) > 0 {
				out = out[:len(out)-1]
			}
		default:
			out = append(out, seg)
			continue
		}
		if last {
			out = append(out, "") // a dot segment at the end leaves a directory
		}
	}
	return "/" + strings.Join(out, "/")
}
