package compare

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"

	"go.uber.org/zap"
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
func capturedJSON(body []byte) *Response {
	r := newResponse(int64(len(body)))
	r.got, r.status = true, http.StatusOK
	r.header = http.Header{"Content-Type": {"application/json"}}
	r.body = bytes.NewBuffer(body)
	return r
}

// newBenchComparer returns the comparison of a candidate target with a
// noise source, with a report of its own: a verdict weighs every exchange
// the target's report has seen.
func newBenchComparer(b *testing.B) *Comparer {
	b.Helper()
	c, err := NewComparer(&Config{NoiseFrom: "bench-secondary"}, "bench-candidate", "http://c", nil, zap.NewNop())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(c.Close)
	return c
}

// BenchmarkCompare measures what one exchange costs the mirror goroutine
// that compares it: diffing the candidate's and the secondary's JSON
// responses with the primary's, and recording the result. None of it
// runs on the request path.
func BenchmarkCompare(b *testing.B) {
	for _, size := range []int{4 << 10, 64 << 10} {
		b.Run(fmt.Sprintf("json_%dKiB", size>>10), func(b *testing.B) {
			candidate := newBenchComparer(b)
			primary := capturedJSON(reviewDocument(size, "", "p"))
			shadow := capturedJSON(reviewDocument(size, " (v2)", "c"))
			noise := capturedJSON(reviewDocument(size, "", "s"))
			ex := &Exchange{method: http.MethodGet, path: "/reviews"}
			b.SetBytes(int64(primary.body.Len()))
			b.ReportAllocs()
			for b.Loop() {
				if result := candidate.judge(ex, primary, shadow, noise).result; result != mismatch {
					b.Fatalf("result %v, want mismatch", result)
				}
			}
		})
	}
}

// BenchmarkCompareChunked is BenchmarkCompare's JSON exchange for a
// primary that answers as a Go service does with a body over 2 KiB: no
// Content-Length, so reverse_proxy flushes after every write. Each
// iteration captures the primary's response through the capture writer, 2 KiB
// and a flush at a time, then judges it: the capture's share of the cost
// shows next to BenchmarkCompare's.
func BenchmarkCompareChunked(b *testing.B) {
	for _, size := range []int{4 << 10, 64 << 10} {
		b.Run(fmt.Sprintf("json_%dKiB", size>>10), func(b *testing.B) {
			candidate := newBenchComparer(b)
			body := reviewDocument(size, "", "p")
			shadow := capturedJSON(reviewDocument(size, " (v2)", "c"))
			noise := capturedJSON(reviewDocument(size, "", "s"))
			ex := &Exchange{method: http.MethodGet, path: "/reviews"}
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			for b.Loop() {
				primary := newResponse(candidate.cfg.KeepBody())
				w := newCaptureWriter(httptest.NewRecorder(), primary)
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(http.StatusOK)
				for rest := body; len(rest) > 0; {
					n := min(len(rest), 2<<10)
					_, _ = w.Write(rest[:n])
					w.Flush()
					rest = rest[n:]
				}
				w.settle(false)
				if result := candidate.judge(ex, primary, shadow, noise).result; result != mismatch {
					b.Fatalf("result %v, want mismatch", result)
				}
				primary.releaseBody()
			}
		})
	}
}

// capturedGRPC is a captured unary gRPC response: one length-prefixed
// message and its grpc-status trailer.
func capturedGRPC(message []byte, status string) *Response {
	frame := make([]byte, 5, 5+len(message))
	binary.BigEndian.PutUint32(frame[1:], uint32(len(message)))
	r := newResponse(int64(len(frame) + len(message)))
	r.got, r.status = true, http.StatusOK
	r.header = http.Header{"Content-Type": {"application/grpc"}}
	r.body = bytes.NewBuffer(append(frame, message...))
	r.trailer = http.Header{"Grpc-Status": {status}, "Grpc-Message": {""}}
	return r
}

// BenchmarkCompareGRPC measures one unary gRPC exchange: grpc-status from
// the trailers, then the message compared as bytes, with a secondary.
func BenchmarkCompareGRPC(b *testing.B) {
	message := bytes.Repeat([]byte("review "), 64) // a 448-byte protobuf stands in
	changed := bytes.Clone(message)
	changed[10] = 'X'
	for _, tc := range []struct {
		name          string
		shadowMessage []byte
		shadowStatus  string
		want          compareResult
	}{
		{"unary_same", message, "0", match},
		{"unary_changed_message", changed, "0", mismatch},
		{"unary_unavailable", nil, "14", mismatch},
	} {
		b.Run(tc.name, func(b *testing.B) {
			// a report of its own: a verdict weighs every exchange the
			// target's report has seen
			candidate := newBenchComparer(b)
			ex := &Exchange{method: http.MethodPost, path: "/reviews.Reviews/Get"}
			b.ReportAllocs()
			for b.Loop() {
				// each exchange has its own captures, as in the mirror
				primary, noise := capturedGRPC(message, "0"), capturedGRPC(message, "0")
				shadow := capturedGRPC(tc.shadowMessage, tc.shadowStatus)
				if result := candidate.judge(ex, primary, shadow, noise).result; result != tc.want {
					b.Fatalf("result %v, want %v", result, tc.want)
				}
			}
		})
	}
}
