package main

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"net/http"
	"sync"
	"time"
)

// fidelitySizes sizes scenario 13's cases; -quick shortens them.
type fidelitySizes struct {
	poissonFor  time.Duration // each Poisson rate's run
	reloads     int           // config loads in case 4
	reloadsOver time.Duration // the time they are spread over
	streamFor   time.Duration // each of case 5a's streams
	download    time.Duration // each of case 5b's downloads
	downloads   int
	uploads     int           // case 6's 48 MiB uploads
	slowFor     time.Duration // case 7's run
}

// fidelitySizesFor returns the sizes, or -quick's shorter ones.
func fidelitySizesFor(cfg *config) fidelitySizes {
	if cfg.quick {
		return fidelitySizes{poissonFor: time.Second, reloads: 5, reloadsOver: 2 * time.Second,
			streamFor: 3 * time.Second, download: 3 * time.Second, downloads: 2, uploads: 5, slowFor: 4 * time.Second}
	}
	return fidelitySizes{poissonFor: cfg.phase, reloads: 10, reloadsOver: 4 * time.Second,
		streamFor: 5 * time.Second, download: 30 * time.Second, downloads: 10, uploads: 100, slowFor: 20 * time.Second}
}

// fidelityCase is one of scenario 13's cases.
type fidelityCase struct {
	id, what string
	nginx    bool // whether nginx's mirror runs it too
	run      func(cfg *config, env *environment, server string) ([]fidelityRow, error)
}

// Fixed figures of the cases, as the issue gives them.
const (
	downloadRate    = 100 << 10 // bytes per second of case 5's downloads
	uploadSize      = 48 << 20  // case 6's bodies, over the default max_body_size, so streamed
	slowUploaders   = 20        // case 7's
	slowUploadEvery = 2 * time.Second
	case7Rate       = 10 // requests per second of case 7's normal traffic
	case7Primary    = 2 * time.Second
	reloadClients   = 32
	freshPosts      = 60      // case 0's concurrent POSTs
	freshPostSize   = 4 << 10 // and their bodies' size
	streams         = 8       // case 5a's streams, at once
	streamsAfter    = 20      // quick requests before them
	streamPieceRate = 820     // case 5a's bytes per second: 1 KiB a piece
	streamPieceGap  = 1250 * time.Millisecond
)

// fidelityCases are scenario 13's cases, in the order.
func fidelityCases(sz fidelitySizes) []fidelityCase {
	return []fidelityCase{
		{"0", fmt.Sprintf("a shadow answering at once: %d concurrent POSTs of %d KiB, the first requests after the config's load", freshPosts, freshPostSize>>10), true,
			burstCase("0", 1, freshPosts, 0, freshPostBody)},
		{"1", "a shadow answering at once: 10 bursts of 100 concurrent requests from the config's load", true, burstCase("1", 10, 100, 0, nil)},
		{"2", "a shadow answering in 20 ms: 5 bursts of 200 concurrent requests", true, burstCase("2", 5, 200, 20*time.Millisecond, nil)},
		{"3a", fmt.Sprintf("Poisson arrivals at 1,000 req/s for %s, a 50 ms shadow: about 50 copies in flight", sz.poissonFor), true, poissonCase(50, sz.poissonFor)},
		{"3b", fmt.Sprintf("Poisson arrivals at 4,000 req/s for %s, a 50 ms shadow: about 200 copies in flight", sz.poissonFor), true, poissonCase(200, sz.poissonFor)},
		{"4", fmt.Sprintf("%d clients in a closed loop, %d config loads in %s, a 10 ms shadow", reloadClients, sz.reloads, sz.reloadsOver), false, reloadCase(sz)},
		{"5a", fmt.Sprintf("%d streamed responses of %s at once from the shadow, a 1 KiB piece every %s (as a gRPC server stream sends its messages), after %d quick requests", streams, sz.streamFor, streamPieceGap, streamsAfter), true, streamCase(sz)},
		{"5b", fmt.Sprintf("%d downloads of %s at 100 KiB/s from the shadow, one a second", sz.downloads, sz.download), true, downloadCase(sz)},
		{"6", fmt.Sprintf("%d uploads of 48 MiB, one at a time, streamed to a shadow reading at full speed", sz.uploads), true, uploadCase(sz)},
		{"7", fmt.Sprintf("a 2 s primary, compare with a hung noise_from target, %d uploaders sending a byte every 2 s beside %d req/s, for %s", slowUploaders, case7Rate, sz.slowFor), false, compareCase(sz)},
	}
}

