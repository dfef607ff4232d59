package main

import (
	"hash/crc32"
	"io"
	"net/http"
	"strconv"
	"sync"
)

// Request headers by which a load tells the backends what it sent. The
// mirror copies a request's headers, so a shadow reads the same ones as
// the primary.
const (
	// tagHeader names the load a request belongs to; the backends count
	// requests by it, so that one case's count is never another's (nor a
	// readiness probe's).
	tagHeader = "X-Bench-Tag"
	// sizeHeader and sumHeader declare the body's length and CRC-32C
	// (Castagnoli, in hex), so that a backend can tell a body that arrived
	// whole. CRC-32C, which the CPU computes, lets a backend check a body
	// as fast as it reads it, where SHA-256 would slow it down.
	sizeHeader = "X-Bench-Size"
	sumHeader  = "X-Bench-Crc32c"
)

// tagCount is what one backend saw of the requests of one tag.
type tagCount struct {
	Received int64 `json:"received"` // requests that arrived
	Whole    int64 `json:"whole"`    // bodies read to their end with the declared length and checksum
	Short    int64 `json:"short"`    // bodies with a declared length and checksum that arrived otherwise
	Answered int64 `json:"answered"` // responses written to their end
	Cut      int64 `json:"cut"`      // streamed responses whose reader went away before their end
}

// tagCounter counts one backend's requests by tag.
type tagCounter struct {
	mu     sync.Mutex
	counts map[string]*tagCount
}

// newTagCounter returns an empty counter.
func newTagCounter() *tagCounter {
	return &tagCounter{counts: map[string]*tagCount{}}
}

// add applies f to the count of tag; a request with no tag is not counted.
func (c *tagCounter) add(tag string, f func(*tagCount)) {
	if tag == "" {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	n, ok := c.counts[tag]
	if !ok {
		n = &tagCount{}
		c.counts[tag] = n
	}
	f(n)
}

// get returns the count of tag so far.
func (c *tagCounter) get(tag string) tagCount {
	c.mu.Lock()
	defer c.mu.Unlock()
	if n, ok := c.counts[tag]; ok {
		return *n
	}
	return tagCount{}
}

// readBody reads r's body to its end and, when the request declares its
// length and checksum, counts it under its tag as whole or short.
func (c *tagCounter) readBody(r *http.Request) {
	size, sum := r.Header.Get(sizeHeader), r.Header.Get(sumHeader)
	if size == "" || sum == "" {
		_, _ = io.Copy(io.Discard, r.Body)
		return
	}
	whole := bodyIsWhole(r.Body, size, sum)
	c.add(r.Header.Get(tagHeader), func(n *tagCount) {
		if whole {
			n.Whole++
		} else {
			n.Short++
		}
	})
}

// castagnoli is the CRC-32C table.
var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// bodyIsWhole reads body to its end and reports whether it had the
// declared length (decimal) and CRC-32C (hex).
func bodyIsWhole(body io.Reader, size, sum string) bool {
	h := crc32.New(castagnoli)
	n, err := io.Copy(h, body)
	want, perr := strconv.ParseInt(size, 10, 64)
	return err == nil && perr == nil && n == want && strconv.FormatUint(uint64(h.Sum32()), 16) == sum
}

// bodyHeaders returns the headers that declare body's length and checksum.
func bodyHeaders(body []byte) http.Header {
	sum := crc32.Checksum(body, castagnoli)
	return http.Header{sizeHeader: {strconv.Itoa(len(body))}, sumHeader: {strconv.FormatUint(uint64(sum), 16)}}
}
