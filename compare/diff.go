package compare

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
)

// difference is one field in which two responses differ.
type difference struct {
	// Field names the field for aggregation: "status", "header <Name>",
	// "body", or a JSON pointer into the body in which every array index
	// is "*", so that /items/0/id and /items/1/id count as one field.
	Field string `json:"field"`
	// Pointer is the field's exact JSON pointer, for body fields.
	Pointer string `json:"pointer,omitempty"`
	// Primary and Shadow are the two values, cut to maxValueLen bytes.
	Primary string `json:"primary"`
	Shadow  string `json:"shadow"`
}

const (
	// maxValueLen is the most bytes of a value kept in a difference.
	maxValueLen = 200
	// maxDifferences is the most differences reported for one pair of
	// responses; the walk stops there.
	maxDifferences = 64
	// absent stands for a JSON member that one side does not have.
	absent = "(absent)"
)

// secretHeaders are never shown, whatever the compare config says.
var secretHeaders = []string{"Authorization", "Cookie", "Set-Cookie", "Proxy-Authorization"}

// diffResponses compares the shadow's response b with the primary's
// response a under c. Bodies must already be decoded. It reports whether
// either body was over c's limit, in which case bodies are not compared.
func diffResponses(c *Config, a, b *decodedResponse) (diffs []difference, truncated bool) {
	if c.compareStatus && a.status != b.status {
		// responses with different statuses are different kinds of
		// response; their headers and bodies are not compared
		return []difference{{Field: "status", Primary: strconv.Itoa(a.status), Shadow: strconv.Itoa(b.status)}}, false
	}
	grpc := isGRPC(a.header.Get("Content-Type"))
	if grpc && c.compareStatus {
		var differ bool
		if diffs, differ = diffGRPCStatus(a, b, diffs); differ {
			return diffs, false
		}
	}
	for _, name := range c.headerNames {
		av, bv := strings.Join(a.header.Values(name), ", "), strings.Join(b.header.Values(name), ", ")
		if av == bv {
			continue
		}
		if slices.Contains(secretHeaders, name) {
			av, bv = "[redacted]", "[redacted]"
		}
		diffs = append(diffs, difference{Field: "header " + name, Primary: cut(av), Shadow: cut(bv)})
	}
	if c.Body == "off" {
		return diffs, false
	}
	if a.truncated || b.truncated {
		return diffs, true
	}
	if a.bodyErr != nil || b.bodyErr != nil {
		return append(diffs, difference{Field: "body", Primary: errText(a.bodyErr), Shadow: errText(b.bodyErr)}), false
	}
	if a.undecoded != "" || b.undecoded != "" {
		// an encoding that is not decoded compares as its bytes, with the
		// same encoding's only
		if a.undecoded != b.undecoded || !bytes.Equal(a.body, b.body) {
			diffs = append(diffs, difference{Field: "body", Primary: encodedText(a), Shadow: encodedText(b)})
		}
		return diffs, false
	}
	if bytes.Equal(a.body, b.body) {
		return diffs, false
	}
	if grpc && c.Body == "auto" {
		return diffGRPCMessages(a.body, b.body, diffs), false
	}
	if c.Body == "json" || (c.Body == "auto" && isJSON(a.header.Get("Content-Type"))) {
		return diffJSON(c, a, b, diffs), false
	}
	if !bytes.Equal(a.body, b.body) {
		diffs = append(diffs, difference{Field: "body", Primary: cut(string(a.body)), Shadow: cut(string(b.body))})
	}
	return diffs, false
}

// encodedText shows a body that may not have been decoded.
func encodedText(d *decodedResponse) string {
	if d.undecoded == "" {
		return cut(string(d.body))
	}
	return fmt.Sprintf("(%d bytes in Content-Encoding %q, compared undecoded)", len(d.body), d.undecoded)
}

// isJSON reports whether a Content-Type names JSON: application/json or
// any +json type.
func isJSON(contentType string) bool {
	mediaType, _, _ := strings.Cut(contentType, ";")
	mediaType = strings.ToLower(strings.TrimSpace(mediaType))
	return mediaType == "application/json" || strings.HasSuffix(mediaType, "+json")
}

