package compare

import (
	"strings"
)

// pathLearner learns the path templates of one target's endpoints from
// the paths it sees, as a tree of path segments per method:
//
//   - a segment that looks like an id (see segmentParam) is a parameter
//     from the first time it is seen;
//   - a position that has taken more than cardinality distinct literal
//     values under the same prefix becomes a parameter, {param}, and the
//     subtrees of its literal values are merged into the parameter's, in
//     the cardinality style Diffy's maintainers proposed;
//   - a segment over maxLiteralSegment bytes is a parameter too;
//   - past maxPathSegments segments, the rest of the path is {rest...}.
//
// It holds at most maxLearnedNodes nodes, each with a key of at most
// maxLiteralSegment bytes; a path that would need more is not learnt
// (learn returns ok false). It is not safe for concurrent use.
type pathLearner struct {
	cardinality int
	roots       map[string]*pathNode // by method
	nodes       int
}

// pathNode is one position in a learnt path: its children by segment,
// where a parameter's key is its template ("{id}", "{param}.json").
type pathNode struct {
	children map[string]*pathNode
	literals int  // children whose key is a literal segment
	wild     bool // more than cardinality literals were seen here
}

const (
	// maxLearnedNodes bounds a learner's tree.
	maxLearnedNodes = 2048
	// maxLiteralSegment is the longest segment kept literal.
	maxLiteralSegment = 64
	// maxPathSegments is how many segments of a path are learnt.
	maxPathSegments = 16
	// defaultCardinality is compare.endpoint_cardinality's default.
	defaultCardinality = 32
	// paramName stands for a segment learnt to be a parameter by its
	// position's cardinality.
	paramName = "{param}"
)

func newPathLearner(cardinality int) *pathLearner {
	return &pathLearner{cardinality: cardinality, roots: make(map[string]*pathNode)}
}

// learn returns path's template under method, learning from it, and
// whether the tree's shape changed such that templates returned before
// may now read differently (see canonical). ok is false when the tree is
// full and path needs a node it does not have.
func (l *pathLearner) learn(method, path string) (template string, reshaped, ok bool) {
	root := l.roots[method]
	if root == nil {
		if l.nodes >= maxLearnedNodes {
			return "", false, false
		}
		root = &pathNode{}
		l.roots[method] = root
		l.nodes++
	}
	var b strings.Builder
	b.Grow(len(path) + 8)
	n := root
	rest := strings.TrimPrefix(path, "/")
	for depth := 0; ; depth++ {
		seg, after, more := strings.Cut(rest, "/")
		b.WriteByte('/')
		if depth == maxPathSegments {
			b.WriteString("{rest...}")
			break
		}
		key := segmentKey(seg, n.wild)
		child := n.children[key]
		literal := key == seg && !isParamKey(key)
		if child == nil && literal && n.literals >= l.cardinality {
			// one literal too many: this position is a parameter
			l.collapse(n)
			reshaped = true
			key = segmentKey(seg, true)
			child = n.children[key]
		}
		if child == nil {
			if l.nodes >= maxLearnedNodes {
				return "", reshaped, false
			}
			child = &pathNode{}
			if n.children == nil {
				n.children = make(map[string]*pathNode)
			}
			n.children[key] = child
			l.nodes++
			if literal {
				n.literals++
			}
		}
		b.WriteString(key)
		n = child
		if !more {
			break
		}
		rest = after
	}
	return b.String(), reshaped, true
}

// canonical returns what a template returned by learn before reads as
// now. The tree already holds every path it can name, so it learns
// nothing new from it.
func (l *pathLearner) canonical(method, template string) string {
	t, _, ok := l.learn(method, template)
	if !ok {
		return template
	}
	return t
}

// collapse makes n's position a parameter: its literal children are
// merged into the {param} children of their extensions.
func (l *pathLearner) collapse(n *pathNode) {
	n.wild = true
	for key, child := range n.children {
		if isParamKey(key) {
			continue
		}
		delete(n.children, key)
		n.literals--
		to := segmentKey(key, true)
		if dst := n.children[to]; dst != nil {
			l.merge(dst, child)
		} else {
			n.children[to] = child
		}
	}
}

