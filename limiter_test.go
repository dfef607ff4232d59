package mirror

import (
	"context"
	"testing"
	"time"
)

// tick is the step of the simulated clock.
const tick = 10 * time.Millisecond

// hang is a round trip that never ends.
const hang time.Duration = -1

// simulation drives a concurrencyLimit with a fake clock: copies arrive in
// ticks, wait for a slot when the limit is reached, are answered after a
// round trip (or never), and end when answered or, for a stream, that
// much later.
type simulation struct {
	l       *concurrencyLimit
	clock   time.Time
	maxWait time.Duration
	held    []*simulatedCopy
	waiting []*simulatedWaiter

	admitted, waited, dropped, completed, cancelled int
	peakHeld                                        int
}

type simulatedCopy struct {
	held               *heldCopy
	answerAt, finishAt time.Time // zero: never
	cancelled          bool
}

type simulatedWaiter struct {
	w             *slotWaiter
	since         time.Time
	rtt, streamed time.Duration
}

func newSimulation(floor, ceiling int, fixed bool) *simulation {
	s := &simulation{clock: time.Unix(1_000_000, 0), maxWait: defaultMaxWait}
	s.l = newConcurrencyLimit(func() time.Time { return s.clock })
	s.l.configure(floor, ceiling, fixed, s.maxWait, nil, nil)
	return s
}

// run lets d pass with perTick copies arriving every tick, each answered
// after rtt.
func (s *simulation) run(d time.Duration, perTick int, rtt time.Duration) {
	s.runStreams(d, perTick, rtt, 0)
}

// runStreams is run with every copy going on for streamed after its
// answer, as a long response does.
func (s *simulation) runStreams(d time.Duration, perTick int, rtt, streamed time.Duration) {
	for end := s.clock.Add(d); s.clock.Before(end); {
		s.clock = s.clock.Add(tick)
		s.progressHeld()
		s.progressWaiting()
		for range perTick {
			w, ok := s.l.take()
			switch {
			case ok:
				s.begin(rtt, streamed)
			case w != nil:
				s.waited++
				s.waiting = append(s.waiting, &simulatedWaiter{w: w, since: s.clock, rtt: rtt, streamed: streamed})
			default:
				s.dropped++
			}
		}
		s.peakHeld = max(s.peakHeld, len(s.held))
	}
}

// progressHeld answers, ends and cancels the copies in flight.
func (s *simulation) progressHeld() {
	kept := s.held[:0]
	for _, c := range s.held {
		if !c.answerAt.IsZero() && !s.clock.Before(c.answerAt) {
			c.held.answer()
			c.answerAt = time.Time{}
		}
		switch {
		case c.cancelled:
			if !s.l.release(c.held) {
				panic("a cancelled copy was not reported late")
			}
			s.cancelled++
		case !c.finishAt.IsZero() && !s.clock.Before(c.finishAt):
			s.l.release(c.held)
			s.completed++
		default:
			kept = append(kept, c)
		}
	}
	s.held = kept
}

// progressWaiting starts the waiting copies that got a slot and drops
// those that waited maxWait.
func (s *simulation) progressWaiting() {
	kept := s.waiting[:0]
	for _, w := range s.waiting {
		switch {
		case w.w.granted:
			s.begin(w.rtt, w.streamed)
		case s.clock.Sub(w.since) >= s.maxWait:
			if s.l.giveUp(w.w) {
				s.begin(w.rtt, w.streamed)
			} else {
				s.dropped++
			}
		default:
			kept = append(kept, w)
		}
	}
	s.waiting = kept
}

// begin starts a copy that holds a slot.
func (s *simulation) begin(rtt, streamed time.Duration) {
	s.admitted++
	c := &simulatedCopy{}
	if rtt != hang {
		c.answerAt = s.clock.Add(rtt)
		c.finishAt = c.answerAt.Add(streamed)
	}
	c.held = s.l.start(context.Background(), func() { c.cancelled = true }, false)
	c.held.wroteRequest()
	s.held = append(s.held, c)
}

