package main

import (
	"math"
	"slices"
	"testing"
	"time"
)

// TestPoissonSchedule: arrivals within the run, ascending, at about the
// rate, with gaps spread as an exponential's (their standard deviation
// near their mean), the same for the same seed.
func TestPoissonSchedule(t *testing.T) {
	const rate = 4000.0
	d := 10 * time.Second
	s := poissonSchedule(rate, d, 7)
	if !slices.IsSorted(s) || s[len(s)-1] >= d {
		t.Fatal("not ascending within the run")
	}
	if n := float64(len(s)); math.Abs(n-rate*d.Seconds()) > 0.03*rate*d.Seconds() {
		t.Fatalf("%d arrivals; want about %.0f", len(s), rate*d.Seconds())
	}
	var sum, sq float64
	for i := 1; i < len(s); i++ {
		g := (s[i] - s[i-1]).Seconds()
		sum, sq = sum+g, sq+g*g
	}
	n := float64(len(s) - 1)
	mean := sum / n
	if sd := math.Sqrt(sq/n - mean*mean); math.Abs(sd-mean) > 0.1*mean {
		t.Fatalf("gaps: mean %g, standard deviation %g; want them near each other", mean, sd)
	}
	if !slices.Equal(s, poissonSchedule(rate, d, 7)) || slices.Equal(s, poissonSchedule(rate, d, 8)) {
		t.Fatal("the seed does not decide the schedule")
	}
}

// TestEvenSchedule: one every 1/rate from 0.
func TestEvenSchedule(t *testing.T) {
	s := evenSchedule(4, time.Second)
	if !slices.Equal(s, []time.Duration{0, 250 * time.Millisecond, 500 * time.Millisecond, 750 * time.Millisecond}) {
		t.Fatal(s)
	}
}
