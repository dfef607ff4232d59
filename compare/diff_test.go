package compare

import (
	"net/http"
	"reflect"
	"strings"
	"testing"
)

// jsonResponse is a 200 application/json response with body.
func jsonResponse(body string) *decodedResponse {
	return &decodedResponse{
		status: 200,
		header: http.Header{"Content-Type": {"application/json; charset=utf-8"}},
		body:   []byte(body),
	}
}

// provisionedConfig returns c with its defaults set, as Provision sets them.
func provisionedConfig(c Config) *Config {
	c.Provision()
	return &c
}

func TestDiffJSON(t *testing.T) {
	type diff struct{ field, pointer, primary, shadow string }
	for _, tc := range []struct {
		name           string
		ignore         []string
		primary, shdow string
		want           []diff
	}{
		{name: "equal", primary: `{"a":1}`, shdow: `{"a":1}`},
		{name: "key order does not matter", primary: `{"a":1,"b":[1,2]}`, shdow: `{"b":[1,2],"a":1}`},
		{name: "number formatting does not matter", primary: `{"a":1,"b":0.5,"c":100}`, shdow: `{"a":1.0,"b":5e-1,"c":1E2}`},
		{name: "numbers that differ", primary: `{"a":1}`, shdow: `{"a":1.5}`,
			want: []diff{{"/a", "/a", "1", "1.5"}}},
		{name: "large integers compare exactly", primary: `{"id":9007199254740993}`, shdow: `{"id":9007199254740992}`,
			want: []diff{{"/id", "/id", "9007199254740993", "9007199254740992"}}},
		{name: "nested objects", primary: `{"a":{"b":{"c":"x","d":true}}}`, shdow: `{"a":{"b":{"c":"y","d":true}}}`,
			want: []diff{{"/a/b/c", "/a/b/c", `"x"`, `"y"`}}},
		{name: "member added and removed (a rename)", primary: `{"title":"t","n":1}`, shdow: `{"name":"t","n":1}`,
			want: []diff{{"/name", "/name", absent, `"t"`}, {"/title", "/title", `"t"`, absent}}},
		{name: "arrays of different length", primary: `{"a":[1,2,3]}`, shdow: `{"a":[1,5]}`,
			want: []diff{{"/a", "/a", "array of 3", "array of 2"}, {"/a/*", "/a/1", "2", "5"}}},
		{name: "array indexes aggregate as *", primary: `[{"id":1},{"id":2}]`, shdow: `[{"id":1},{"id":3}]`,
			want: []diff{{"/*/id", "/1/id", "2", "3"}}},
		{name: "type change", primary: `{"a":"1"}`, shdow: `{"a":1}`,
			want: []diff{{"/a", "/a", `"1"`, "1"}}},
		{name: "null and absent differ", primary: `{"a":null}`, shdow: `{}`,
			want: []diff{{"/a", "/a", "null", absent}}},
		{name: "ignore an exact pointer", ignore: []string{"/meta/request_id"},
			primary: `{"meta":{"request_id":"a","v":1}}`, shdow: `{"meta":{"request_id":"b","v":2}}`,
			want: []diff{{"/meta/v", "/meta/v", "1", "2"}}},
		{name: "ignore with * over array indexes", ignore: []string{"/items/*/updated_at"},
			primary: `{"items":[{"updated_at":1,"id":1},{"updated_at":2,"id":2}]}`,
			shdow:   `{"items":[{"updated_at":3,"id":1},{"updated_at":4,"id":9}]}`,
			want:    []diff{{"/items/*/id", "/items/1/id", "2", "9"}}},
		{name: "ignore with * over object keys", ignore: []string{"/*/ts"},
			primary: `{"a":{"ts":1},"b":{"ts":2}}`, shdow: `{"a":{"ts":5},"b":{"ts":6}}`},
		{name: "ignore a whole subtree", ignore: []string{"/debug"},
			primary: `{"debug":{"x":[1]}}`, shdow: `{"debug":{"y":2}}`},
		{name: "escaped pointer segments", ignore: []string{"/a~1b"},
			primary: `{"a/b":1,"c~d":1}`, shdow: `{"a/b":2,"c~d":2}`,
			want: []diff{{"/c~0d", "/c~0d", "1", "2"}}},
		{name: "not JSON though it claims to be", primary: `{"a":1}`, shdow: `<html>oops</html>`,
			want: []diff{{"body", "", `{"a":1}`, "(invalid JSON: invalid character '<' looking for beginning of value) <html>oops</html>"}}},
		{name: "trailing garbage is not JSON", primary: `{"a":1}`, shdow: `{"a":1}}`,
			want: []diff{{"body", "", `{"a":1}`, `(invalid JSON: data after the JSON value) {"a":1}}`}}},
		{name: "the same invalid bytes are equal", primary: `not json`, shdow: `not json`},
		{name: "root value differs", primary: `1`, shdow: `"1"`,
			want: []diff{{"body", "", "1", `"1"`}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := provisionedConfig(Config{Ignore: tc.ignore})
			diffs, truncated := diffResponses(c, jsonResponse(tc.primary), jsonResponse(tc.shdow))
			if truncated {
				t.Fatal("truncated, want not")
			}
			var got []diff
			for _, d := range diffs {
				got = append(got, diff{d.Field, d.Pointer, d.Primary, d.Shadow})
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("differences:\n got %q\nwant %q", got, tc.want)
			}
		})
	}
}