// diffJSON appends the structural differences between two JSON bodies,
// which are not the same bytes. A body that is not valid JSON is a
// difference of the whole body.
func diffJSON(c *Config, a, b *decodedResponse, diffs []difference) []difference {
	av, aerr := a.parsedJSON()
	bv, berr := b.parsedJSON()
	if aerr != nil || berr != nil {
		return append(diffs, difference{Field: "body", Primary: jsonErrText(a.body, aerr), Shadow: jsonErrText(b.body, berr)})
	}
	w := jsonWalker{ignore: c.ignore, diffs: diffs}
	w.walk(nil, av, bv)
	return w.diffs
}

// parsedJSON returns the body decoded as JSON, decoding it on first use:
// the primary's body is compared with both the shadow's and the noise
// target's.
func (d *decodedResponse) parsedJSON() (any, error) {
	if !d.parsed {
		d.parsed = true
		d.json, d.jsonErr = parseJSON(d.body)
	}
	return d.json, d.jsonErr
}

// parseJSON decodes exactly one JSON value, keeping numbers as written.
func parseJSON(body []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("data after the JSON value")
	}
	return v, nil
}

// jsonWalker walks two decoded JSON values side by side.
type jsonWalker struct {
	ignore []pointerPattern
	diffs  []difference
}

// segment is one step of a path into a JSON value: a member name, or an
// array index.
type segment struct {
	key   string
	index bool
}

func (w *jsonWalker) walk(path []segment, a, b any) {
	if len(w.diffs) >= maxDifferences {
		return
	}
	for _, p := range w.ignore {
		if p.matches(path) {
			return
		}
	}
	switch av := a.(type) {
	case map[string]any:
		if bv, ok := b.(map[string]any); ok {
			keys := make([]string, 0, len(av)+len(bv))
			for k := range av {
				keys = append(keys, k)
			}
			for k := range bv {
				if _, dup := av[k]; !dup {
					keys = append(keys, k)
				}
			}
			slices.Sort(keys)
			for _, k := range keys {
				ae, aok := av[k]
				be, bok := bv[k]
				switch {
				case aok && bok:
					w.walk(append(path, segment{key: k}), ae, be)
				case aok:
					w.add(append(path, segment{key: k}), render(ae), absent)
				default:
					w.add(append(path, segment{key: k}), absent, render(be))
				}
			}
			return
		}
	case []any:
		if bv, ok := b.([]any); ok {
			if len(av) != len(bv) {
				w.add(path, fmt.Sprintf("array of %d", len(av)), fmt.Sprintf("array of %d", len(bv)))
			}
			for i := range min(len(av), len(bv)) {
				w.walk(append(path, segment{key: strconv.Itoa(i), index: true}), av[i], bv[i])
			}
			return
		}
	case json.Number:
		if bv, ok := b.(json.Number); ok && numbersEqual(av, bv) {
			return
		}
	case string, bool, nil:
		if a == b {
			return
		}
	}
	w.add(path, render(a), render(b))
}

// add records a difference at path. Path segments are JSON member names
// or array indexes; the aggregated field name replaces indexes with "*".
func (w *jsonWalker) add(path []segment, a, b string) {
	if len(w.diffs) >= maxDifferences {
		return
	}
	if len(path) == 0 {
		w.diffs = append(w.diffs, difference{Field: "body", Primary: a, Shadow: b})
		return
	}
	var pointer, field strings.Builder
	for _, seg := range path {
		if pointer.Len() > maxFieldLen {
			break // cut below; the rest cannot show
		}
		esc := escapePointer(seg.key[:min(len(seg.key), maxFieldLen+1)])
		pointer.WriteString("/" + esc)
		if seg.index {
			field.WriteString("/*")
		} else {
			field.WriteString("/" + esc)
		}
	}
	w.diffs = append(w.diffs, difference{Field: cutField(field.String()), Pointer: cutField(pointer.String()), Primary: a, Shadow: b})
}

// maxFieldLen is the most bytes of a field name or JSON pointer that a
// difference keeps, and so the report, the metric labels and the logs: a
// shadow inventing a 900 KB member name makes a 256-byte field. Fields
// that agree on their first maxFieldLen bytes are counted as one.
const maxFieldLen = 256

// cutField shortens a field name or pointer to maxFieldLen bytes of valid
// UTF-8, marking the cut with "…".
func cutField(s string) string {
	if len(s) <= maxFieldLen {
		return strings.ToValidUTF8(s, "\uFFFD")
	}
	return cutTo(s, maxFieldLen)
}