// delayed asks the tunable shadow to answer after d.
func delayed(d time.Duration) http.Header {
	if d <= 0 {
		return nil
	}
	return http.Header{delayHeader: {d.String()}}
}

// withHeaders returns a's headers and b's, in a new header.
func withHeaders(a, b http.Header) http.Header {
	out := a.Clone()
	if out == nil {
		out = http.Header{}
	}
	for name, values := range b {
		out[name] = values
	}
	return out
}

// freshPostBody is case 0's body.
var freshPostBody = bytes.Repeat([]byte("p"), freshPostSize)

// burstCase sends n bursts of size concurrent requests through a fresh
// mirror to a shadow answering after delay: GETs, or POSTs of body.
func burstCase(id string, n, size int, delay time.Duration, body []byte) func(*config, *environment, string) ([]fidelityRow, error) {
	return func(cfg *config, env *environment, server string) ([]fidelityRow, error) {
		r, err := startFidelity(cfg, env, server, id, mirrorTo(shadowTunable))
		if err != nil {
			return nil, err
		}
		defer r.stop()
		method, header := http.MethodGet, delayed(delay)
		if body != nil {
			method, header = http.MethodPost, withHeaders(header, bodyHeaders(body))
		}
		q := r.requester(size, method, body, header)
		defer q.close()
		var row fidelityRow
		row.client = bursts(q, n, size, func(i int) {
			if r.sampler != nil {
				row.events = append(row.events, fidelityEvent{r.sampler.since(), fmt.Sprintf("burst %d", i+1)})
			}
		})
		_, err = r.finish(&row, r.tag)
		return []fidelityRow{row}, err
	}
}

// poissonCase sends Poisson arrivals at the rate that keeps inFlight
// copies in flight at a 50 ms shadow, from the config's load on.
func poissonCase(inFlight int, d time.Duration) func(*config, *environment, string) ([]fidelityRow, error) {
	const shadowDelay = 50 * time.Millisecond
	rate := float64(inFlight) / shadowDelay.Seconds()
	return func(cfg *config, env *environment, server string) ([]fidelityRow, error) {
		r, err := startFidelity(cfg, env, server, "3", mirrorTo(shadowTunable))
		if err != nil {
			return nil, err
		}
		defer r.stop()
		// nginx holds each client until its copy is answered: enough
		// connections for every copy in flight, and some
		conns := 2*inFlight + 16
		q := r.requester(conns, http.MethodGet, nil, delayed(shadowDelay))
		defer q.close()
		var row fidelityRow
		row.client = openLoopAt(q, poissonSchedule(rate, d, uint64(inFlight)), conns, d, openLoopGrace, nil)
		if _, err := r.finish(&row, r.tag); err != nil {
			return nil, err
		}
		row.note("%.0f req/s due, %.0f answered a second", rate, row.client.rps())
		if len(row.samples) > 0 {
			row.note("at most %.0f copies in flight", peakInFlight(row.samples))
		}
		return []fidelityRow{row}, nil
	}
}