func TestDiffStatusHeadersAndBytes(t *testing.T) {
	text := func(status int, body string, header ...string) *decodedResponse {
		h := http.Header{"Content-Type": {"text/plain"}}
		for i := 0; i < len(header); i += 2 {
			h.Add(header[i], header[i+1])
		}
		return &decodedResponse{status: status, header: h, body: []byte(body)}
	}
	c := provisionedConfig(Config{Headers: []string{"cache-control", "set-cookie"}})

	diffs, _ := diffResponses(c, text(200, "a"), text(500, "b", "Cache-Control", "x"))
	if len(diffs) != 1 || diffs[0] != (difference{Field: "status", Primary: "200", Shadow: "500"}) {
		t.Errorf("different statuses: got %+v, want only the status", diffs)
	}

	diffs, _ = diffResponses(c,
		text(200, "same", "Cache-Control", "max-age=60", "Set-Cookie", "session=primary-secret"),
		text(200, "same", "Cache-Control", "no-store", "Set-Cookie", "session=shadow-secret"))
	want := []difference{
		{Field: "header Cache-Control", Primary: "max-age=60", Shadow: "no-store"},
		{Field: "header Set-Cookie", Primary: "[redacted]", Shadow: "[redacted]"},
	}
	if !reflect.DeepEqual(diffs, want) {
		t.Errorf("header differences: got %+v, want %+v", diffs, want)
	}

	diffs, _ = diffResponses(c, text(200, "hello"), text(200, "hullo"))
	if len(diffs) != 1 || diffs[0].Field != "body" || diffs[0].Shadow != "hullo" {
		t.Errorf("byte bodies: got %+v, want one body difference", diffs)
	}

	off := provisionedConfig(Config{Body: "off", Status: new(bool)})
	if diffs, _ := diffResponses(off, text(200, "a"), text(503, "b")); len(diffs) != 0 {
		t.Errorf("status false, body off: got %+v, want no differences", diffs)
	}

	long := strings.Repeat("é", 300)
	diffs, _ = diffResponses(c, text(200, long), text(200, long+"x"))
	if got := diffs[0].Primary; len(got) > maxValueLen+len("…") || !strings.HasSuffix(got, "…") {
		t.Errorf("long value kept as %d bytes, want at most %d and an ellipsis", len(got), maxValueLen)
	}

	a, b := text(200, "x"), text(200, "x")
	b.truncated = true
	if diffs, truncated := diffResponses(c, a, b); !truncated || len(diffs) != 0 {
		t.Errorf("truncated body: got %+v, truncated %v; want no body comparison and truncated", diffs, truncated)
	}
}