// merge moves src's subtree into dst's, and drops src.
func (l *pathLearner) merge(dst, src *pathNode) {
	l.nodes--
	for key, child := range src.children {
		if d := dst.children[key]; d != nil {
			l.merge(d, child)
			continue
		}
		if dst.children == nil {
			dst.children = make(map[string]*pathNode)
		}
		dst.children[key] = child
		if !isParamKey(key) {
			dst.literals++
		}
	}
	if src.wild || dst.literals > l.cardinality {
		l.collapse(dst)
	}
}

// segmentKey is the key of the path segment seg in its node's children:
// its parameter template when it is one, or when the position is wild,
// and otherwise seg itself.
func segmentKey(seg string, wild bool) string {
	if isParamKey(seg) {
		return seg // a template's own parameter
	}
	if p := segmentParam(seg); p != "" {
		return p
	}
	if wild || len(seg) > maxLiteralSegment {
		stem, ext := splitExt(seg)
		if ext != "" && len(stem) <= maxLiteralSegment {
			return paramName + ext
		}
		return paramName
	}
	return seg
}

// isParamKey reports whether a key is a parameter's: a path as the
// mirror sees it (escaped) never has a literal '{'.
func isParamKey(key string) bool {
	return strings.HasPrefix(key, "{")
}

// segmentParam returns the parameter that the segment seg is by its
// looks, such as "{id}" or "{uuid}.json", or "" when it looks literal.
func segmentParam(seg string) string {
	stem, ext := splitExt(seg)
	switch {
	case stem == "":
		return ""
	case isDigits(stem):
		return "{id}" + ext
	case isUUID(stem):
		return "{uuid}" + ext
	case isDate(stem):
		return "{date}" + ext
	case isToken(stem):
		return "{token}" + ext
	}
	return ""
}

// splitExt splits a file extension of 1 to 5 letters or digits, with
// at least one letter, off seg.
func splitExt(seg string) (stem, ext string) {
	i := strings.LastIndexByte(seg, '.')
	if i <= 0 || len(seg)-i-1 > 5 || i == len(seg)-1 {
		return seg, ""
	}
	letter := false
	for _, c := range seg[i+1:] {
		switch {
		case c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z':
			letter = true
		case c >= '0' && c <= '9':
		default:
			return seg, ""
		}
	}
	if !letter {
		return seg, ""
	}
	return seg[:i], seg[i:]
}

func isDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

// isUUID reports whether s is a UUID in its 8-4-4-4-12 hex form.
func isUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if i == 8 || i == 13 || i == 18 || i == 23 {
			if s[i] != '-' {
				return false
			}
		} else if !isHex(s[i]) {
			return false
		}
	}
	return true
}

// isDate reports whether s is a date, YYYY-MM-DD, or a date and time in
// RFC 3339's shape.
func isDate(s string) bool {
	if len(s) < 10 || s[4] != '-' || s[7] != '-' {
		return false
	}
	return isDigits(s[:4]) && isDigits(s[5:7]) && isDigits(s[8:10]) &&
		(len(s) == 10 || s[10] == 'T' || s[10] == 't')
}

// isToken reports whether s is a long opaque token: at least 16 hex
// digits with a digit among them, or at least 20 characters of base64
// (standard or URL alphabet) with a digit and letters of both cases.
func isToken(s string) bool {
	if len(s) < 16 {
		return false
	}
	hex, digit, lower, upper := true, false, false, false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= '0' && c <= '9':
			digit = true
		case c >= 'a' && c <= 'z':
			lower = true
			hex = hex && c <= 'f'
		case c >= 'A' && c <= 'Z':
			upper = true
			hex = hex && c <= 'F'
		case c == '-' || c == '_' || c == '+' || c == '=' || c == '~' || c == '%':
			hex = false
		default:
			return false // a '.', a ',': words, not a token
		}
	}
	switch {
	case hex:
		return digit
	case len(s) >= 20 && digit && lower && upper:
		return true
	}
	return false
}