// numbersEqual compares two JSON numbers by value, so 1, 1.0, 10e-1 and
// 1e0 are equal. It compares their digits and the position of the
// decimal point, never their values, so its cost is linear in the
// numbers' lengths whatever their exponents (a shadow answering 1e-999999
// costs no more than one answering 1). Exponents beyond ±10^15 compare as
// written.
func numbersEqual(a, b json.Number) bool {
	if a == b {
		return true
	}
	ad, aok := parseDecimal(string(a))
	bd, bok := parseDecimal(string(b))
	return aok && bok && ad == bd
}

// decimal is a JSON number as 0.digits × 10^exp, with no leading or
// trailing zero in digits; zero has no digits and exponent 0, whatever its
// sign.
type decimal struct {
	neg    bool
	digits string
	exp    int64
}

// maxExponentDigits is the longest exponent that parseDecimal reads; a
// longer one could overflow the arithmetic on it.
const maxExponentDigits = 15

// parseDecimal parses a number in JSON's syntax, which json.Number holds
// once the decoder has read it.
func parseDecimal(s string) (decimal, bool) {
	var d decimal
	if strings.HasPrefix(s, "-") {
		d.neg, s = true, s[1:]
	}
	mantissa, exponent, _ := strings.Cut(strings.ToLower(s), "e")
	whole, frac, _ := strings.Cut(mantissa, ".")
	var exp int64
	if exponent != "" {
		digits := strings.TrimLeft(strings.TrimPrefix(strings.TrimPrefix(exponent, "+"), "-"), "0")
		if len(digits) > maxExponentDigits {
			return d, false
		}
		n, err := strconv.ParseInt(exponent, 10, 64)
		if err != nil {
			return d, false
		}
		exp = n
	}
	// the point sits after whole; leading zeros move it left
	all := whole + frac
	lead := len(all) - len(strings.TrimLeft(all, "0"))
	all = strings.TrimRight(all[lead:], "0")
	if all == "" {
		return decimal{}, true // zero, whatever its sign
	}
	d.digits = all
	d.exp = int64(len(whole)-lead) + exp
	return d, true
}

// render writes a decoded JSON value compactly, cut to maxValueLen.
func render(v any) string {
	out, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return cut(string(out))
}

// cut shortens s to at most maxValueLen bytes of valid UTF-8.
func cut(s string) string {
	if len(s) <= maxValueLen {
		return strings.ToValidUTF8(s, "\uFFFD")
	}
	return cutTo(s, maxValueLen)
}

// cutTo cuts s, longer than n bytes, to at most n bytes of valid UTF-8
// followed by "…".
func cutTo(s string, n int) string {
	// a rune cut in two at n is invalid, and dropped with any other
	return strings.ToValidUTF8(s[:n], "") + "…"
}

func errText(err error) string {
	if err == nil {
		return "(complete)"
	}
	return cut("(incomplete: " + err.Error() + ")")
}

func jsonErrText(body []byte, err error) string {
	if err == nil {
		return cut(string(body))
	}
	return cut("(invalid JSON: " + err.Error() + ") " + string(body))
}

// pointerPattern is a parsed JSON pointer whose "*" segments match any
// member name or array index.
type pointerPattern []string

func parsePointerPattern(p string) pointerPattern {
	if p == "" {
		return pointerPattern{}
	}
	segs := strings.Split(strings.TrimPrefix(p, "/"), "/")
	for i, s := range segs {
		segs[i] = pointerUnescaper.Replace(s)
	}
	return segs
}

// matches reports whether the pattern names exactly path; everything
// under a matched path is skipped with it.
func (p pointerPattern) matches(path []segment) bool {
	if len(p) != len(path) {
		return false
	}
	for i, seg := range p {
		if seg != "*" && seg != path[i].key {
			return false
		}
	}
	return true
}

func escapePointer(seg string) string {
	if !strings.ContainsAny(seg, "~/") {
		return seg
	}
	return pointerEscaper.Replace(seg)
}

var (
	pointerEscaper   = strings.NewReplacer("~", "~0", "/", "~1")
	pointerUnescaper = strings.NewReplacer("~1", "/", "~0", "~")
)
