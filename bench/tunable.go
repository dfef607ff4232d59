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
	// "<duration>@<bytes per second>", as in "30s@102400".
	streamHeader = "X-Bench-Stream"
)

// streamTick is how often the tunable shadow writes a streamed response's
// next piece.
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
			d, rate, err := parseStream(spec)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			answered = streamSlowly(w, r, d, rate)
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

// parseStream parses a streamHeader value, "<duration>@<bytes per
// second>".
func parseStream(spec string) (d time.Duration, rate int, err error) {
	ds, rs, ok := strings.Cut(spec, "@")
	if !ok {
		return 0, 0, fmt.Errorf("%s %q: want <duration>@<bytes per second>", streamHeader, spec)
	}
	if d, err = time.ParseDuration(ds); err != nil || d <= 0 {
		return 0, 0, fmt.Errorf("%s %q: the duration: %v", streamHeader, spec, err)
	}
	if rate, err = strconv.Atoi(rs); err != nil || rate <= 0 {
		return 0, 0, fmt.Errorf("%s %q: the rate must be a positive number of bytes per second", streamHeader, spec)
	}
	return d, rate, nil
}

// streamSlowly writes rate bytes per second for d, a piece every
// streamTick, with a Content-Length, and reports whether every byte was
// written; it stops when a write fails (the client is gone).
func streamSlowly(w http.ResponseWriter, r *http.Request, d time.Duration, rate int) bool {
	ticks := int(d / streamTick)
	piece := make([]byte, rate*int(streamTick)/int(time.Second))
	for i := range piece {
		piece[i] = 'd'
	}
	w.Header().Set("Content-Length", strconv.Itoa(ticks*len(piece)))
	flusher, _ := w.(http.Flusher)
	tick := time.NewTicker(streamTick) // pacing the response, not synchronising
	defer tick.Stop()
	for range ticks {
		if _, err := w.Write(piece); err != nil {
			return false
		}
		if flusher != nil {
			flusher.Flush()
		}
		select {
		case <-tick.C:
		case <-r.Context().Done():
			return false
		}
	}
	return true
}
