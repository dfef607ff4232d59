package compare

import "testing"

// FuzzDiffJSON checks the JSON comparison on arbitrary bodies: it never
// panics, a body never differs from itself, differences are bounded, and
// comparing a with b finds as many differences as comparing b with a.
func FuzzDiffJSON(f *testing.F) {
	f.Add([]byte(`{"a":1,"b":[1,2,{"c":null}]}`), []byte(`{"b":[1,2.0,{"c":false}],"a":1e0}`), "/b/*/c")
	f.Add([]byte(`[1,2,3]`), []byte(`[1,2]`), "")
	f.Add([]byte(`{"a~/b":"x"}`), []byte(`not json`), "/a~0~1b")
	f.Fuzz(func(t *testing.T, a, b []byte, ignore string) {
		c := provisionedConfig(Config{Body: "json", Ignore: []string{ignore}})
		ra, rb := jsonResponse(string(a)), jsonResponse(string(b))
		if diffs, _ := diffResponses(c, ra, ra); len(diffs) != 0 {
			t.Errorf("%q differs from itself: %+v", a, diffs)
		}
		ab, _ := diffResponses(c, ra, rb)
		ba, _ := diffResponses(c, rb, ra)
		if len(ab) > maxDifferences {
			t.Errorf("%d differences, want at most %d", len(ab), maxDifferences)
		}
		if len(ab) != len(ba) {
			t.Errorf("%q vs %q: %d differences one way, %d the other", a, b, len(ab), len(ba))
		}
	})
}