// burst sends n copies at once, then lets them all end.
func (s *simulation) burst(n int, rtt time.Duration) {
	s.run(tick, n, rtt)
	for i := 0; len(s.held)+len(s.waiting) > 0 && i < 1000; i++ {
		s.run(tick, 0, rtt)
	}
}

// reset zeroes the counts, to measure the next phase alone.
func (s *simulation) reset() {
	s.admitted, s.waited, s.dropped, s.completed, s.cancelled, s.peakHeld = 0, 0, 0, 0, 0, len(s.held)
}

func TestConcurrencyLimit(t *testing.T) {
	const slow = 200 * time.Millisecond
	// 300 copies a second of 200 ms each: Little's law needs 60 in flight
	const perTick, littles = 3, 60

	for _, tc := range []struct {
		name           string
		floor, ceiling int
		fixed          bool
		check          func(t *testing.T, s *simulation)
	}{
		{
			name: "fast shadow: the limit does not grow past what is used", floor: 4, ceiling: 1024,
			check: func(t *testing.T, s *simulation) {
				s.run(5*time.Second, 1, time.Millisecond)
				if got := s.l.current(); got != initialLimit {
					t.Errorf("limit = %d, want %d (nothing needed more)", got, initialLimit)
				}
				if s.dropped != 0 || s.cancelled != 0 || s.waited != 0 {
					t.Errorf("dropped %d, cancelled %d, waited %d, want none", s.dropped, s.cancelled, s.waited)
				}
			},
		},
		{
			name: "a burst of 100 at once, ten times, from a fresh limit", floor: 4, ceiling: 1024,
			check: func(t *testing.T, s *simulation) {
				for range 10 {
					s.burst(100, time.Millisecond)
				}
				if s.completed != 1000 || s.dropped != 0 || s.cancelled != 0 {
					t.Errorf("completed %d, dropped %d, cancelled %d of 1000, want every copy completed", s.completed, s.dropped, s.cancelled)
				}
			},
		},
		{
			name: "five bursts of 200 at a 20ms shadow", floor: 4, ceiling: 1024,
			check: func(t *testing.T, s *simulation) {
				for range 5 {
					s.burst(200, 20*time.Millisecond)
				}
				if s.completed != 1000 || s.dropped != 0 || s.cancelled != 0 {
					t.Errorf("completed %d, dropped %d, cancelled %d of 1000, want every copy completed", s.completed, s.dropped, s.cancelled)
				}
			},
		},
		{
			name: "growth under steady latency, without a drop", floor: 4, ceiling: 1024,
			check: func(t *testing.T, s *simulation) {
				s.run(3*time.Second, perTick, slow)
				if got := s.l.current(); got < littles || got > 4*littles {
					t.Errorf("limit after warm-up = %d, want between %d and %d", got, littles, 4*littles)
				}
				if s.dropped != 0 || s.cancelled != 0 {
					t.Errorf("warm-up: dropped %d, cancelled %d of %d, want none: copies wait while the limit grows", s.dropped, s.cancelled, s.admitted+s.dropped)
				}
				s.reset()
				s.run(5*time.Second, perTick, slow)
				if s.dropped != 0 || s.cancelled != 0 {
					t.Errorf("after warm-up: dropped %d, cancelled %d of %d, want none", s.dropped, s.cancelled, s.admitted+s.dropped)
				}
			},
		},
		{
			// 1,000 copies a second of 200 ms need 200 in flight; a limit
			// that doubled once per round trip queued a second of copies
			// and let them go at once, 900 and more
			name: "a fresh limit at a fast rate holds no more than twice what it needs", floor: 4, ceiling: 1024,
			check: func(t *testing.T, s *simulation) {
				const perTick, littles = 10, 200
				s.run(3*time.Second, perTick, slow)
				if s.peakHeld > 2*littles {
					t.Errorf("copies held peaked at %d, want at most twice the %d needed", s.peakHeld, littles)
				}
				if s.dropped != 0 || s.cancelled != 0 {
					t.Errorf("dropped %d, cancelled %d of %d, want none", s.dropped, s.cancelled, s.admitted+s.dropped)
				}
			},
		},
		{
			name: "long healthy streams are never late", floor: 4, ceiling: 1024,
			check: func(t *testing.T, s *simulation) {
				s.run(time.Second, 2, 5*time.Millisecond)
				s.runStreams(tick, 8, 5*time.Millisecond, 5*time.Second) // 8 streams of 5s
				s.run(6*time.Second, 2, 5*time.Millisecond)
				if s.cancelled != 0 || s.dropped != 0 {
					t.Errorf("cancelled %d, dropped %d, want none: an answered stream is alive", s.cancelled, s.dropped)
				}
				if got := s.l.current(); got < initialLimit {
					t.Errorf("limit = %d after the streams, want at least %d", got, initialLimit)
				}
			},
		},
		{
			name: "collapse on a hang, then recovery", floor: 4, ceiling: 1024,
			check: func(t *testing.T, s *simulation) {
				s.run(3*time.Second, perTick, slow)
				before := s.l.current()
				s.reset()
				s.run(2*time.Second, perTick, hang)
				if got := s.l.current(); got != 4 {
					t.Errorf("limit 2s into a hang = %d, want the floor, 4", got)
				}
				if len(s.held) > 4 {
					t.Errorf("copies held 2s into a hang = %d, want at most the floor, 4", len(s.held))
				}
				if s.peakHeld > 2*before {
					t.Errorf("copies held during the hang peaked at %d, over twice the limit before it, %d", s.peakHeld, before)
				}
				s.run(8*time.Second, perTick, hang)
				if len(s.held) > 4 || s.l.current() != 4 {
					t.Errorf("10s into a hang: %d copies held, limit %d, want at most the floor, 4", len(s.held), s.l.current())
				}
				if len(s.waiting) > perTick*int(s.maxWait/tick) {
					t.Errorf("%d copies waiting 10s into a hang, want at most max_wait's worth, %d", len(s.waiting), perTick*int(s.maxWait/tick))
				}

				// the shadow answers again
				s.reset()
				s.run(5*time.Second, perTick, slow)
				if got := s.l.current(); got < littles {
					t.Errorf("limit 5s after recovery = %d, want at least %d", got, littles)
				}
				s.reset()
				s.run(5*time.Second, perTick, slow)
				if s.dropped != 0 || s.cancelled != 0 {
					t.Errorf("5s to 10s after recovery: dropped %d, cancelled %d, want none", s.dropped, s.cancelled)
				}
			},
		},
		{
			name: "latency climbs: the limit shrinks, then accepts the new latency", floor: 4, ceiling: 1024,
			check: func(t *testing.T, s *simulation) {
				s.run(3*time.Second, perTick, 20*time.Millisecond)
				before := s.l.current()
				least := before
				for range 10 {
					s.run(updateInterval, perTick, slow)
					least = min(least, s.l.current())
				}
				if least >= before {
					t.Errorf("limit once latency went from 20ms to 200ms: least %d, want below %d", least, before)
				}
				s.run(5*time.Second, perTick, slow)
				s.reset()
				s.run(3*time.Second, perTick, slow)
				if s.dropped != 0 {
					t.Errorf("dropped %d once the shadow is durably slower, want none", s.dropped)
				}
			},
		},
		{
			name: "one late copy among many that are answered is not a hang", floor: 4, ceiling: 1024,
			check: func(t *testing.T, s *simulation) {
				s.run(time.Second, 1, time.Millisecond)
				s.run(tick, 1, hang)
				s.run(5*time.Second, 1, time.Millisecond)
				if s.cancelled != 0 {
					t.Errorf("cancelled %d, want the late copy left alone", s.cancelled)
				}
				if got := s.l.current(); got != initialLimit {
					t.Errorf("limit = %d, want %d", got, initialLimit)
				}
			},
		},
		{
			name: "a reload keeps what the limit learnt", floor: 4, ceiling: 1024,
			check: func(t *testing.T, s *simulation) {
				s.run(3*time.Second, perTick, slow)
				before := s.l.current()
				s.l.configure(4, 1024, false, s.maxWait, nil, nil) // the next config
				if got := s.l.current(); got != before {
					t.Errorf("limit after a reload = %d, want the %d it had learnt", got, before)
				}
				s.reset()
				s.run(2*time.Second, perTick, slow)
				if s.dropped != 0 || s.waited != 0 {
					t.Errorf("after the reload: dropped %d, waited %d, want none", s.dropped, s.waited)
				}
				s.l.configure(4, 30, false, s.maxWait, nil, nil) // a lower ceiling
				if got := s.l.current(); got != 30 {
					t.Errorf("limit after a reload with ceiling 30 = %d, want 30", got)
				}
			},
		},
		{
			name: "ceiling", floor: 4, ceiling: 30,
			check: func(t *testing.T, s *simulation) {
				s.run(5*time.Second, perTick, slow)
				if got := s.l.current(); got != 30 {
					t.Errorf("limit = %d, want the ceiling, 30", got)
				}
				if s.peakHeld > 30 {
					t.Errorf("copies held peaked at %d, over the ceiling", s.peakHeld)
				}
			},
		},
		{
			name: "floor", floor: 8, ceiling: 1024,
			check: func(t *testing.T, s *simulation) {
				s.run(10*time.Second, perTick, hang)
				if got := s.l.current(); got != 8 {
					t.Errorf("limit = %d, want the floor, 8", got)
				}
				if len(s.held) > 8 || s.peakHeld > initialLimit {
					t.Errorf("held %d, peak %d, want at most 8 now and %d ever", len(s.held), s.peakHeld, initialLimit)
				}
			},
		},
		{
			name: "a ceiling below the initial limit", floor: 1, ceiling: 2,
			check: func(t *testing.T, s *simulation) {
				if got := s.l.current(); got != 2 {
					t.Errorf("initial limit = %d, want the ceiling, 2", got)
				}
			},
		},
		{
			name: "fixed", floor: 4, ceiling: 50, fixed: true,
			check: func(t *testing.T, s *simulation) {
				if got := s.l.current(); got != 50 {
					t.Errorf("initial limit = %d, want the ceiling, 50", got)
				}
				s.run(5*time.Second, perTick, hang)
				if got := s.l.current(); got != 50 {
					t.Errorf("limit during a hang = %d, want the ceiling, 50", got)
				}
				if s.cancelled != 0 || len(s.held) != 50 {
					t.Errorf("cancelled %d, held %d, want none cancelled and 50 held", s.cancelled, len(s.held))
				}
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newSimulation(tc.floor, tc.ceiling, tc.fixed)
			tc.check(t, s)
			if s.peakHeld > tc.ceiling {
				t.Errorf("copies held peaked at %d, over the ceiling %d", s.peakHeld, tc.ceiling)
			}
		})
	}
}

// TestConcurrencyLimitNoWait: with max_wait -1 a copy over the limit is
// refused at once, as before waiting existed.
func TestConcurrencyLimitNoWait(t *testing.T) {
	s := newSimulation(4, 1024, false)
	s.maxWait = 0
	s.l.configure(4, 1024, false, 0, nil, nil)
	s.run(tick, initialLimit+5, hang)
	if s.admitted != initialLimit || s.dropped != 5 || s.waited != 0 {
		t.Errorf("admitted %d, dropped %d, waited %d; want %d, 5 and 0", s.admitted, s.dropped, s.waited, initialLimit)
	}
}