// streamCase sends streamsAfter quick requests one after another, then
// starts streams requests at once whose copies the shadow answers as a
// stream of sz.streamFor, a piece every streamPieceGap, and counts how the
// copies ended.
func streamCase(sz fidelitySizes) func(*config, *environment, string) ([]fidelityRow, error) {
	return func(cfg *config, env *environment, server string) ([]fidelityRow, error) {
		r, err := startFidelity(cfg, env, server, "5a", mirrorTo(shadowTunable))
		if err != nil {
			return nil, err
		}
		defer r.stop()
		quick := r.requester(1, http.MethodGet, nil, nil)
		defer quick.close()
		first := sequential(quick, streamsAfter, drainTimeout)
		spec := fmt.Sprintf("%s@%d/%s", sz.streamFor, streamPieceRate, streamPieceGap)
		q := r.requester(streams, http.MethodGet, nil, http.Header{streamHeader: {spec}})
		defer q.close()
		var row fidelityRow
		row.client = mergeLoads(first, spaced(q, streams, 0, sz.streamFor+drainTimeout))
		r.done = func(primary, shadow tagCount) bool { return shadow.Answered+shadow.Cut >= primary.Received }
		r.within = sz.streamFor + fidelityWithin
		got, err := r.finish(&row, r.tag)
		if err != nil {
			return nil, err
		}
		row.note("the shadow streamed %d of the %d responses to their end; %d were stopped before it by the reader (the quick requests' copies included)", got.Answered, got.Received, got.Cut)
		return []fidelityRow{row}, nil
	}
}

// downloadCase starts a download a second whose copy the shadow answers
// slowly, for sz.download each, and counts how the copies ended.
func downloadCase(sz fidelitySizes) func(*config, *environment, string) ([]fidelityRow, error) {
	return func(cfg *config, env *environment, server string) ([]fidelityRow, error) {
		r, err := startFidelity(cfg, env, server, "5", mirrorTo(shadowTunable))
		if err != nil {
			return nil, err
		}
		defer r.stop()
		stream := fmt.Sprintf("%s@%d", sz.download, downloadRate)
		q := r.requester(sz.downloads, http.MethodGet, nil, http.Header{streamHeader: {stream}})
		defer q.close()
		var row fidelityRow
		row.client = spaced(q, sz.downloads, time.Second, sz.download+drainTimeout)
		// nginx reads the shadow's response: wait until each has ended
		r.done = func(primary, shadow tagCount) bool { return shadow.Answered+shadow.Cut >= primary.Received }
		r.within = sz.download + fidelityWithin
		got, err := r.finish(&row, r.tag)
		if err != nil {
			return nil, err
		}
		row.note("the shadow streamed %d of the %d responses to their end (%d KiB at 100 KiB/s each); %d were stopped before it by the reader", got.Answered, got.Received, int(sz.download.Seconds()*downloadRate)>>10, got.Cut)
		if server == "caddy" {
			row.note("the mirror reads at most 256 KiB of a shadow's response (2.5 s of this one), then closes it: a download's copy is mirrored once it has read that much")
		}
		return []fidelityRow{row}, nil
	}
}

// uploadBody is case 6's body: random bytes, so that a body cut, shifted
// or mixed up with another cannot pass the shadow's checksum.
var uploadBody = sync.OnceValue(func() []byte {
	b := make([]byte, uploadSize)
	rng := rand.NewChaCha8([32]byte{'b', 'e', 'n', 'c', 'h'})
	_, _ = rng.Read(b)
	return b
})

// uploadCase sends sz.uploads uploads of 48 MiB one after another, and
// counts those that reached the shadow whole.
func uploadCase(sz fidelitySizes) func(*config, *environment, string) ([]fidelityRow, error) {
	return func(cfg *config, env *environment, server string) ([]fidelityRow, error) {
		r, err := startFidelity(cfg, env, server, "6", mirrorTo(shadowTunable))
		if err != nil {
			return nil, err
		}
		defer r.stop()
		body := uploadBody()
		q := r.requester(1, http.MethodPost, body, bodyHeaders(body))
		defer q.close()
		var row fidelityRow
		row.client = sequential(q, sz.uploads, drainTimeout+time.Minute)
		// nginx sends the copy's body after the client's: wait for it
		r.done = func(primary, shadow tagCount) bool {
			return shadow.Received >= primary.Received && shadow.Whole+shadow.Short >= shadow.Received
		}
		got, err := r.finish(&row, r.tag)
		if err != nil {
			return nil, err
		}
		row.delivered = got.Whole
		row.note("delivered counts the bodies whole at the shadow: of the copies, %d received, %d with the length and CRC-32C sent, %d otherwise", got.Received, got.Whole, got.Short)
		return []fidelityRow{row}, nil
	}
}
