package main

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Request headers that tell the tunable shadow how to answer.
const (
	// delayHeader is how long it waits, once it has read the body, before
	// it answers (a Go duration).
	delayHeader = "X-Bench-Delay"
	// streamHeader makes it stream its response slowly:
	// "<duration>@<bytes per second>[/<every>]", as in "30s@102400" or
	// "5s@820/1.25s": a piece every streamTick, or every <every>.
	streamHeader = "X-Bench-Stream"
)

// streamTick is how often the tunable shadow writes a streamed response's
// next piece, unless the stream says otherwise.
const streamTick = 100 * time.Millisecond

// newTunableShadow starts the shadow of scenario 13: it reads the body
// (checking it whole when the request declares its length and checksum),
// waits as delayHeader says, and answers the primary's body, at once or
// streamed as streamHeader says. It counts what it got by tag.
func newTunableShadow() (*backend, error) {
	tags := newTagCounter()
	return serveCounted(tags, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tags.readBody(r)
		if d, err := time.ParseDuration(r.Header.Get(delayHeader)); err == nil {
			pause(r, d)
		}
		answered := true
		if spec := r.Header.Get(streamHeader); spec != "" {
			st, err := parseStream(spec)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			answered = streamSlowly(w, r, st)
		} else {
			_, _ = w.Write(primaryBody)
		}
		tags.add(r.Header.Get(tagHeader), func(n *tagCount) {
			if answered {
				n.Answered++
			} else {
				n.Cut++
			}
		})
	}))
}

// stream is how the tunable shadow streams a response: rate bytes per
// second for d, a piece every every.
type stream struct {
	d, every time.Duration
	rate     int
}

// parseStream parses a streamHeader value, "<duration>@<bytes per
// second>[/<every>]".
func parseStream(spec string) (stream, error) {
	st := stream{every: streamTick}
	ds, rs, ok := strings.Cut(spec, "@")
	if !ok {
		return st, fmt.Errorf("%s %q: want <duration>@<bytes per second>[/<every>]", streamHeader, spec)
	}
	var err error
	if st.d, err = time.ParseDuration(ds); err != nil || st.d <= 0 {
		return st, fmt.Errorf("%s %q: the duration: %v", streamHeader, spec, err)
	}
	rs, every, hasEvery := strings.Cut(rs, "/")
	if hasEvery {
		if st.every, err = time.ParseDuration(every); err != nil || st.every <= 0 || st.every > st.d {
			return st, fmt.Errorf("%s %q: the piece interval must be a duration between 0 and the stream's", streamHeader, spec)
		}
	}
	if st.rate, err = strconv.Atoi(rs); err != nil || st.rate <= 0 {
		return st, fmt.Errorf("%s %q: the rate must be a positive number of bytes per second", streamHeader, spec)
	}
	if st.piece() == 0 {
		return st, fmt.Errorf("%s %q: less than a byte a piece", streamHeader, spec)
	}
	return st, nil
}

// piece is how many bytes each piece of the stream has.
func (st stream) piece() int {
	return int(float64(st.rate) * st.every.Seconds())
}

// streamSlowly sends the headers at once, then st's pieces, one every
// st.every, the last at st.d, with a Content-Length, and reports whether
// every byte was written; it stops when a write fails (the client is
// gone).
func streamSlowly(w http.ResponseWriter, r *http.Request, st stream) bool {
	ticks := int(st.d / st.every)
	piece := make([]byte, st.piece())
	for i := range piece {
		piece[i] = 'd'
	}
	w.Header().Set("Content-Length", strconv.Itoa(ticks*len(piece)))
	flusher, _ := w.(http.Flusher)
	if flusher != nil {
		flusher.Flush()
	}
	tick := time.NewTicker(st.every) // pacing the response, not synchronising
	defer tick.Stop()
	for range ticks {
		select {
		case <-tick.C:
		case <-r.Context().Done():
			return false
		}
		if _, err := w.Write(piece); err != nil {
			return false
		}
		if flusher != nil {
			flusher.Flush()
		}
	}
	return true
}
