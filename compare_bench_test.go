package mirror

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
)

// reviewDocument is a JSON document of about size bytes: a meta object
// and an array of items. variant changes one item's title, and id the
// meta's request_id, as a candidate and a secondary would.
func reviewDocument(size int, variant, id string) []byte {
	doc := map[string]any{"meta": map[string]any{"request_id": id, "version": 1}}
	var items []any
	for i := 0; ; i++ {
		item := map[string]any{"id": i, "title": fmt.Sprintf("item %d", i), "stars": 4.5, "tags": []string{"a", "b"}}
		if i == 3 {
			item["title"] = "item 3" + variant
		}
		items = append(items, item)
		doc["items"] = items
		if out, _ := json.Marshal(doc); len(out) >= size {
			return out
		}
	}
}

// capturedJSON is a captured 200 JSON response with body.
func capturedJSON(body []byte) *capturedResponse {
	r := newCapturedResponse(int64(len(body)))
	r.got, r.status = true, http.StatusOK
	r.header = http.Header{"Content-Type": {"application/json"}}
	r.body = bytes.NewBuffer(body)
	return r
}

// BenchmarkCompare measures what one exchange costs the mirror goroutine
// that compares it: diffing the candidate's and the secondary's JSON
// responses with the primary's, and recording the result. None of it
// runs on the request path.
func BenchmarkCompare(b *testing.B) {
	for _, size := range []int{4 << 10, 64 << 10} {
		b.Run(fmt.Sprintf("json_%dKiB", size>>10), func(b *testing.B) {
			h := provisionHandler(b, `{"targets":[{"name":"bench-secondary","upstream":"http://s"},
				{"name":"bench-candidate","upstream":"http://c","compare":{"noise_from":"bench-secondary"}}]}`)
			candidate := h.Targets[1]
			primary := capturedJSON(reviewDocument(size, "", "p"))
			shadow := capturedJSON(reviewDocument(size, " (v2)", "c"))
			noise := capturedJSON(reviewDocument(size, "", "s"))
			ex := &exchange{method: http.MethodGet, path: "/reviews"}
			b.SetBytes(int64(primary.body.Len()))
			b.ReportAllocs()
			for b.Loop() {
				if result, _ := candidate.judge(ex, primary, shadow, noise); result != mismatch {
					b.Fatalf("result %v, want mismatch", result)
				}
			}
		})
	}
}
