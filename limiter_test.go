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

// simulation drives a concurrencyLimit with a fake clock: copies arrive at
// a steady rate and complete after a fixed round trip, or never.
type simulation struct {
	l     *concurrencyLimit
	clock time.Time
	held  []*simulatedCopy

	admitted, dropped, completed, cancelled int
	peakHeld                                int
}

type simulatedCopy struct {
	held      *heldCopy
	due       time.Time // zero: never
	cancelled bool
}

func newSimulation(floor, ceiling int, fixed bool) *simulation {
	s := &simulation{clock: time.Unix(1_000_000, 0)}
	s.l = newConcurrencyLimit(floor, ceiling, fixed, func() time.Time { return s.clock }, nil)
	return s
}

// run lets d pass with perTick copies arriving every tick, each taking rtt.
func (s *simulation) run(d time.Duration, perTick int, rtt time.Duration) {
	for end := s.clock.Add(d); s.clock.Before(end); {
		s.clock = s.clock.Add(tick)
		kept := s.held[:0]
		for _, c := range s.held {
			switch {
			case c.cancelled:
				if !s.l.release(c.held, false) {
					panic("a cancelled copy was not reported late")
				}
				s.cancelled++
			case !c.due.IsZero() && !s.clock.Before(c.due):
				s.l.release(c.held, true)
				s.completed++
			default:
				kept = append(kept, c)
			}
		}
		s.held = kept
		for range perTick {
			if !s.l.acquire() {
				s.dropped++
				continue
			}
			s.admitted++
			c := &simulatedCopy{}
			if rtt != hang {
				c.due = s.clock.Add(rtt)
			}
			c.held = s.l.start(context.Background(), func() { c.cancelled = true })
			s.held = append(s.held, c)
		}
		s.peakHeld = max(s.peakHeld, len(s.held))
	}
}

// reset zeroes the counts, to measure the next phase alone.
func (s *simulation) reset() {
	s.admitted, s.dropped, s.completed, s.cancelled, s.peakHeld = 0, 0, 0, 0, len(s.held)
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
				if s.dropped != 0 || s.cancelled != 0 {
					t.Errorf("dropped %d, cancelled %d, want none", s.dropped, s.cancelled)
				}
			},
		},
		{
			name: "growth under steady latency", floor: 4, ceiling: 1024,
			check: func(t *testing.T, s *simulation) {
				s.run(3*time.Second, perTick, slow)
				if got := s.l.current(); got < littles || got > 4*littles {
					t.Errorf("limit after warm-up = %d, want between %d and %d", got, littles, 4*littles)
				}
				s.reset()
				s.run(5*time.Second, perTick, slow)
				if s.dropped != 0 || s.cancelled != 0 {
					t.Errorf("after warm-up: dropped %d, cancelled %d of %d, want none", s.dropped, s.cancelled, s.admitted+s.dropped)
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
			name: "a fast shadow recovers its initial limit unused", floor: 4, ceiling: 1024,
			check: func(t *testing.T, s *simulation) {
				s.run(3*time.Second, 1, hang)
				if got := s.l.current(); got != 4 {
					t.Fatalf("limit during the hang = %d, want the floor, 4", got)
				}
				s.run(2*time.Second, 1, time.Millisecond)
				if got := s.l.current(); got < initialLimit {
					t.Errorf("limit 2s after recovery = %d, want at least %d", got, initialLimit)
				}
				s.reset()
				s.run(time.Second, 1, time.Millisecond)
				if s.dropped != 0 || s.cancelled != 0 {
					t.Errorf("2s to 3s after recovery: dropped %d, cancelled %d, want none", s.dropped, s.cancelled)
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
			name: "one late copy among many that complete is not a hang", floor: 4, ceiling: 1024,
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
