package compare

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"net/http"
	"runtime"
	"strings"
	"testing"
)

// The comparison is bounded in CPU and memory whatever a shadow sends:
// these tests measure what one comparison allocates, which a shadow could
// otherwise choose.

// allocated returns how many bytes f allocates.
func allocated(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

func TestNumbersEqual(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		want bool
	}{
		{"1", "1.0", true},
		{"1", "10e-1", true},
		{"1", "1e0", true},
		{"100", "1e2", true},
		{"0.001", "1e-3", true},
		{"0", "-0", true},
		{"0", "0.000e99", true},
		{"-1.5", "-15e-1", true},
		{"1", "-1", false},
		{"1", "1.0000000000000000000000001", false},
		{"123456789012345678901234567890", "1.2345678901234567890123456789e29", true},
		{"123456789012345678901234567890", "1.2345678901234567890123456788e29", false},
		{"1e-999999", "10e-1000000", true},
		{"1e-999999", "1e-999998", false},
		{"1e999999999999999999999", "1e999999999999999999999", true},   // as written
		{"1e999999999999999999999", "10e999999999999999999998", false}, // past the exponents read
	} {
		if got := numbersEqual(json.Number(tc.a), json.Number(tc.b)); got != tc.want {
			t.Errorf("numbersEqual(%s, %s) = %v, want %v", tc.a, tc.b, got, tc.want)
		}
		if got := numbersEqual(json.Number(tc.b), json.Number(tc.a)); got != tc.want {
			t.Errorf("numbersEqual(%s, %s) = %v, want %v", tc.b, tc.a, got, tc.want)
		}
	}
}

// TestNumberBombCostsNothing: numbers with huge exponents, which a shadow
// can send in a few bytes, cost what any number costs. big.Rat built each
// one's value: about 400 KB and a quarter of a second for 1e-999999.
func TestNumberBombCostsNothing(t *testing.T) {
	c := compareConfig(t, `{}`)
	primary := decodedJSON(`{"a":1e-999999,"b":[1e999999,2e-999999,3e999999]}`)
	shadow := decodedJSON(`{"a":2e-999999,"b":[1e999998,2e-999999,4e999999]}`)
	var diffs []difference
	n := allocated(func() {
		for range 100 {
			diffs = diffJSON(c, &primary, &shadow, nil)
			primary.parsed, shadow.parsed = false, false
		}
	})
	if len(diffs) != 3 {
		t.Errorf("differences %+v, want /a, /b/0 and /b/2", diffs)
	}
	if n > 10<<20 {
		t.Errorf("100 comparisons of numbers with huge exponents allocated %d bytes, want what parsing them takes, well under 10 MiB", n)
	}
}

// TestFieldNamesAreCut: a shadow inventing a 900 KB member name makes a
// field, and a pointer, of maxFieldLen bytes and a mark, whatever reports,
// labels or logs do with them.
func TestFieldNamesAreCut(t *testing.T) {
	c := compareConfig(t, `{}`)
	long := strings.Repeat("k", 900<<10)
	primary := decodedJSON(`{"items":[{"a":1}]}`)
	shadow := decodedJSON(`{"items":[{"a":1,"` + long + `":2}]}`)
	diffs := diffJSON(c, &primary, &shadow, nil)
	if len(diffs) != 1 {
		t.Fatalf("differences %d, want 1", len(diffs))
	}
	d := diffs[0]
	for name, v := range map[string]string{"field": d.Field, "pointer": d.Pointer} {
		if len(v) > maxFieldLen+len("…") || !strings.HasSuffix(v, "…") || !strings.HasPrefix(v, "/items/") {
			t.Errorf("%s is %d bytes (%.40q...), want it cut to %d and marked", name, len(v), v, maxFieldLen)
		}
	}
}

// zstdFrameWithWindow returns a zstd frame of one empty raw block whose
// header asks for a window of 2^log bytes.
func zstdFrameWithWindow(log int) []byte {
	var frame bytes.Buffer
	_ = binary.Write(&frame, binary.LittleEndian, uint32(0xFD2FB528)) // magic
	frame.WriteByte(0x00)                                             // no checksum, no dictionary, window descriptor present
	frame.WriteByte(byte((log - 10) << 3))                            // exponent, mantissa 0
	frame.Write([]byte{0x01, 0x00, 0x00})                             // last block, raw, size 0
	return frame.Bytes()
}

// TestZstdWindowBombIsRefused: 18 bytes from a shadow declaring a 512 MiB
// window made each comparison allocate 512 MiB; the decoder now refuses a
// window over maxZstdWindow without allocating it.
func TestZstdWindowBombIsRefused(t *testing.T) {
	bomb := zstdFrameWithWindow(29)
	c := &Response{status: 200, header: http.Header{"Content-Encoding": {"zstd"}, "Content-Type": {"application/json"}}, body: bytes.NewBuffer(bomb), keep: 1 << 20}
	var d decodedResponse
	n := allocated(func() {
		d = decode(c, 1<<20)
		d.release()
	})
	if d.bodyErr == nil {
		t.Error("a zstd frame asking for a 512 MiB window decoded, want a body error")
	}
	if n > 16<<20 {
		t.Errorf("decoding it allocated %d bytes, want well under the window it asked for", n)
	}
	// a window that browsers accept still decodes
	ok := &Response{status: 200, header: http.Header{"Content-Encoding": {"zstd"}}, body: bytes.NewBuffer(zstdFrameWithWindow(20)), keep: 1 << 20}
	if d := decode(ok, 1<<20); d.bodyErr != nil {
		t.Errorf("a 1 MiB window: %v, want it decoded", d.bodyErr)
	}
}

// compareConfig provisions a Config from JSON.
func compareConfig(t *testing.T, raw string) *Config {
	t.Helper()
	c := new(Config)
	if err := json.Unmarshal([]byte(raw), c); err != nil {
		t.Fatal(err)
	}
	c.Provision()
	return c
}

// decodedJSON is a decoded JSON response with body.
func decodedJSON(body string) decodedResponse {
	return decodedResponse{status: 200, header: http.Header{"Content-Type": {"application/json"}}, body: []byte(body)}
}
